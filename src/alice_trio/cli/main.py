"""``alice-trio``: run one agent turn, decode a recorded transcript, chat, check the installed CLIs.

Exit codes: 0 ok, 1 the run failed, 2 usage or configuration error, 130 interrupted (SIGINT;
143 for SIGTERM). An interrupted run returns only after the engine has killed and reaped the
agent CLI's whole process tree.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio
import yaml

from .. import __version__
from ..backend import OneShotBackend
from ..config import (
    AppConfig,
    ProfileConfig,
    build_profile,
    load_config,
    override_profile,
)
from ..errors import AliceError, ConfigError, EmptyPromptError
from ..models import RunRequest
from ..providers.registry import get_provider, normalize_name, provider_names
from ..routing import backend_from_config
from .progress import JsonLinesPrinter, ProgressPrinter, result_json

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CONFIG_ENV = "ALICE_TRIO_CONFIG"
#: the prompt of a replay run given none (the replayed agent ignores it)
REPLAY_PROMPT = "Replay the recorded run."


class UsageError(Exception):
    """Bad command-line usage (exit 2)."""


# -- shared helpers -----------------------------------------------------------------------------


def _err(text: str) -> None:
    for line in text.rstrip("\n").split("\n"):
        sys.stderr.write(f"alice-trio: {line}\n")
    sys.stderr.flush()


def _config_error(exc: ConfigError) -> int:
    source = getattr(exc, "source", "")
    text = str(exc)
    if source and not text.startswith(source):
        text = "\n".join(f"{source}: {line}" for line in text.split("\n"))
    _err(text)
    return EXIT_USAGE


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``-o KEY=VALUE`` options; VALUE is read as YAML (``-o speed=0``, ``-o yolo=true``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"-o expects KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key] = value
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
        profile = build_profile("", {"provider": args.provider}, path="--provider")
    else:
        raise UsageError(
            f"give --provider NAME (e.g. --provider replay) or --config FILE (or set {CONFIG_ENV})"
        )
    if overrides:
        profile = override_profile(profile, overrides, path="-o")
    return profile


def _route(app: AppConfig, provider: str, profile: str) -> ProfileConfig:
    if profile and normalize_name(profile) not in app.profiles:
        app.get(profile)  # raises "unknown profile" with the configured ones
    multi = backend_from_config(app)
    backend, routed = multi.route(RunRequest(user_text=".", provider=provider, profile=profile))
    for name, candidate in multi.profile_backends().items():
        if candidate is backend:
            return app.profiles[name]
    raise ConfigError(f"no profile serves provider {routed.provider!r}")  # pragma: no cover


def _read_prompt(args: argparse.Namespace, provider: str) -> str:
    text = " ".join(args.prompt or []).strip()
    if text == "-":
        return sys.stdin.read()
    if text:
        return text
    if provider == "replay":
        return REPLAY_PROMPT
    if sys.stdin is not None and not sys.stdin.isatty():
        return sys.stdin.read()
    raise UsageError("no prompt: give it as arguments, or '-' to read it from stdin")


async def _with_signals(body: Callable[[], Any]) -> tuple[Any, int | None]:
    """Run ``body`` until it returns or SIGINT/SIGTERM arrives; on a signal ``body`` is
    cancelled (the engine then kills and reaps the CLI's process tree before this returns).
    Returns ``(body's value or None, signal number or None)``."""
    caught: list[int] = []
    value: Any = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    caught.append(signum)
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch)
            try:
                value = await body()
            finally:
                nursery.cancel_scope.cancel()
    return value, (caught[0] if caught else None)


def _signal_exit(signum: int) -> int:
    return EXIT_INTERRUPTED if signum == signal.SIGINT else 128 + signum


# -- run ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    try:
        profile = resolve_profile(args)
        provider, config = profile.resolve()
        prompt = _read_prompt(args, provider.name)
    except ConfigError as exc:
        return _config_error(exc)
    except UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    backend = OneShotBackend(provider, config)
    jsonl = JsonLinesPrinter() if args.jsonl else None
    human = None
    if not (args.quiet or jsonl):
        human = ProgressPrinter(plain=args.plain, verbose=args.verbose)
    on_raw = jsonl.on_raw_event if jsonl else (human.on_raw_event if human else None)
    request = RunRequest(
        user_text=prompt,
        thread_id=args.thread or "",
        model=args.model or "",
        workspace_dir=args.cwd or "",
        on_raw_event=on_raw,
    )
    names = {"provider": provider.name, "profile": profile.name}
    outcome: dict[str, Any] = {}

    async def body() -> None:
        try:
            outcome["result"] = await backend.run(request)
        except AliceError as exc:
            outcome["error"] = exc

    if human is not None:
        human.start(f"{provider.name} is working…")
    try:
        _, signum = trio.run(_with_signals, body)
    except KeyboardInterrupt:  # a SIGINT before the signal receiver was installed
        signum = signal.SIGINT
    finally:
        if human is not None:
            human.stop()

    if signum is not None:
        if args.json or jsonl:
            obj = result_json(None, **names, error="interrupted", error_type="Interrupted")
            _emit_json(obj, jsonl)
        _err("interrupted")
        return _signal_exit(signum)
    error: AliceError | None = outcome.get("error")
    if error is not None:
        result = error.partial
        if args.json or jsonl:
            obj = result_json(result, **names, error=error.message, error_type=type(error).__name__)
            if error.stderr_tail:
                obj["stderr_tail"] = error.stderr_tail
            _emit_json(obj, jsonl)
        if human is not None:
            human.summary(result)
        _err(str(error))
        return EXIT_USAGE if isinstance(error, (ConfigError, EmptyPromptError)) else EXIT_FAILED
    result = outcome["result"]
    if args.json or jsonl:
        _emit_json(result_json(result, **names), jsonl)
    else:
        sys.stdout.write(result.reply + ("\n" if not result.reply.endswith("\n") else ""))
        sys.stdout.flush()
    if human is not None:
        human.summary(result)
    return EXIT_OK


def _emit_json(obj: dict[str, Any], jsonl: JsonLinesPrinter | None) -> None:
    if jsonl is not None:
        jsonl.emit({"type": "result", **obj})
    else:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")
        sys.stdout.flush()


# -- replay -------------------------------------------------------------------------------------


def _transcript_stdout(path: Path) -> str:
    """The recorded stdout of ``path``: a raw stdout file, a timeline ``.jsonl``, a capture
    ``.json`` or a case folder holding ``stdout.raw`` / ``timeline.jsonl``."""
    from ..replay_cli import load_transcript

    if path.is_dir():
        for name in ("stdout.raw", "timeline.jsonl"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise OSError(f"{path} is a folder without stdout.raw or timeline.jsonl")
    transcript = load_transcript(path)
    data = b"".join(line for _, stream, line in transcript.lines if stream == "stdout")
    return data.decode("utf-8", errors="replace")


def cmd_replay(args: argparse.Namespace) -> int:
    from ..transcript import decode_transcript, outcome_summary

    try:
        get_provider(args.provider)
    except ConfigError as exc:
        return _config_error(exc)
    try:
        text = _transcript_stdout(Path(args.file))
    except OSError as exc:
        _err(f"cannot read {args.file}: {exc.strerror or exc}")
        return EXIT_USAGE
    try:
        outcome = decode_transcript(args.provider, text, thread_id=args.thread or "")
    except ConfigError as exc:
        return _config_error(exc)
    summary = outcome_summary(outcome)
    if args.json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
        return EXIT_OK
    if summary["reply"]:
        sys.stdout.write(summary["reply"] + "\n")
    printer = ProgressPrinter(plain=args.plain)
    printer.summary(outcome.result)
    if summary["error"]:
        printer.error(summary["error"])
    if outcome.unknown_lines:
        printer.message(f"{outcome.unknown_lines} line(s) were not understood")
    return EXIT_OK


# -- providers ----------------------------------------------------------------------------------


def cmd_providers(args: argparse.Namespace) -> int:
    from ..provider_docs import provider_info  # the records, as docs/providers.md shows them

    rows: list[dict[str, Any]] = []
    for name in provider_names():
        try:
            rows.append(provider_info(get_provider(name)))
        except Exception as exc:  # a broken third-party entry point
            rows.append({"name": name, "error": str(exc)})
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_OK
    for row in rows:
        if "error" in row:
            sys.stdout.write(f"{row['name']:<10} (failed to load: {row['error']})\n")
        else:
            sys.stdout.write(f"{row['name']:<10} {row['description']}\n")
            for f in row["flavors"]:
                s, v = f["session"], f["versions"]
                when = f"[{f['selected_by']}] " if f["selected_by"] else ""
                verified = ", ".join(v["verified"]) or "-"
                sys.stdout.write(f"{'':<10}   {when}sessions {s['protocol']}, steer "
                                 f"{s['steer_mode']}; verified {verified}\n")  # fmt: skip
    return EXIT_OK


# -- argument parsing ---------------------------------------------------------------------------


def _add_target_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to run")
    g.add_argument("--config", "-c", metavar="FILE", help=f"YAML config (default ${CONFIG_ENV})")
    g.add_argument("--profile", "-p", metavar="NAME", help="profile of the config file")
    g.add_argument("--provider", "-P", metavar="NAME", help="provider (" +
                   ", ".join(provider_names()) + ")")  # fmt: skip
    g.add_argument("--command", metavar="PATH", help="the agent CLI to run")
    g.add_argument("--model", "-m", metavar="MODEL", help="model for this run")
    g.add_argument("--cwd", metavar="DIR", help="working directory of the agent")
    g.add_argument("--thread", "-t", metavar="ID", help="thread/session id to resume")
    g.add_argument("--timeout", type=float, metavar="SECS", help="overall timeout")
    g.add_argument(
        "--set", "-o", action="append", metavar="KEY=VALUE",
        help="set a profile key (YAML value), e.g. -o speed=0 -o yolo=true; repeatable",
    )  # fmt: skip
    g.add_argument("--plain", action="store_true", help="no colours or spinner")
    g.add_argument("--verbose", "-v", action="store_true", help="show every event")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alice-trio",
        description="Drive AI coding-agent CLIs: one request in, one agent turn out.",
        epilog="exit codes: 0 ok, 1 the run failed, 2 usage or config error, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"alice-trio {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run one agent turn",
        description="Run one agent turn: live progress on stderr, the reply on stdout.",
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
        "the result. Exit 0 when the file decodes, also when the recorded run failed.",
    )
    replay.add_argument("--provider", "-P", required=True, metavar="NAME")
    replay.add_argument("--thread", "-t", metavar="ID", help="thread id the run resumed")
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.add_argument("--plain", action="store_true", help="no colours")
    replay.add_argument("file", metavar="FILE")
    replay.set_defaults(func=cmd_replay)

    chat = sub.add_parser(
        "chat",
        help="interactive conversation",
        description="Chat with an agent: type while a turn runs to queue (or steer) input, "
        "Ctrl-C interrupts the turn, Ctrl-D ends the chat.",
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
    doctor.add_argument("--timeout", type=float, metavar="SECS",
                        help="deadline of each check (default 15)")  # fmt: skip
    doctor.add_argument("--probe", action="store_true", help="also run one real agent turn")
    doctor.add_argument("--probe-timeout", type=float, metavar="SECS",
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
    """The ``alice-trio`` entry point; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (| head): not our failure
        try:
            sys.stdout = open(os.devnull, "w")  # silence the flush at exit
        except OSError:
            pass
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
