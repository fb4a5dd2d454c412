"""``alice-trio doctor``: each profile checked with its own command, env and workspace; bounded,
concurrent checks; versions against the provider records; a probe on request; 80 columns; no
secret ever printed. Most tests run the command as a person types it."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from alice_trio.cli.doctor import DoctorRow, Target, cancelled_row, check_all, render_text
from alice_trio.cli.main import main
from alice_trio.providers.codex import CodexConfig
from alice_trio.providers.record import version_key
from alice_trio.providers.registry import get_provider

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("gm-secret-value-123", "sk-ant-secret-456", "leaky-secret-789")
HOST_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "CODEX_API_KEY", "GEMINI_API_KEY",
             "GOOGLE_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "KIMI_API_KEY",
             "KIMI_MODEL_API_KEY", "MOONSHOT_API_KEY", "KIMI_SHARE_DIR", "KIMI_CODE_HOME",
             "XDG_DATA_HOME", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN",
             "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY", "ALICE_TRIO_CONFIG")  # fmt: skip


CODEX_RUN = "\n".join([
    '{"type":"thread.started","thread_id":"t-1"}',
    '{"type":"item.completed","item":{"id":"i0","type":"agent_message","text":"ok"}}',
    '{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":1}}',
]) + "\n"  # fmt: skip


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _newer(provider: str, flavor: str = "") -> str:
    """A version above the newest one the record verified (follows pin bumps)."""
    p = get_provider(provider)
    newest = (p.flavor(flavor) if flavor else p.default_flavor).versions.newest
    major, minor, patch = version_key(newest)[:3]
    return f"{major}.{minor}.{patch + 1}"


def _host_env(tmp_path: Path) -> dict[str, str]:
    """The doctor process's own env: no API keys, an empty HOME."""
    env = {k: v for k, v in os.environ.items() if k not in HOST_KEYS}
    home = tmp_path / "host-home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _doctor(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``alice-trio doctor ARGS`` as typed in a shell (the installed entry point when there is
    one; ``python -m`` otherwise)."""
    shim = shutil.which("alice-trio", path=env.get("PATH"))
    argv = [shim] if shim else [sys.executable, "-m", "alice_trio.cli.entry"]
    return subprocess.run(
        [*argv, "doctor", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _yaml(profiles: dict[str, dict[str, Any]]) -> str:
    return json.dumps({"llm_profiles": profiles, "default_profile": next(iter(profiles))})


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "gemini", 'echo "0.61.0"\n')
    status = '{"loggedIn":false,"authMethod":"none","apiProvider":"firstParty"}'
    _script(bin_dir / "claude", 'case "$1" in --version) echo "2.1.197 (Claude Code)";;\n'
            f"auth) echo '{status}'; exit 1;; esac\n")  # fmt: skip
    _script(bin_dir / "leaky", 'echo "bad token $LEAKY_TOKEN" >&2; exit 2\n')
    return bin_dir


def test_doctor_checks_each_profile_with_its_own_env(tmp_path: Path, fake_bin: Path) -> None:
    """The defect: ``doctor --config`` looked for keys in its own environment, so a profile that
    sets GEMINI_API_KEY / ANTHROPIC_API_KEY (and HOME) in its ``env`` was "not logged in"."""
    path = f"{fake_bin}:/usr/bin:/bin"
    oauth_home = tmp_path / "oauth-home"
    (oauth_home / ".gemini").mkdir(parents=True)
    (oauth_home / ".gemini" / "oauth_creds.json").write_text("{}")
    work = tmp_path / "work"
    work.mkdir()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(_yaml({
        "gem": {"provider": "gemini", "workspace_dir": str(work),
                "env": {"GEMINI_API_KEY": SECRETS[0], "HOME": str(tmp_path), "PATH": path}},
        "gem-oauth": {"provider": "gemini", "env": {"HOME": str(oauth_home), "PATH": path}},
        "cl": {"provider": "claude", "env": {"ANTHROPIC_API_KEY": SECRETS[1], "PATH": path}},
        "cl-nokey": {"provider": "claude", "env": {"PATH": path}},
        "leaky": {"provider": "claude", "command": str(fake_bin / "leaky"),
                  "env": {"LEAKY_TOKEN": SECRETS[2]}},
        "gone": {"provider": "gemini", "workspace_dir": str(tmp_path / "missing"),
                 "env": {"GEMINI_API_KEY": "x", "PATH": path}},
    }))  # fmt: skip
    env = _host_env(tmp_path)
    proc = _doctor(env, "--config", str(cfg), "--json", "--timeout", "30")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert list(rows) == ["gem", "gem-oauth", "cl", "cl-nokey", "leaky", "gone"]
    assert rows["gem"]["logged_in"] == "yes: GEMINI_API_KEY is set in the profile's env"
    assert rows["gem"]["path"] == str(fake_bin / "gemini")  # found on the profile's PATH
    assert rows["gem"]["workspace"] == str(work)
    assert rows["gem"]["status"] == "ok" and rows["gem"]["version_status"] == "verified"
    creds = oauth_home / ".gemini" / "oauth_creds.json"
    assert rows["gem-oauth"]["logged_in"] == f"yes: {creds} exists"
    assert rows["cl"]["logged_in"] == "yes: ANTHROPIC_API_KEY is set in the profile's env"
    assert rows["cl"]["status"] == "ok"
    assert rows["cl-nokey"]["logged_in"].startswith("no: `auth status` says not logged in")
    assert rows["cl-nokey"]["status"] == "problem"
    assert rows["leaky"]["status"] == "problem"
    assert any("exited 2: bad token ***" in p for p in rows["leaky"]["problems"])
    assert rows["gone"]["problems"][0] == f"workspace {tmp_path / 'missing'} is not a directory"
    text = _doctor(env, "--config", str(cfg), "--timeout", "30")
    for out in (proc.stdout, proc.stderr, text.stdout, text.stderr):
        for secret in SECRETS:
            assert secret not in out
    assert "gem (profile, provider gemini): ok" in text.stdout


def test_doctor_warns_when_a_cli_is_newer_than_verified(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    newer = _newer("claude")
    _script(bin_dir / "claude", f'case "$1" in --version) echo "{newer} (Claude Code)";;\n'
            "auth) echo '{\"loggedIn\":true}';; esac\n")  # fmt: skip
    cfg = tmp_path / "config.yaml"
    cfg.write_text(_yaml({"cl": {"provider": "claude", "command": str(bin_dir / "claude")}}))
    env = _host_env(tmp_path)
    proc = _doctor(env, "--config", str(cfg), "--json")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    newest = get_provider("claude").default_flavor.versions.newest
    assert row["version"] == newer and row["version_status"] == "newer"
    assert row["status"] == "warning" and row["problems"] == []
    assert row["warnings"] == [
        f"claude {newer} is newer than the newest verified version {newest}"
        " (it may work; docs/providers.md)"
    ]
    text = _doctor(env, "--config", str(cfg))
    assert f"newer than the newest verified version {newest}" in text.stdout
    assert "cl (profile, provider claude): warning" in text.stdout


def test_doctor_says_when_a_profile_flavor_does_not_match_the_installed_cli(
    tmp_path: Path,
) -> None:
    kimi = _script(tmp_path / "kimi", 'echo "kimi, version 2.1.0"\n')  # Kimi Code
    cfg = tmp_path / "config.yaml"
    cfg.write_text(_yaml({
        "old": {"provider": "kimi", "flavor": "legacy", "command": str(kimi)},
        "new": {"provider": "kimi", "command": str(kimi), "env": {"KIMI_API_KEY": "k" * 8}},
    }))  # fmt: skip
    proc = _doctor(_host_env(tmp_path), "--config", str(cfg), "--json")
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["old"]["flavor"] == "legacy" and rows["old"]["status"] == "problem"
    assert rows["old"]["problems"][0] == (
        f"{kimi} 2.1.0 looks like Kimi Code 2.x (flavor: code); the profile has flavor: legacy"
    )
    assert rows["new"]["flavor"] == "code" and rows["new"]["status"] == "ok"


def test_doctor_output_fits_80_columns(tmp_path: Path, fake_bin: Path) -> None:
    long_dir = tmp_path / ("a-rather-long-directory-name-" * 4)
    long_dir.mkdir()
    for name in ("gemini", "claude"):
        shutil.copy(fake_bin / name, long_dir / name)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(_yaml({
        "gem": {"provider": "gemini", "command": str(long_dir / "gemini")},
        "cl": {"provider": "claude", "command": str(long_dir / "claude")},
    }))  # fmt: skip
    env = {**_host_env(tmp_path), "COLUMNS": "80"}
    proc = _doctor(env, "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= 80, proc.stdout
    assert any(ln.startswith("  command   /") for ln in lines)
    assert any(ln.startswith("  login     no:") for ln in lines)


def test_render_text_wraps_every_field() -> None:
    row = DoctorRow(
        name="p", provider="codex", profile="p", path="/x/" + "y" * 150, version="1.2.3",
        version_status="newer", newest_verified="1.2.2", logged_in="no: " + "why " * 40,
        warnings=("w " * 60,),
    )  # fmt: skip
    for width in (60, 80):
        out = render_text([row], width)
        assert max(len(ln) for ln in out.splitlines()) <= width


def test_doctor_without_config_checks_each_provider(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "codex", 'case "$1" in --version) echo "codex-cli 0.171.0";;\n'
            'login) echo "Logged in using an API key"; exit 0;; esac\n')  # fmt: skip
    _script(bin_dir / "kimi", 'echo "kimi, version 1.50.0"\n')
    _script(bin_dir / "opencode", "echo broken >&2; exit 3\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(tmp_path))
    for key in HOST_KEYS:
        monkeypatch.delenv(key, raising=False)
    assert main(["doctor", "--json", "--timeout", "30"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert "replay" not in rows
    assert rows["codex"]["status"] == "ok" and rows["codex"]["logged_in"].startswith("yes")
    assert rows["kimi"]["flavor"] == "legacy"  # picked by the installed major version
    assert rows["kimi"]["version_status"] == "verified"
    assert rows["gemini"]["status"] == "not installed" and rows["gemini"]["path"] == ""
    assert rows["opencode"]["problems"] == ["`opencode --version` exited 3: broken"]
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "process cleanup:" in out and "with problems, 2 not installed" in out


def _hung(path: Path, pids: Path) -> Path:
    """A CLI that ignores SIGTERM and never answers, recording its pid."""
    return _script(path, f"echo $$ >> {pids}\ntrap '' TERM\nwhile :; do sleep 1; done\n")


def _gone(pids: Path) -> bool:
    """Every pid recorded in ``pids`` is gone."""
    for pid in (pids.read_text() if pids.exists() else "").split():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            continue
        return False
    return True


DAEMON = """import os, signal, sys, time
pids = sys.argv[1]
if os.fork() == 0:  # a daemon: its own session, deaf to SIGTERM, stdio closed
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd = os.open(os.devnull, os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(fd, i)
    with open(pids, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(600)
    os._exit(0)
if os.fork() == 0:  # a helper in the command's own group, also deaf to SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(pids, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(600)
    os._exit(0)
while len(open(pids).read().split()) < 2:
    time.sleep(0.01)
print(sys.argv[2])
"""


async def test_check_commands_leave_no_process_behind(tmp_path: Path) -> None:
    """Hostile-use finding (round 4): a `--version` or login command that starts a daemon
    (``setsid``) or a background helper and exits at once — answering normally — left them
    running after doctor (they ran on trio.run_process: no group kill after a normal exit, no
    sweep). Now every check command runs on the engine's spawn path."""
    daemon = tmp_path / "daemon.py"
    daemon.write_text(DAEMON)
    version_pids, login_pids = tmp_path / "version-pids", tmp_path / "login-pids"
    version_pids.touch()
    login_pids.touch()
    run = f"exec {sys.executable} {daemon}"
    cmd = _script(tmp_path / "codex", f'case "$1" in\n'
                  f'  --version) {run} {version_pids} "codex-cli 0.171.0";;\n'
                  f'  login) {run} {login_pids} "Logged in using an API key";;\n'
                  "esac\n")  # fmt: skip
    target = Target(name="c", provider=get_provider("codex"), config=CodexConfig(command=str(cmd)),
                    profile="c")  # fmt: skip
    (row,) = await check_all([target], 20.0)
    assert row.version == "0.171.0", row
    assert len(version_pids.read_text().split()) == 2
    assert len(login_pids.read_text().split()) == 2, row
    assert _gone(version_pids) and _gone(login_pids)


async def test_hung_clis_are_checked_concurrently_and_each_bounded(tmp_path: Path) -> None:
    """Four CLIs that never answer: each check ends at its deadline, the login command is not
    run after a hung --version (one deadline per CLI, not two), and the four ran at the same
    time — each waits until all four have started before it hangs, and says so."""
    pids, together = tmp_path / "pids", tmp_path / "together"
    body = (f"echo $$ >> {pids}\ntrap '' TERM\n"
            f'while [ "$(wc -l < {pids})" -lt 4 ]; do sleep 0.05; done\n'
            f"echo $$ >> {together}\nwhile :; do sleep 1; done\n")  # fmt: skip
    targets = []
    for i in range(4):
        cmd = _script(tmp_path / f"codex{i}", body)
        targets.append(Target(name=f"c{i}", provider=get_provider("codex"),
                              config=CodexConfig(command=str(cmd)), profile=f"c{i}"))  # fmt: skip
    rows = await check_all(targets, 3.0)
    for row in rows:
        assert row.warnings == (f"`{row.command} --version` timed out after 3 s",), row
        assert row.logged_in == "unknown: not checked, the CLI did not answer --version"
        assert row.status == "warning"
    assert len(together.read_text().split()) == 4  # all four were running at once
    assert _gone(pids)


def test_doctor_reports_which_check_timed_out(tmp_path: Path) -> None:
    """As typed: a CLI that answers --version but hangs in `auth status`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pids = tmp_path / "pids"
    _script(bin_dir / "claude", 'case "$1" in --version) echo "2.1.197 (Claude Code)";;\n'
            f"*) echo $$ >> {pids}; trap '' TERM; while :; do sleep 1; done;; esac\n")  # fmt: skip
    cfg = tmp_path / "config.yaml"
    cfg.write_text(_yaml({"cl": {"provider": "claude", "command": str(bin_dir / "claude")}}))
    proc = _doctor(_host_env(tmp_path), "--config", str(cfg), "--json", "--timeout", "2")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["version_status"] == "verified"
    assert row["logged_in"] == "unknown: `auth status`: timed out after 2 s"
    assert row["warnings"] == ["login check `auth status`: timed out after 2 s"]
    assert _gone(pids)


def test_doctor_probe_runs_one_real_turn(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hang = tmp_path / "codex-hangs"
    _script(hang, 'case "$1" in --version) echo "codex-cli 0.171.0";; login) exit 0;;\n'
            f"*) echo $$ >> {pids}; trap '' TERM; while :; do sleep 1; done;; esac\n")  # fmt: skip
    fail = _script(tmp_path / "codex-fails", 'case "$1" in --version) echo "codex-cli 0.171.0";;'
                   ' login) exit 0;; *) echo "quota exceeded" >&2; exit 1;; esac\n')  # fmt: skip
    # no login to see (a key in a file codex reads, say), yet it answers: the probe decides
    works = _script(tmp_path / "codex-works", 'case "$1" in --version) echo "codex-cli 0.171.0";;'
                    ' login) exit 1;; *) cat >/dev/null; cat "$0.out";; esac\n')  # fmt: skip
    Path(f"{works}.out").write_text(CODEX_RUN)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(_yaml({
        "replay": {"provider": "replay", "speed": 0},
        "hangs": {"provider": "codex", "command": str(hang)},
        "fails": {"provider": "codex", "command": str(fail)},
        "works": {"provider": "codex", "command": str(works)},
    }))  # fmt: skip
    # 8 s: the probes that answer must finish inside it on a loaded machine (3 s did not)
    proc = _doctor(_host_env(tmp_path), "--config", str(cfg), "--json", "--probe",
                   "--probe-timeout", "8")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["replay"]["probe"].startswith("ok: replied 'The command printed:")
    assert rows["replay"]["logged_in"] == "not needed" and rows["replay"]["status"] == "ok"
    assert rows["hangs"]["probe"] == "timed out after 8 s (the CLI was killed)"
    assert rows["hangs"]["status"] == "problem"
    assert rows["fails"]["probe"].startswith("failed: ProcessFailedError:"), rows["fails"]
    assert rows["works"]["logged_in"].startswith("no: `login status` says not logged in")
    assert rows["works"]["probe"].startswith("ok: replied 'ok' in ")
    assert rows["works"]["status"] == "warning" and rows["works"]["problems"] == []
    assert rows["works"]["warnings"] == ["no login detected, yet the probe ran a turn"]
    assert _gone(pids)
    # without --probe nothing runs a turn
    proc = _doctor(_host_env(tmp_path), "--config", str(cfg), "--json", "-p", "replay")
    assert [r["probe"] for r in json.loads(proc.stdout)] == [""]


def test_doctor_config_errors_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("llm_profiles: {a: {provider: nope}}\n")
    proc = _doctor(_host_env(tmp_path), "--config", str(cfg))
    assert proc.returncode == 2 and "nope" in proc.stderr
    proc = _doctor(_host_env(tmp_path), "--profile", "a")
    assert proc.returncode == 2 and "--profile needs --config" in proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_run_still_prints_json_marking_unfinished_checks_cancelled(
    tmp_path: Path, signum: int
) -> None:
    """Hostile-use finding (round 4): ``doctor --json`` printed nothing when SIGTERM ended it.
    Now the checks still running are cancelled (their CLI killed), the finished ones and the
    cancelled ones are printed as one JSON document, and the exit code is the signal's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pids = tmp_path / "pids"
    hang = f"echo $$ >> {pids}; trap '' TERM INT; while :; do sleep 1; done"
    version = 'echo "2.1.197 (Claude Code)"'
    _script(bin_dir / "claude", f'case "$1" in --version) {version};; *) {hang};; esac\n')
    _script(bin_dir / "gemini", 'echo "0.61.0"\n')
    cfg = tmp_path / "config.yaml"
    profiles = {"hangs": {"provider": "claude", "command": str(bin_dir / "claude")},
                "quick": {"provider": "gemini", "command": str(bin_dir / "gemini")}}  # fmt: skip
    cfg.write_text(_yaml(profiles))
    shim = shutil.which("alice-trio")
    argv = [shim] if shim else [sys.executable, "-m", "alice_trio.cli.entry"]
    proc = subprocess.Popen(
        [*argv, "doctor", "--config", str(cfg), "--json", "--timeout", "300"],
        env=_host_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (pids.exists() and pids.read_text().strip()):  # the login check hangs now
            assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
            time.sleep(0.05)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"hangs", "quick"}
    assert rows["hangs"]["status"] == "cancelled" and rows["hangs"]["cancelled"] is True
    assert rows["hangs"]["provider"] == "claude"
    assert rows["quick"]["provider"] == "gemini"  # finished (or cut short as well): a row
    assert err.strip().endswith("terminated" if signum == signal.SIGTERM else "interrupted")
    assert _gone(pids)  # the hung check's CLI was killed


async def test_rows_of_checks_that_finished_survive_a_cancel(tmp_path: Path) -> None:
    """``check_all(into=...)`` fills a row as soon as its target is done, so cancelling the
    rest (a signal) keeps what was found."""
    pids = tmp_path / "pids"
    hung = _hung(tmp_path / "codex-hung", pids)
    quick = _script(tmp_path / "codex-quick", 'echo "codex-cli 0.171.0"\n')
    targets = [Target(name=n, provider=get_provider("codex"), config=CodexConfig(command=str(c)),
                      profile=n) for n, c in (("hung", hung), ("quick", quick))]  # fmt: skip
    quick_done = trio.Event()

    class Rows(list[DoctorRow | None]):
        def __setitem__(self, i, row):  # type: ignore[no-untyped-def]
            super().__setitem__(i, row)
            if i == 1:
                quick_done.set()

    done = Rows([None, None])
    with trio.move_on_after(60) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: check_all(targets, 300.0, into=done))
            await quick_done.wait()
            nursery.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert done[0] is None
    assert done[1] is not None and done[1].version == "0.171.0"
    rows = [row or cancelled_row(t) for row, t in zip(done, targets, strict=True)]
    assert [r.status for r in rows] == ["cancelled", rows[1].status]
    assert rows[1].status != "cancelled"
    assert "cancelled" in render_text(rows)
    assert _gone(pids)


def test_doctor_shows_control_characters_of_config_names_and_values(tmp_path: Path) -> None:
    """Hostile-user finding (round 10): profile names and values from a config file (and what
    a CLI answers) were printed raw — an ESC cleared the screen, a newline in a name forged a
    line of the report. Every name and value is now shown in caret form, on its own line."""
    hostile = "\x1b[2J\x9b1;1H\u202eevil\rX\nforged: ok"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cli = bin_dir / "claude"  # answers --version with the same hostile text
    _script(cli, f"printf '%s\\n' {shlex.quote(hostile)}\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(_yaml({
        "p" + hostile: {"provider": "claude", "command": str(cli)},
        "q" + hostile: {"provider": "codex", "command": str(tmp_path / ("none" + hostile))},
    }))  # fmt: skip
    proc = _doctor(_host_env(tmp_path), "--config", str(cfg), "--timeout", "30")
    out = proc.stdout
    for obeyed in ("\x1b", "\x9b", "\u202e", "\r"):
        assert obeyed not in out, (obeyed, out)
    assert not any(line.startswith("forged") for line in out.splitlines()), out
    shown = "^[[2J\\x9b1;1H<U+202E>evil^MX^Jforged: ok"
    assert f"p{shown} (profile, provider claude)".lower() in out.lower(), out  # names: lowercased
    assert f"none{shown} (not found)" in out.replace("/\n" + " " * 12, "/"), out
