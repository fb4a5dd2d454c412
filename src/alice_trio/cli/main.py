"""``alice-trio``: run one agent turn, decode a recorded transcript, chat, check the installed CLIs.

Exit codes: the table in :mod:`alice_trio.cli.exits` (0 ok, 1 the run failed, 2 usage or
configuration error, 3 agent CLI not found, 4 timeout, 130 SIGINT, 143 SIGTERM). An interrupted
run returns only after the engine has killed and reaped the agent CLI's whole process tree; a
signal never ends in a traceback or an exception group.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import trio

from .. import __version__
from ..backend import OneShotBackend
from ..boundedio import FileTooLargeError, read_fd_bounded
from ..config import (
    AppConfig,
    ProfileConfig,
    build_profile,
    load_config,
    override_profile,
    parse_yaml_value,
)
from ..errors import AliceError, ConfigError, UnknownProviderError
from ..models import RunRequest, TurnEvent
from ..providers.registry import get_provider, normalize_name, provider_names
from ..routing import backend_from_config
from .console import config_error as _config_error
from .console import err as _err
from .console import isatty as _isatty
from .console import with_signals as _with_signals
from .exits import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    UsageError,
    epilog,
    exit_code_for,
    signal_exit,
)
from .progress import PROGRESS_RATE, JsonLinesPrinter, ProgressPrinter
from .result import error_json, result_json
from .signals import Terminated, install, interrupt_signal
from .signals import signal_name as _signal_name
from .streams import display_line, std, stdout_outcome, write_reply, write_text
from .streams import reset as _reset_streams

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "Terminated",
    "main",
]

CONFIG_ENV = "ALICE_TRIO_CONFIG"
#: the prompt of a replay run given none (the replayed agent ignores it)
REPLAY_PROMPT = "Replay the recorded run."
#: the recorded stderr a replay keeps for ``stderr_tail`` (the engine keeps 64 KiB too)
_STDERR_TAIL_CHARS = 64 * 1024


# -- shared helpers -----------------------------------------------------------------------------


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``-o KEY=VALUE`` options; VALUE is read as YAML (``-o speed=0``, ``-o yolo=true``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"-o expects KEY=VALUE, got {item!r}")
        out[key] = parse_yaml_value(value, path=f"-o {key}") if value.strip() else ""
    return out


def _config_path(args: argparse.Namespace) -> str:
    return args.config or os.environ.get(CONFIG_ENV, "")


def resolve_profile(args: argparse.Namespace) -> ProfileConfig:
    """The profile a ``run``/``chat`` command uses, with the command-line overrides applied.

    ``--config`` (or ``$ALICE_TRIO_CONFIG``): the profile is routed by the one router
    (:mod:`alice_trio.routing`) from ``--profile`` / ``--provider`` / the default profile.
    Without a config file, ``--provider`` gives that provider's defaults.
    """
    overrides = _parse_set(args.set or [])
    if args.command:
        overrides["command"] = args.command
    if args.timeout is not None:
        overrides["timeout_secs"] = args.timeout
    path = _config_path(args)
    if path:
        app = load_config(path)
        profile = _route(app, args.provider or "", args.profile or "")
    elif args.profile:
        raise UsageError(f"--profile needs --config FILE (or ${CONFIG_ENV})")
    elif args.provider:
        _check_provider_option(args.provider)
        profile = build_profile("", {"provider": args.provider}, path="--provider")
    else:
        raise UsageError(
            f"give --provider NAME (e.g. --provider replay) or --config FILE (or set {CONFIG_ENV})"
        )
    if overrides:
        profile = override_profile(profile, overrides, path="-o")
    return profile


def _check_provider_option(name: str) -> None:
    """Raise :class:`UsageError` naming the option when ``--provider NAME`` is not a provider."""
    try:
        get_provider(name)
    except UnknownProviderError as exc:
        known = ", ".join(exc.known)
        raise UsageError(
            f'--provider: unsupported provider "{exc.name}"; known providers: {known}'
        ) from None


def _route(app: AppConfig, provider: str, profile: str) -> ProfileConfig:
    if profile and normalize_name(profile) not in app.profiles:
        app.get(profile)  # raises "unknown profile" with the configured ones
    multi = backend_from_config(app)
    backend, routed = multi.route(RunRequest(user_text=".", provider=provider, profile=profile))
    for name, candidate in multi.profile_backends().items():
        if candidate is backend:
            return app.profiles[name]
    raise ConfigError(f"no profile serves provider {routed.provider!r}")  # pragma: no cover


#: the largest prompt read from stdin (``run - </dev/zero`` is a usage error, not an OOM)
MAX_STDIN_PROMPT_BYTES = 16 << 20


def _read_stdin() -> str:
    """All of stdin as text: read as bytes, invalid UTF-8 becomes U+FFFD (never a traceback).
    Raises :class:`UsageError` when it holds more than :data:`MAX_STDIN_PROMPT_BYTES`."""
    stream = sys.stdin
    if stream is None:
        return ""
    limit = MAX_STDIN_PROMPT_BYTES
    buffer = getattr(stream, "buffer", None)
    try:
        if buffer is None:  # a replaced sys.stdin (tests): already text
            text = str(stream.read(limit + 1))
            too_large = len(text) > limit
        else:
            data = _read_all(buffer, limit)
            too_large = len(data) > limit
            text = data.decode("utf-8", "replace")
    except FileTooLargeError:
        too_large = True
    except OSError as exc:
        raise UsageError(f"cannot read the prompt from stdin: {exc.strerror or exc}") from exc
    if too_large:
        raise UsageError(f"the prompt on stdin is larger than {limit >> 20} MiB")
    return text


def _read_all(buffer: Any, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes of a binary stream: from its descriptor in signal-responsive
    waits when it has one (a pipe whose writer stays open must not make Ctrl-C wait for data,
    see :mod:`alice_trio.boundedio`), else through the stream."""
    try:
        fd = buffer.fileno()
    except (AttributeError, OSError, ValueError):
        return bytes(buffer.read(limit + 1))
    return read_fd_bounded(fd, limit, name="stdin")


def _argv_text(text: str) -> str:
    """A command-line argument as clean text: bytes that were not UTF-8 (which Python keeps as
    lone surrogates) become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _read_prompt(args: argparse.Namespace, provider: str) -> str:
    text = _argv_text(" ".join(args.prompt or []).strip())
    if text == "-":
        return _read_stdin()
    if text:
        return text  # argv arrives with surrogateescape; RunRequest makes those U+FFFD
    if provider == "replay":
        return REPLAY_PROMPT
    if sys.stdin is not None and not _isatty(sys.stdin):
        return _read_stdin()
    raise UsageError("no prompt: give it as arguments, or '-' to read it from stdin")


def run_trio(fn: Callable[..., Any], *args: Any) -> Any:
    """``trio.run(fn, *args)``, with a KeyboardInterrupt (Ctrl-C before or after a signal
    receiver was in place; :class:`Terminated` for SIGTERM) that trio delivered inside an
    exception group unwrapped to the bare exception."""
    try:
        return trio.run(fn, *args)
    except BaseExceptionGroup as group:
        interrupt = _interrupt_in(group)
        if interrupt is None:
            raise
        raise interrupt from None


def _interrupt_in(group: BaseExceptionGroup[Any]) -> BaseException | None:
    """The (first) KeyboardInterrupt of ``group`` when it holds nothing else but
    ``trio.Cancelled``; None otherwise."""
    interrupts, rest = group.split(KeyboardInterrupt)
    if interrupts is None or (rest is not None and rest.split(trio.Cancelled)[1] is not None):
        return None
    exc: BaseException = interrupts
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


# -- run ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    try:
        profile = resolve_profile(args)
        provider, config = profile.resolve()
        prompt = _read_prompt(args, provider.name)
    except (ConfigError, UsageError) as exc:
        return _fail(exc)
    names = {"command": "run", "provider": provider.name, "profile": profile.name}
    want_json = bool(args.json or args.jsonl)
    jsonl = JsonLinesPrinter() if args.jsonl else None
    human = None
    if not (args.quiet or jsonl):
        human = ProgressPrinter(
            plain=args.plain,
            verbose=args.verbose,
            # the reply goes to stdout: on one terminal, progress must not show it first
            hold_reply=not want_json and _isatty(sys.stdout) and _isatty(sys.stderr),
            title=f"{provider.name} is working",
        )
    printer: ProgressPrinter | JsonLinesPrinter | None = jsonl or human
    try:
        request = RunRequest(
            user_text=prompt,
            thread_id=args.thread or "",
            model=args.model or "",
            workspace_dir=args.cwd or "",
            # the typed events a batch at a time: no RawEvent and no callback call per event
            on_events=printer.on_events if printer is not None else None,
            # progress for people: a flood shows PROGRESS_RATE events a second, the rest
            # counted (--jsonl and --verbose get every event)
            informational_rate=0 if jsonl or args.verbose else PROGRESS_RATE,
        )
    except (AliceError, ValueError, TypeError) as exc:
        return _fail(exc if isinstance(exc, AliceError) else ConfigError(str(exc)))
    backend = OneShotBackend(provider, config)
    outcome: dict[str, Any] = {}

    async def frames(nursery: trio.Nursery) -> None:
        assert printer is not None
        await printer.run()
        # --jsonl's stdout is gone (| head): nobody reads the events, end the run (exit as
        # streams.stdout_outcome says) instead of letting the agent work on unseen
        nursery.cancel_scope.cancel()

    async def body() -> None:
        async with trio.open_nursery() as nursery:
            if printer is not None:
                nursery.start_soon(frames, nursery)
            if human is not None:
                human.start()
            try:
                outcome["result"] = await backend.run(request)
            except AliceError as exc:
                outcome["error"] = exc
            finally:
                nursery.cancel_scope.cancel()

    try:
        _, signum = run_trio(_with_signals, body)
    except KeyboardInterrupt as exc:  # a signal before the receiver was installed
        signum = interrupt_signal(exc)
    finally:
        if printer is not None:
            printer.close()

    if signum is not None:
        if want_json:
            _emit_interrupted(signum, jsonl, **names)
        _err(_signal_name(signum))
        return signal_exit(signum)
    if not outcome:  # cancelled: --jsonl's stdout was lost (main() says how that ends)
        return EXIT_OK
    error: AliceError | None = outcome.get("error")
    if error is not None:
        if want_json:
            _emit_json(error_json(error, **names), jsonl)
        if human is not None:
            human.finish("")  # a held-back message is not printed on stdout: show it
            human.summary(error.partial)
            human.close()
        _err(str(error))
        return exit_code_for(error)
    result = outcome["result"]
    if want_json:
        _emit_json(result_json(result, **names), jsonl)
    else:
        if human is not None:
            human.finish(result.reply)
            human.close()
        reply = result.reply
        write_reply(sys.stdout, reply)
        if not reply.endswith("\n"):
            write_text(sys.stdout, "\n")
    if human is not None:
        human.summary(result)
        human.close()
    return EXIT_OK


def _fail(exc: BaseException) -> int:
    """Report ``exc`` on stderr; its exit code."""
    if isinstance(exc, ConfigError):
        return _config_error(exc)
    _err(str(exc))
    return exit_code_for(exc)


#: whether this command has printed its result object (``--json``/``--jsonl``)
_result_emitted = False


def result_printed() -> None:
    """Say the command printed its result (a signal after this prints no second one)."""
    global _result_emitted
    _result_emitted = True


def _emit_json(obj: dict[str, Any], jsonl: JsonLinesPrinter | None) -> None:
    result_printed()
    if jsonl is not None:
        jsonl.emit({"type": "result", **obj})
    else:
        write_text(sys.stdout, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


# -- replay -------------------------------------------------------------------------------------


def _transcript_streams(path: Path) -> tuple[str, str]:
    """The recorded stdout and stderr of ``path``: a raw stdout file, a timeline ``.jsonl``, a
    capture ``.json`` or a case folder holding ``stdout.raw`` / ``timeline.jsonl``."""
    from ..replay_cli import load_transcript

    if path.is_dir():
        for name in ("stdout.raw", "timeline.jsonl"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise OSError(f"{path} is a folder without stdout.raw or timeline.jsonl")
    transcript = load_transcript(path)
    out = b"".join(line for _, stream, line in transcript.lines if stream == "stdout")
    err = b"".join(line for _, stream, line in transcript.lines if stream == "stderr")
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _replay_events(args: argparse.Namespace, text: str, printer: ProgressPrinter | None) -> Any:
    """Decode the transcript; its events to ``printer`` (when given) as a run shows them: a
    replay takes no time, so without ``--verbose`` it shows the first
    :data:`~alice_trio.cli.progress.PROGRESS_RATE` informational events and counts the rest."""
    from ..engine.event_rate import EventRate
    from ..transcript import decode_transcript

    if printer is None:
        return decode_transcript(args.provider, text, thread_id=args.thread or "")
    why = f"the first {PROGRESS_RATE} shown, --verbose shows all"
    rate = None if args.verbose else EventRate(PROGRESS_RATE, why=why)
    show = printer.on_events

    def on_events(events: list[TurnEvent]) -> None:
        # TurnEvents in, TurnEvents out (the rate adds its notices, also TurnEvents)
        show(events if rate is None else cast("list[TurnEvent]", rate.filter([*events], 0.0)))

    with printer.batched():
        outcome = decode_transcript(
            args.provider, text, thread_id=args.thread or "", on_events=on_events
        )
        if rate is not None and rate.skipped:
            show([rate.notice()])
    return outcome


def cmd_replay(args: argparse.Namespace) -> int:
    from ..transcript import outcome_error

    try:
        _check_provider_option(args.provider)
    except UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    try:
        text, stderr = _transcript_streams(Path(args.file))
    except OSError as exc:
        _err(f"cannot read {args.file}: {exc.strerror or exc}")
        return EXIT_USAGE
    printer = None
    if not (args.json or args.quiet):
        printer = ProgressPrinter(
            plain=args.plain,
            verbose=args.verbose,
            live=False,  # a replay takes no time: no frames, no status line
            hold_reply=_isatty(sys.stdout) and _isatty(sys.stderr),
        )
    try:
        outcome = _replay_events(args, text, printer)
    except ConfigError as exc:
        return _config_error(exc)
    error, error_type = outcome_error(outcome)
    obj = result_json(
        outcome.result,
        command="replay",
        provider=normalize_name(args.provider),
        error=error,
        error_type=error_type,
        stderr_tail=stderr[-_STDERR_TAIL_CHARS:],
    )
    if args.json:
        write_text(sys.stdout, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")
        return EXIT_OK
    if printer is None:  # --quiet
        printer = ProgressPrinter(plain=args.plain)
    else:
        printer.finish(outcome.result.reply)
        printer.flush()
    if obj["reply"]:
        write_reply(sys.stdout, obj["reply"])
        write_text(sys.stdout, "\n")
    printer.summary(outcome.result)
    if error:
        printer.error(error)
    if outcome.unknown_lines:
        printer.message(f"{outcome.unknown_lines} line(s) were not understood")
    printer.close()
    return EXIT_OK


# -- providers ----------------------------------------------------------------------------------


def _shown(value: Any) -> Any:
    """``value`` with every string in it, at any depth, in :func:`display_line` form."""
    if isinstance(value, str):
        return display_line(value)
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shown(v) for v in value]
    return value


def cmd_providers(args: argparse.Namespace) -> int:
    from ..provider_docs import provider_info  # the records, as docs/providers.md shows them

    rows: list[dict[str, Any]] = []
    for name in provider_names():
        try:
            rows.append(provider_info(get_provider(name)))
        except Exception as exc:  # a broken third-party entry point
            rows.append({"name": name, "error": str(exc)})
    if args.json:
        write_text(sys.stdout, json.dumps(rows, indent=2) + "\n")
        return EXIT_OK
    for row in map(_shown, rows):  # a third-party entry point's texts: shown, never obeyed
        if "error" in row:
            write_text(sys.stdout, f"{row['name']:<10} (failed to load: {row['error']})\n")
        else:
            write_text(sys.stdout, f"{row['name']:<10} {row['description']}\n")
            for f in row["flavors"]:
                s, v = f["session"], f["versions"]
                when = f"[{f['selected_by']}] " if f["selected_by"] else ""
                verified = ", ".join(v["verified"]) or "-"
                write_text(sys.stdout, f"{'':<10}   {when}sessions {s['protocol']}, steer "
                                 f"{s['steer_mode']}; verified {verified}\n")  # fmt: skip
    return EXIT_OK


# -- argument parsing ---------------------------------------------------------------------------


#: stands for the list of provider names in a help text (see :class:`_HelpFormatter`)
_PROVIDERS = "{providers}"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help with the known providers listed, looked up only when help is shown: the list reads
    every installed package's entry points (~20 ms), which a command that only parses its
    arguments does not pay."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text and _PROVIDERS in text:
            text = text.replace(_PROVIDERS, ", ".join(provider_names()).replace("%", "%%"))
        return text


def _add_target_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to run")
    g.add_argument("--config", "-c", metavar="FILE", help=f"YAML config (default ${CONFIG_ENV})")
    g.add_argument("--profile", "-p", metavar="NAME", help="profile of the config file")
    g.add_argument("--provider", "-P", metavar="NAME", help=f"provider ({_PROVIDERS})")
    g.add_argument("--command", metavar="PATH", help="the agent CLI to run")
    g.add_argument("--model", "-m", metavar="MODEL", help="model for this run")
    g.add_argument("--cwd", metavar="DIR", help="working directory of the agent")
    g.add_argument("--thread", "-t", metavar="ID", help="thread/session id to resume")
    g.add_argument("--timeout", type=_seconds, metavar="SECS",
                   help="overall timeout (0 or less: the default, 48 h)")  # fmt: skip
    g.add_argument(
        "--set", "-o", action="append", metavar="KEY=VALUE",
        help="set a profile key (YAML value), e.g. -o speed=0 -o yolo=true; repeatable",
    )  # fmt: skip
    g.add_argument("--plain", action="store_true", help="no colours or spinner")
    g.add_argument(
        "--verbose", "-v", action="store_true",
        help=f"show every event (else a flood shows {PROGRESS_RATE} a second, the rest counted)",
    )  # fmt: skip


def _seconds(text: str) -> float:
    """``run``/``chat --timeout``: a finite number of seconds (``timeout_secs``'s meaning:
    0 or less is its default); ``nan`` and ``inf`` are usage errors named for the option."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    """An option's duration: a finite number of seconds > 0 (``nan``, ``inf``, ``0`` and
    negative values are usage errors)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse writing its help, version and usage errors through :mod:`.streams`, like every
    other output: ``--help >/dev/full`` loses the help and says so (exit 1), ``--help | head``
    is 0, never a traceback or a silent 0."""

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            write_text(file if file is not None else std("stdout"), message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="alice-trio",
        description="Drive AI coding-agent CLIs: one request in, one agent turn out.",
        epilog=epilog(),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"alice-trio {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run one agent turn",
        description="Run one agent turn: live progress on stderr, the reply on stdout. "
        "--json/--jsonl print the result object of docs/cli.md (schema 1).",
        epilog=epilog(),
        formatter_class=_HelpFormatter,
    )
    _add_target_options(run)
    out = run.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the result as one JSON object")
    out.add_argument("--jsonl", action="store_true", help="print every event as a JSON line")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    run.add_argument("prompt", nargs="*", metavar="PROMPT", help="the prompt ('-': stdin)")
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser(
        "replay",
        help="decode a recorded CLI stdout",
        description="Decode a file holding a CLI's raw stdout (or a timeline/capture) and print "
        "the result (--json: the result object of docs/cli.md, as run --json). Exit 0 when the "
        "file decodes, also when the recorded run failed.",
        epilog=epilog(),
        formatter_class=_HelpFormatter,
    )
    replay.add_argument("--provider", "-P", required=True, metavar="NAME")
    replay.add_argument("--thread", "-t", metavar="ID", help="thread id the run resumed")
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.add_argument("--plain", action="store_true", help="no colours")
    replay.add_argument("--quiet", "-q", action="store_true", help="no events, only the result")
    replay.add_argument(
        "--verbose", "-v", action="store_true",
        help=f"show every event (else the first {PROGRESS_RATE} tool calls and the like, the "
        "rest counted)",
    )  # fmt: skip
    replay.add_argument("file", metavar="FILE")
    replay.set_defaults(func=cmd_replay)

    chat = sub.add_parser(
        "chat",
        help="interactive conversation",
        description="Chat with an agent: type while a turn runs to queue (or steer) input, "
        "Ctrl-C interrupts the turn, Ctrl-D ends the chat. Commands: /help, /quit (/exit), "
        "/interrupt, /new, /model NAME, /thread; //text sends a line starting with '/'.",
        epilog=epilog(),
        formatter_class=_HelpFormatter,
    )
    _add_target_options(chat)
    chat.set_defaults(func=_lazy("chat", "cmd_chat"))

    doctor = sub.add_parser(
        "doctor",
        help="check that each profile (or provider) can run here",
        description="For each profile of the config (--config or $ALICE_TRIO_CONFIG), or each "
        "provider without one: the CLI on PATH, its version against the versions alice-trio "
        "verified (newer: a warning), the login, each with the profile's own command, env and "
        "workspace; --probe runs one real turn. Checks run concurrently, each under --timeout.",
    )
    doctor.add_argument("--config", "-c", metavar="FILE", help="check this config's profiles")
    doctor.add_argument("--profile", "-p", action="append", metavar="NAME",
                        help="only this profile (repeatable)")  # fmt: skip
    doctor.add_argument("--timeout", type=_positive_seconds, metavar="SECS",
                        help="deadline of each check (default 15)")  # fmt: skip
    doctor.add_argument("--probe", action="store_true", help="also run one real agent turn")
    doctor.add_argument("--probe-timeout", type=_positive_seconds, metavar="SECS",
                        help="deadline of the probe (default 120)")  # fmt: skip
    doctor.add_argument("--json", action="store_true", help="print JSON")
    doctor.add_argument("--plain", action="store_true", help="(accepted; the output is plain)")
    doctor.set_defaults(func=_lazy("doctor", "cmd_doctor"))

    providers = sub.add_parser("providers", help="list the registered providers")
    providers.add_argument("--json", action="store_true")
    providers.set_defaults(func=cmd_providers)
    return parser


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    def call(args: argparse.Namespace) -> int:
        import importlib

        mod = importlib.import_module(f"alice_trio.cli.{module}")
        return int(getattr(mod, name)(args))

    return call


def main(argv: Sequence[str] | None = None) -> int:
    """The ``alice-trio`` entry point; returns the exit code (see :mod:`alice_trio.cli.exits`).

    While it runs, SIGTERM unwinds like Ctrl-C (:class:`Terminated`) wherever no trio signal
    receiver handles it; the previous handler is restored on return."""
    previous = install()
    _reset_streams()
    try:
        code = _main(argv)
        lost = stdout_outcome()
        if lost is not None and code == EXIT_OK:
            code, message = lost
            if message:
                _err(message)
        return code
    except KeyboardInterrupt as exc:
        signum = interrupt_signal(exc)
        interrupted_result(argv, signum)
        _err(_signal_name(signum))
        return signal_exit(signum)
    except (Exception, BaseExceptionGroup) as exc:  # never a traceback (exits.py)
        # a bug, ours or a plugin's (a provider calling sys.exit inside a run comes as a group)
        _err(f"internal error: {_describe(exc)} (a bug of alice-trio or of a provider plugin)")
        return EXIT_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _describe(exc: BaseException) -> str:
    """``repr`` of ``exc``, or of the exceptions of a group (the first four), on one line."""
    if isinstance(exc, BaseExceptionGroup):
        leaves: list[BaseException] = []
        stack: list[BaseException] = [exc]
        while stack and len(leaves) < 4:
            top = stack.pop(0)
            if isinstance(top, BaseExceptionGroup):
                stack[:0] = top.exceptions
            else:
                leaves.append(top)
        return "; ".join(display_line(repr(e))[:300] for e in leaves)
    return display_line(repr(exc))[:600]


def interrupted_result(argv: Sequence[str] | None, signum: int) -> None:
    """A signal ended the command before its run could answer (while it started or read its
    config): a ``run``/``replay`` that asked for ``--json``/``--jsonl`` still gets its one
    result object on stdout (``ok: false``, the signal's name as the error), ``doctor --json``
    its list with every target ``cancelled``. Nothing when the result was already printed or
    the arguments do not parse."""
    if _result_emitted:
        return
    try:
        args, _ = build_parser().parse_known_args(argv)
    except (SystemExit, Exception):  # unparsable arguments: the one stderr line says it all
        return
    command = getattr(args, "cmd", None)
    if command == "doctor" and getattr(args, "json", False):
        from .doctor import interrupted_doctor

        interrupted_doctor(args)
        return
    if command not in ("run", "replay") or not (
        getattr(args, "json", False) or getattr(args, "jsonl", False)
    ):
        return
    _emit_interrupted(signum, JsonLinesPrinter() if getattr(args, "jsonl", False) else None,
                      command=command, provider=getattr(args, "provider", None) or "",
                      profile=getattr(args, "profile", None) or "")  # fmt: skip


def _emit_interrupted(signum: int, jsonl: JsonLinesPrinter | None, **names: str) -> None:
    """The result object of a run a signal ended (``ok: false``, the signal's name)."""
    name = _signal_name(signum)
    _emit_json(result_json(None, **names, error=name, error_type=name.title()), jsonl)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except BaseExceptionGroup as group:  # a signal trio delivered inside a group
        interrupt = _interrupt_in(group)
        if interrupt is None:
            raise
        raise interrupt from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
