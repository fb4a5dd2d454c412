"""``alice-trio doctor``: can each profile (or, without a config, each provider) run here?

What is checked comes from the provider records (:mod:`alice_trio.providers.record`), never
from a table of this module: the flavor a profile selects, the version command and the
versions it was verified with, and how to tell a login. With a config (``--config`` or
``$ALICE_TRIO_CONFIG``) each **profile** is checked as ``alice-trio run`` would run it: its own
command, the environment of its invocation (host env < top-level ``env`` < profile ``env`` <
the provider's own switches) and its workspace; without one, each provider with its defaults.

For each target, in order: the command on the ``PATH`` of that environment; ``<command>
--version`` (version compared with the record: verified / newer — a warning, not an error /
older / unverified); the login (the record's status command, API key variables present in that
environment, credential files under that environment's ``HOME``); with ``--probe``, one real
agent turn with a tiny prompt. Every subprocess runs without a shell on the engine's spawn path,
under its own deadline (``--timeout``, default ``auth_status_timeout_secs``; ``--probe-timeout``
for the probe): whatever its end, its process group is killed and what escaped the group is
swept (nothing a check started outlives doctor); one that does not finish is reported as timed out
(after a ``--version`` that timed out, the login command is skipped: the CLI hangs). Targets
are checked concurrently, so doctor takes about one deadline however many CLIs hang.

SIGINT or SIGTERM while the checks run: the checks still running are cancelled (their process
groups killed and swept), the output is printed all the same — finished targets as found, the
others with status ``cancelled`` (``--json``: still one valid JSON document) — and doctor
exits 130 or 143 with one line on stderr.

Never printed: environment values. Output of the CLIs is shown only after every value of the
target's environment that could be a secret (6 characters or more, not a path, not ``HOME``,
``PATH``, ``LANG``-like variables) has been replaced by ``***``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from .. import safejson
from ..config import DEFAULT_AUTH_STATUS_TIMEOUT, load_config
from ..engine.spawn import close_child, spawn
from ..errors import AliceError, ConfigError
from ..models import RunRequest
from ..providers.base import CLIConfig, Invocation, Provider, RunLimits
from ..providers.record import AuthCheck, Flavor, version_key
from ..providers.registry import get_provider, provider_names
from .exits import signal_exit
from .signals import interrupt_signal, signal_name
from .streams import display_line, write_text

__all__ = [
    "PROBE_PROMPT",
    "DoctorRow",
    "Target",
    "cancelled_row",
    "check_all",
    "check_target",
    "cmd_doctor",
    "default_targets",
    "profile_targets",
    "render_text",
]

NOT_LOGGED_IN = "not logged in (see login)"
PROBE_PROMPT = "This is a connectivity check. Reply with the single word: ok"
DEFAULT_PROBE_TIMEOUT = 120.0
_STATUSES = {"ok": "ok", "warning": "with warnings", "problem": "with problems",
             "not installed": "not installed", "cancelled": "cancelled"}  # fmt: skip
_MIN_SECRET = 6  # env values at least this long are masked in anything printed
_PLAIN_KEYS = frozenset({"HOME", "PATH", "PWD", "OLDPWD", "USER", "LOGNAME", "SHELL", "LANG",
                         "TERM", "TMPDIR", "COLUMNS", "LINES"})  # fmt: skip


@attrs.frozen(kw_only=True)
class Target:
    """One thing to check: a profile (``profile`` set) or a provider with its defaults."""

    name: str
    provider: Provider
    config: CLIConfig
    profile: str = ""


@attrs.frozen(kw_only=True)
class DoctorRow:
    """The findings for one target. ``status``: ``ok``, ``warning``, ``problem``, ``not
    installed`` or ``cancelled`` (a signal ended doctor before this target's checks did)."""

    name: str
    provider: str
    profile: str = ""
    flavor: str = ""
    command: str = ""
    path: str = ""  # "" = not found
    workspace: str = ""
    version: str = ""
    version_status: str = ""  # verified / newer / older / unverified / unknown / "" (not run)
    newest_verified: str = ""
    logged_in: str = ""  # "yes: …", "no: …", "unknown: …", "not needed", "" (not checked)
    probe: str = ""  # "" (not asked), "ok: …", "failed: …", "timed out …"
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    cancelled: bool = False

    @property
    def status(self) -> str:
        if self.cancelled:
            return "cancelled"
        if not self.path and not self.profile and not self.problems:
            return "not installed"
        return "problem" if self.problems else "warning" if self.warnings else "ok"

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d.update(status=self.status, problems=list(self.problems),
                 warnings=list(self.warnings), notes=list(self.notes))  # fmt: skip
        return d


# -- targets ------------------------------------------------------------------------------------


def default_targets() -> list[Target]:
    """Every registered provider that runs an agent CLI, with its default config."""
    out = []
    for name in provider_names():
        try:
            provider = get_provider(name)
        except Exception:  # a broken third-party entry point: `providers` reports it
            continue
        if provider.default_flavor.auth.otherwise == "not needed":
            continue  # replay: no agent CLI
        out.append(Target(name=name, provider=provider, config=provider.config_class()))
    return out


def profile_targets(path: str, only: list[str] | None = None) -> tuple[list[Target], float]:
    """One target per profile of the config at ``path`` (or the ``only`` ones) and the file's
    check timeout. Raises :class:`ConfigError`."""
    app = load_config(path)
    names = list(app.profiles)
    if only:
        names = [app.get(n).name for n in only]
    targets = []
    for name in names:
        provider, config = app.profiles[name].resolve()
        targets.append(Target(name=name, provider=provider, config=config, profile=name))
    return targets, app.auth_status_timeout


# -- running a check command -------------------------------------------------------------------


#: how much of a check command's stdout/stderr is kept (a version line, a status message)
CHECK_OUTPUT_BYTES = 1 << 20
#: after the check command exited, how long its pipes may stay open (a child holding them)
CHECK_DRAIN = 0.5
#: SIGTERM to the check command's group, this long, then SIGKILL
CHECK_KILL_GRACE = 0.5


async def _read_into(stream: trio.abc.ReceiveStream | None, buf: bytearray) -> None:
    """Read ``stream`` to EOF, keeping its first :data:`CHECK_OUTPUT_BYTES` bytes."""
    if stream is None:
        return
    while True:
        try:
            chunk = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        if not chunk:
            return
        buf += chunk[: max(0, CHECK_OUTPUT_BYTES - len(buf))]


async def run_check_command(
    argv: list[str], seconds: float, env: Mapping[str, str], cwd: str | None = None
) -> tuple[int | None, str, str]:
    """``(exit code, stdout, stderr)``; exit code ``None`` when it could not start (stderr says
    why) or did not finish within ``seconds`` (stderr: ``"timed out after N s"``). It runs on
    the engine's spawn path (:mod:`alice_trio.engine.spawn`): whatever the end, its process
    group is killed and the processes that escaped it (``setsid``) are swept before this
    returns — a ``--version`` that leaves a daemon behind leaves nothing. Never raises except
    ``trio.Cancelled``."""
    try:
        removed = tuple(k for k in os.environ if k not in env)  # the profile's env_remove
        invocation = Invocation(
            argv=tuple(argv), env=dict(env), env_remove=removed, cwd=cwd,
            limits=RunLimits(kill_grace=CHECK_KILL_GRACE),
        )  # fmt: skip
    except AliceError as exc:  # e.g. a NUL byte in the command or the env
        return None, "", str(exc)
    with trio.move_on_after(seconds):
        try:
            child = await spawn(invocation, name=os.path.basename(argv[0]), stdin="devnull")
        except AliceError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.strerror:
                return None, "", cause.strerror
            return None, "", str(exc)
        try:
            out, err = bytearray(), bytearray()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_read_into, child.stdout, out)
                nursery.start_soon(_read_into, child.stderr, err)
                rc = await child.wait()
                nursery.cancel_scope.deadline = trio.current_time() + CHECK_DRAIN
            return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        finally:
            await close_child(child, kill_grace=CHECK_KILL_GRACE, sweep=True)
    return None, "", f"timed out after {seconds:g} s"


# -- one target ---------------------------------------------------------------------------------


@attrs.define
class _Context:
    """What a target runs with: the environment and cwd of its invocation, and a masker."""

    env: dict[str, str]
    overrides: Mapping[str, str]
    cwd: str | None
    secrets: list[str]

    def mask(self, text: str) -> str:
        for value in self.secrets:
            text = text.replace(value, "***")
        return text

    def where(self, key: str) -> str:
        return "in the profile's env" if key in self.overrides else "in the environment"


def _context(target: Target) -> _Context:
    """The env/cwd ``alice-trio run`` would give the CLI. Raises AliceError (bad config)."""
    provider, config = target.provider, target.config
    request = RunRequest(user_text=PROBE_PROMPT)
    if provider.prepare_request is not None:
        request = provider.prepare_request(request, config)
    inv = provider.build_invocation(request, config)
    env = {**os.environ, **inv.env}
    for key in inv.env_remove:
        env.pop(key, None)
    secrets = sorted({v for k, v in env.items() if _secret(k, v)}, key=len, reverse=True)
    return _Context(env=env, overrides=dict(inv.env), cwd=inv.cwd, secrets=secrets)


def _secret(key: str, value: str) -> bool:
    """Whether ``value`` must be masked: anything but short values, paths and the usual
    non-secret variables (a path names a file, it is not a credential)."""
    if len(value) < _MIN_SECRET or value.startswith("/") or key in _PLAIN_KEYS:
        return False
    return not key.startswith(("LC_", "XDG_"))


def _home(ctx: _Context) -> Path:
    return Path(ctx.env.get("HOME") or Path.home())


def _flavor_by_version(provider: Provider, configured: Flavor, version: str) -> Flavor:
    """The flavor an installed ``version`` belongs to: ``configured`` unless its verified
    versions have another major version and another flavor's have this one (kimi 1.x is the
    legacy kimi-cli, 2.x Kimi Code)."""
    major = version_key(version)[:1]
    if not major or not configured.versions.newest:
        return configured
    if version_key(configured.versions.newest)[:1] == major:
        return configured
    for other in provider.flavors:
        if other.versions.newest and version_key(other.versions.newest)[:1] == major:
            return other
    return configured


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


async def _login(auth: AuthCheck, path: str, ctx: _Context, seconds: float) -> tuple[str, str]:
    """``(verdict, note)``: the login as the record's :class:`AuthCheck` tells it."""
    status_note = ""
    if auth.status_args:
        shown = " ".join(auth.status_args)
        rc, out, err = await run_check_command([path, *auth.status_args], seconds, ctx.env, ctx.cwd)
        if rc is None:
            status_note = f"`{shown}`: {err}"
        else:
            ok = rc == 0
            if auth.status_json_key:
                try:
                    info = safejson.loads((out + err).strip())
                except safejson.NotJSON:
                    info = None
                ok = isinstance(info, dict) and info.get(auth.status_json_key) is True
            if ok:
                return f"yes: `{shown}` says logged in", ""
            status_note = f"`{shown}` says not logged in"
    for key in auth.env_keys:
        if ctx.env.get(key, "").strip():
            return f"yes: {key} is set {ctx.where(key)}", status_note
    home = _home(ctx)
    for cred in auth.files:
        base = ctx.env.get(cred.dir_env, "") if cred.dir_env else ""
        folder = Path(base) if base else Path(cred.default_dir.replace("~", str(home), 1))
        found = folder / cred.name if cred.name else folder
        if found.exists():
            return f"{cred.means}: {found} exists", status_note
    if status_note.startswith("`") and "timed out" in status_note:
        return f"unknown: {status_note}", ""
    what = [status_note] if status_note else []
    if auth.env_keys:
        keys = auth.env_keys
        what.append(f"no {keys[0]}" if len(keys) == 1 else "none of " + ", ".join(keys))
    for cred in auth.files:
        base = f"${cred.dir_env} or {cred.default_dir}" if cred.dir_env else cred.default_dir
        what.append(f"no {base}/{cred.name}".rstrip("/"))
    verdict = auth.otherwise
    return (f"{verdict}: " + "; ".join(what)) if what else verdict, ""


async def _probe(target: Target, seconds: float) -> str:
    from ..backend import OneShotBackend

    started = time.monotonic()
    try:
        with trio.move_on_after(seconds) as scope:
            result = await OneShotBackend(target.provider, target.config).run(
                RunRequest(user_text=PROBE_PROMPT)
            )
    except AliceError as exc:
        return f"failed: {type(exc).__name__}: {_first_line(exc.message) or exc.message}"
    except Exception as exc:  # a third-party provider's bug: report it, doctor goes on
        return f"failed: {type(exc).__name__}: {_first_line(str(exc))}"
    if scope.cancelled_caught:
        return f"timed out after {seconds:g} s (the CLI was killed)"
    took = time.monotonic() - started
    reply = _first_line(result.reply)
    return f"ok: replied {reply[:40]!r} in {took:.1f} s"


async def check_target(target: Target, seconds: float, *, probe: float | None = None) -> DoctorRow:
    """Check one target (see the module docstring); never raises except ``trio.Cancelled``.
    ``probe``: seconds for a real one-turn run (None: no probe)."""
    provider = target.provider
    row = DoctorRow(name=target.name, provider=provider.name, profile=target.profile)
    command = provider.command(target.config)
    row = attrs.evolve(row, command=command)
    try:
        ctx = _context(target)
    except AliceError as exc:
        return attrs.evolve(row, problems=(f"config: {exc.message}",))
    except Exception as exc:  # a third-party provider's argv builder
        return attrs.evolve(row, problems=(f"config: {type(exc).__name__}: {exc}",))
    problems: list[str] = []
    warnings: list[str] = []
    notes: list[str] = []
    workspace_ok = ctx.cwd is None or os.path.isdir(ctx.cwd)
    if ctx.cwd is not None:
        row = attrs.evolve(row, workspace=ctx.cwd)
        if not workspace_ok:
            problems.append(f"workspace {ctx.cwd} is not a directory")
    path = shutil.which(command, path=ctx.env.get("PATH", os.defpath)) or ""
    if not path:
        flavor = provider.flavor_of(target.config)
        # a provider nobody configured may well be absent; a profile's CLI may not
        (problems if target.profile else notes).append(f"{command} not found on PATH")
        return attrs.evolve(row, flavor=flavor.name, problems=tuple(problems), notes=tuple(notes),
                            newest_verified=flavor.versions.newest)  # fmt: skip
    cwd = ctx.cwd if workspace_ok else None
    ctx.cwd = cwd
    check = provider.flavor_of(target.config).versions
    rc, out, err = await run_check_command([path, *check.args], seconds, ctx.env, cwd)
    text = f"{out}\n{err}"
    hung = rc is None and err.startswith("timed out")
    version = check.parse(text) if rc is not None else ""
    flavor = provider.flavor_of(target.config)
    installed = _flavor_by_version(provider, flavor, version)
    if installed is not flavor and target.profile:
        # the profile asks for one CLI and another is installed (kimi flavor: legacy with Kimi
        # Code 2.x on PATH): its sessions and flags would not match
        problems.append(
            f"{command} {version} looks like {installed.label or installed.name} "
            f"({provider.flavor_field}: {installed.name}); the profile has "
            f"{provider.flavor_field}: {flavor.name}"
        )
    elif installed is not flavor:
        flavor = installed  # no profile: describe what is installed
    versions = flavor.versions
    shown = " ".join([command, *versions.args])
    if rc is None:
        (warnings if hung else problems).append(f"`{shown}` {err}")
    elif rc != 0:
        problems.append(f"`{shown}` exited {rc}: {ctx.mask(_first_line(err or out))}")
    for marker, note in versions.notes.items():
        if marker in text:
            problems.append(note)
    verdict = versions.compare(version) if version else ("unknown" if rc is not None else "")
    if verdict == "newer":
        warnings.append(
            f"{provider.name} {version} is newer than the newest verified version {versions.newest}"
            " (it may work; docs/providers.md)"
        )
    elif verdict in ("older", "unverified"):
        warnings.append(f"{provider.name} {version} is {verdict}: verified with "
                        f"{', '.join(versions.verified)}")  # fmt: skip
    elif verdict == "unknown" and rc == 0 and versions.verified:
        warnings.append(f"`{shown}` printed no version")
    if flavor.label:
        notes.append(flavor.label)
    if hung:
        logged = "unknown: not checked, the CLI did not answer --version"
    else:
        logged, extra = await _login(flavor.auth, path, ctx, seconds)
        if extra:
            notes.append(extra)
        if logged.startswith("no:"):
            problems.append(NOT_LOGGED_IN)
        elif logged.startswith("unknown") and "timed out" in logged:
            warnings.append(f"login check {logged[9:]}")
    probe_text = ""
    if probe is not None and (hung or not workspace_ok):
        probe_text = "skipped: " + ("the CLI did not answer --version" if hung
                                    else "the workspace is missing")  # fmt: skip
    elif probe is not None:
        # the probe is the ground truth: it runs even when the login was not detected
        probe_text = ctx.mask(await _probe(target, probe))
        if not probe_text.startswith("ok"):
            problems.append(f"probe {probe_text}")
        elif NOT_LOGGED_IN in problems:
            problems.remove(NOT_LOGGED_IN)
            warnings.append("no login detected, yet the probe ran a turn")
    return attrs.evolve(
        row,
        flavor=flavor.name,
        path=path,
        version=version,
        version_status=verdict,
        newest_verified=versions.newest,
        logged_in=ctx.mask(logged),
        probe=probe_text,
        problems=tuple(ctx.mask(p) for p in problems),
        warnings=tuple(ctx.mask(w) for w in warnings),
        notes=tuple(ctx.mask(n) for n in notes),
    )


def cancelled_row(target: Target) -> DoctorRow:
    """The row of a target whose checks a signal cut short."""
    try:
        command = target.provider.command(target.config)
    except Exception:  # a third-party provider's bug: the row still names the target
        command = ""
    return DoctorRow(name=target.name, provider=target.provider.name, profile=target.profile,
                     command=command, cancelled=True)  # fmt: skip


async def check_all(
    targets: list[Target],
    seconds: float,
    *,
    probe: float | None = None,
    into: list[DoctorRow | None] | None = None,
) -> list[DoctorRow]:
    """Check every target concurrently; rows come back in the order of ``targets``.

    ``into`` (as long as ``targets``) receives each row as soon as its target is done, so a
    caller that cancels the checks keeps the finished ones (the others stay None)."""
    rows: list[DoctorRow | None] = [None] * len(targets) if into is None else into

    async def one(i: int, t: Target) -> None:
        rows[i] = await check_target(t, seconds, probe=probe)

    async with trio.open_nursery() as nursery:
        for i, t in enumerate(targets):
            nursery.start_soon(one, i, t)
    return [r for r in rows if r is not None]


# -- output ---------------------------------------------------------------------------------------


def _width() -> int:
    return max(40, min(shutil.get_terminal_size((80, 24)).columns, 100))


class _PathWrapper(textwrap.TextWrapper):
    """Wraps at spaces and, inside a long path, after a ``/`` (never in the middle of a name
    when a slash is there to break at)."""

    wordsep_simple_re = re.compile(r"(\s+|(?<=/)(?=[^/\s]))")


def render_text(rows: list[DoctorRow], width: int = 80) -> str:
    """One block per target, every line wrapped to ``width`` columns; the control characters
    of names and values (from a config file, a CLI's output) are shown in caret form."""
    label_w = 10
    out: list[str] = []

    def field(label: str, value: str) -> None:
        if not value:
            return
        value = display_line(value)  # from a config file or a CLI: shown, never obeyed
        wrapper = _PathWrapper(
            width=width,
            initial_indent=f"  {label:<{label_w}}",
            subsequent_indent=" " * (label_w + 2),
            break_on_hyphens=False,
        )
        out.extend(wrapper.wrap(value) or [f"  {label}"])

    for r in rows:
        head = f"{r.name}: {r.status}"
        if r.profile:
            head = f"{r.name} (profile, provider {r.provider}): {r.status}"
        out.extend(textwrap.wrap(display_line(head), width=width))
        if r.flavor:
            field("flavor", r.flavor)
        field("command", r.path or f"{r.command} (not found)")
        field("workspace", r.workspace)
        if r.version:
            state = {
                "verified": "verified",
                "newer": f"newer than verified {r.newest_verified}",
                "older": f"older than verified {r.newest_verified}",
                "unverified": f"not verified (newest verified {r.newest_verified})",
                "unknown": "no verified versions on record",
            }.get(r.version_status, r.version_status)
            field("version", f"{r.version} ({state})")
        field("login", r.logged_in)
        field("probe", r.probe)
        for p in r.problems:
            field("problem", p)
        for w in r.warnings:
            field("warning", w)
        for n in r.notes:
            field("note", n)
        out.append("")
    counts = {s: sum(r.status == s for r in rows) for s in _STATUSES}
    shown = [f"{n} {_STATUSES[s]}" for s, n in counts.items() if n or s != "not installed"]
    out.append(", ".join(shown))
    out.extend(textwrap.wrap(cleanup_line(), width=width, subsequent_indent="  "))
    return "\n".join(out) + "\n"


def cmd_doctor(args: argparse.Namespace) -> int:
    from .console import config_error as _config_error
    from .console import err as _err
    from .console import with_signals as _with_signals
    from .main import CONFIG_ENV, run_trio

    timeout = DEFAULT_AUTH_STATUS_TIMEOUT
    path = getattr(args, "config", None) or os.environ.get(CONFIG_ENV, "")
    only = list(getattr(args, "profile", None) or [])
    try:
        if path:
            targets, timeout = profile_targets(path, only)
        elif only:
            raise ConfigError(f"--profile needs --config FILE (or ${CONFIG_ENV})")
        else:
            targets = default_targets()
    except ConfigError as exc:
        return _config_error(exc)
    if args.timeout is not None:
        timeout = args.timeout
    if timeout <= 0:
        return _config_error(ConfigError("--timeout must be > 0"))
    probe = None
    if getattr(args, "probe", False):
        probe = args.probe_timeout if args.probe_timeout is not None else DEFAULT_PROBE_TIMEOUT
    done: list[DoctorRow | None] = [None] * len(targets)
    try:
        _, signum = run_trio(
            _with_signals, lambda: check_all(targets, timeout, probe=probe, into=done)
        )
    except KeyboardInterrupt as exc:  # before the signal receiver was in place
        signum = interrupt_signal(exc)
    rows = [row or cancelled_row(t) for row, t in zip(done, targets, strict=True)]
    print_rows(rows, as_json=args.json)
    if signum is None:
        return 0
    _err(signal_name(signum))
    return signal_exit(signum)


def print_rows(rows: list[DoctorRow], *, as_json: bool) -> None:
    """Doctor's output: one JSON list (``--json``) or the text blocks."""
    from .main import result_printed

    result_printed()
    if as_json:
        write_text(sys.stdout, json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
    else:
        write_text(sys.stdout, render_text(rows, _width()))


def interrupted_doctor(args: argparse.Namespace) -> None:
    """A signal ended doctor before its checks started (while it read its config): every
    target it would have checked is printed as cancelled (none when the config is unusable)."""
    from .main import CONFIG_ENV

    path = getattr(args, "config", None) or os.environ.get(CONFIG_ENV, "")
    only = list(getattr(args, "profile", None) or [])
    try:
        targets = profile_targets(path, only)[0] if path else default_targets()
    except Exception:  # the run itself would have stopped at this config: nothing was checked
        targets = []
    print_rows([cancelled_row(t) for t in targets], as_json=bool(getattr(args, "json", False)))


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
