"""``alice-trio doctor``: which agent CLIs are installed, which version, do they look logged in.

Each check runs the CLI with fixed arguments (``--version``; ``codex login status``;
``claude auth status``), no shell, under a timeout (``auth_status_timeout_secs``, 15 s by
default); a check that times out is killed with its process group and reported, never fatal.
Login detection follows spec §9 where the CLI has a command for it, and otherwise looks for
the credentials the CLI reads (API key variables, credential files) without reading any value.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import attrs
import trio

from ..config import DEFAULT_AUTH_STATUS_TIMEOUT, load_config
from ..engine.process_group import terminate_group
from ..errors import ConfigError

__all__ = ["SUPPORTED_VERSIONS", "Check", "DoctorRow", "check_all", "cmd_doctor"]

#: the versions alice-trio was built and tested against (shared/reference/real-clis.md)
SUPPORTED_VERSIONS: dict[str, str] = {
    "codex": "0.171.0",
    "claude": "2.1.197",
    "gemini": "0.61.0",
    "kimi": "2.1.0",  # Kimi Code (npm @moonshot-ai/kimi-code)
    "kimi-legacy": "1.50.0",  # kimi-cli (PyPI), the last working legacy release
    "opencode": "1.18.33",
}
_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@attrs.frozen(kw_only=True)
class Check:
    """What doctor checks for one CLI: ``name`` (a row), provider, default command."""

    name: str
    provider: str
    command: str
    #: env overrides for the check's commands (codex: ``CODEX_HOME`` from ``codex_home``)
    env: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class DoctorRow:
    name: str
    command: str
    path: str = ""  # "" = not on PATH
    version: str = ""
    logged_in: str = ""  # "yes", "no", "unknown", with a reason after ": "
    supported: str = ""  # "yes (0.171.0)", "older than ...", "newer than ...", "-"
    note: str = ""

    def to_dict(self) -> dict[str, str]:
        return attrs.asdict(self)


def default_checks(commands: Mapping[str, str] | None = None) -> list[Check]:
    c = dict(commands or {})
    return [
        Check(name="codex", provider="codex", command=c.get("codex", "codex")),
        Check(name="claude", provider="claude", command=c.get("claude", "claude")),
        Check(name="gemini", provider="gemini", command=c.get("gemini", "gemini")),
        Check(name="kimi", provider="kimi", command=c.get("kimi", "kimi")),
        Check(name="opencode", provider="opencode", command=c.get("opencode", "opencode")),
    ]


async def _deliver_cancel(proc: trio.Process) -> None:
    await terminate_group(proc, 0.5)


async def run_check_command(
    argv: list[str], seconds: float, env: Mapping[str, str] | None = None
) -> tuple[int | None, str, str]:
    """``(exit code or None on timeout/failure to start, stdout, stderr)``; never raises."""
    full_env = {**os.environ, **(env or {})}
    with trio.move_on_after(seconds):
        try:
            proc = await trio.run_process(
                argv,
                stdin=subprocess.DEVNULL,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=full_env,
                start_new_session=True,
                deliver_cancel=_deliver_cancel,
            )
        except OSError as exc:
            return None, "", str(exc)
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        return proc.returncode, out, err
    return None, "", f"timed out after {seconds:g} s"


def parse_version(text: str) -> str:
    m = _VERSION_RE.search(text)
    return m.group(0) if m else ""


def compare_supported(key: str, version: str) -> str:
    pinned = SUPPORTED_VERSIONS.get(key, "")
    if not pinned:
        return "-"
    if not version:
        return f"unknown (tested: {pinned})"

    def t(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))

    if t(version) == t(pinned):
        return f"yes ({pinned})"
    if t(version) < t(pinned):
        return f"older than tested {pinned}"
    return f"newer than tested {pinned}"


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def _env_has(*names: str) -> str:
    for n in names:
        if os.environ.get(n, "").strip():
            return n
    return ""


async def _login_codex(cmd: str, seconds: float, env: Mapping[str, str] | None = None) -> str:
    """spec §9: ``codex login status`` exit 0 = logged in; CODEX_HOME as the CLI resolves it
    (the config's ``codex_home`` when given)."""
    key = _env_has("OPENAI_API_KEY", "CODEX_API_KEY")
    rc, out, err = await run_check_command([cmd, "login", "status"], seconds, env)
    if rc == 0:
        return "yes: " + (out.strip() or err.strip() or "codex login status").splitlines()[0]
    if rc is None:
        return f"unknown: codex login status {err}"
    if key:
        return f"yes: {key} is set"
    return "no: codex login status: " + ((out + err).strip().splitlines() or ["not logged in"])[0]


async def _login_claude(cmd: str, seconds: float) -> str:
    """spec §9: ``claude auth status`` prints ``{"loggedIn", "authMethod", "apiProvider"}``."""
    key = _env_has("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")
    rc, out, err = await run_check_command([cmd, "auth", "status"], seconds)
    if rc is None:
        return f"unknown: claude auth status {err}"
    try:
        info = json.loads((out + err).strip())
    except ValueError:
        info = None
    if isinstance(info, dict) and info.get("loggedIn") is True:
        return f"yes: {info.get('authMethod') or 'logged in'}"
    if key:
        return f"yes: {key} is set"
    return "no: claude auth status says not logged in"


def _login_gemini() -> str:
    key = _env_has("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS")
    if key:
        return f"yes: {key} is set"
    gdir = _home() / ".gemini"
    if (gdir / "oauth_creds.json").is_file():
        return "yes: ~/.gemini/oauth_creds.json"
    try:
        settings = json.loads((gdir / "settings.json").read_text())
        selected = settings.get("security", {}).get("auth", {}).get("selectedType")
    except (OSError, ValueError, AttributeError):
        selected = None
    if selected:
        return f"unknown: auth type {selected} selected, no key in the environment"
    return "no: no GEMINI_API_KEY and no ~/.gemini/oauth_creds.json"


def _login_kimi(legacy: bool) -> str:
    if legacy:
        share = Path(os.environ.get("KIMI_SHARE_DIR") or _home() / ".kimi")
        if (share / "config.toml").is_file():
            return f"unknown: {share}/config.toml exists (providers configured there)"
        if _env_has("KIMI_API_KEY"):
            return "yes: KIMI_API_KEY is set"
        return f"no: no {share}/config.toml"
    key = _env_has("KIMI_MODEL_API_KEY", "KIMI_API_KEY", "MOONSHOT_API_KEY")
    if key:
        return f"yes: {key} is set"
    home = Path(os.environ.get("KIMI_CODE_HOME") or _home() / ".kimi-code")
    if home.is_dir():
        return f"unknown: {home} exists (run kimi to check the login)"
    return f"no: no API key variable and no {home}"


def _login_opencode() -> str:
    data = Path(os.environ.get("XDG_DATA_HOME") or _home() / ".local" / "share")
    auth = data / "opencode" / "auth.json"
    if auth.is_file():
        return f"yes: {auth} exists"
    key = _env_has("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY")
    if key:
        return f"yes: {key} is set"
    return "unknown: no opencode auth.json (a provider in opencode.json may still work)"


async def check_one(check: Check, seconds: float) -> DoctorRow:
    path = shutil.which(check.command) or ""
    if not path:
        return DoctorRow(name=check.name, command=check.command, note="not on PATH")
    rc, out, err = await run_check_command([path, "--version"], seconds)
    text = (out + "\n" + err).strip()
    version = parse_version(text) if rc is not None else ""
    note = (
        "" if rc == 0 else (f"--version: {err.strip()}" if rc is None else f"--version exit {rc}")
    )
    key = check.name
    if check.provider == "kimi":
        legacy = bool(version) and version.startswith("1.")
        key = "kimi-legacy" if legacy else "kimi"
        note = (note + "; " if note else "") + ("kimi-cli (legacy)" if legacy else "Kimi Code")
        if "no longer maintained" in text:
            note += "; this kimi-cli is a deprecation stub, use 1.50.0"
        logged = _login_kimi(legacy)
    elif check.provider == "codex":
        logged = await _login_codex(path, seconds, check.env)
    elif check.provider == "claude":
        logged = await _login_claude(path, seconds)
    elif check.provider == "gemini":
        logged = _login_gemini()
    elif check.provider == "opencode":
        logged = _login_opencode() if rc == 0 else "no: opencode --version failed (spec §9)"
    else:
        logged = "unknown"
    return DoctorRow(
        name=check.name,
        command=check.command,
        path=path,
        version=version,
        logged_in=logged,
        supported=compare_supported(key, version),
        note=note,
    )


async def check_all(checks: list[Check], seconds: float) -> list[DoctorRow]:
    """Run every check concurrently; rows come back in the order of ``checks``."""
    rows: list[DoctorRow | None] = [None] * len(checks)

    async def one(i: int, c: Check) -> None:
        rows[i] = await check_one(c, seconds)

    async with trio.open_nursery() as nursery:
        for i, c in enumerate(checks):
            nursery.start_soon(one, i, c)
    return [r for r in rows if r is not None]


def _commands_from_config(path: str) -> tuple[dict[str, str], float]:
    app = load_config(path)
    commands: dict[str, str] = {}
    for profile in app.profiles.values():
        provider, config = profile.resolve()
        commands.setdefault(provider.name, provider.command(config))
    return commands, app.auth_status_timeout


def _codex_env_from_config(path: str) -> dict[str, str]:
    """``CODEX_HOME`` of the first codex profile that sets ``codex_home`` (else nothing)."""
    from ..providers.codex import CodexConfig, codex_env

    for profile in load_config(path).profiles.values():
        _, config = profile.resolve()
        if isinstance(config, CodexConfig) and config.codex_home:
            return {"CODEX_HOME": codex_env(config, {})["CODEX_HOME"]}
    return {}


def render_table(rows: list[DoctorRow], *, plain: bool = False) -> None:
    headers = ("provider", "command", "version", "logged in", "supported", "note")
    data = [
        (
            r.name,
            r.path or f"{r.command} (not found)",
            r.version or "-",
            r.logged_in or "-",
            r.supported or "-",
            r.note,
        )
        for r in rows
    ]
    if not plain:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            plain = True
    if not plain:
        table = Table(title="alice-trio doctor")
        for h in headers:
            table.add_column(h, overflow="fold")
        for row in data:
            table.add_row(*row)
        Console(highlight=False).print(table)
        return
    widths = [max(len(h), *(len(row[i]) for row in data)) for i, h in enumerate(headers)]
    for row in (headers, *data):
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        sys.stdout.write("\n")


def cmd_doctor(args: argparse.Namespace) -> int:
    commands: dict[str, str] = {}
    timeout = DEFAULT_AUTH_STATUS_TIMEOUT
    if args.config:
        try:
            commands, timeout = _commands_from_config(args.config)
        except ConfigError as exc:
            from .main import _config_error

            return _config_error(exc)
    if args.timeout is not None:
        timeout = args.timeout
    checks = default_checks(commands)
    if args.config:
        codex_env = _codex_env_from_config(args.config)
        checks = [attrs.evolve(c, env=codex_env) if c.provider == "codex" else c for c in checks]
    rows = trio.run(check_all, checks, timeout)
    if args.json:
        json.dump([r.to_dict() for r in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_table(rows, plain=args.plain)
        sys.stdout.write(cleanup_line() + "\n")
    return 0


def cleanup_line() -> str:
    """Which mechanism ends escaped tool processes here (docs/process-cleanup.md)."""
    from ..engine import guardian, reaper

    info = reaper.describe()
    host_guard = "on" if guardian.enabled() else "off"
    cgroup = "available (not used)" if info["cgroup_v2_kill_available"] else "not available"
    return (
        f"process cleanup: group kill + {info['mechanism']} sweep; host guardian {host_guard}; "
        f"cgroup v2 kill {cgroup}"
    )
