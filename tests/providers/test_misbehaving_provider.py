"""A third-party provider whose own code raises or returns the wrong type (docs/add-backend.md).

Every hook the engine calls — ``prepare_request``, ``build_invocation``, ``new_decoder``, the
decoder's ``feed``/``finish``, ``explain_exit`` — failing in a one-shot run came out of
``OneShotBackend.run`` as the bare ``RuntimeError``/``AttributeError``/``TypeError`` (and
``alice-trio run`` printed an ExceptionGroup traceback), while the same provider failing in a
session was a ``ProtocolError`` ("driver failed"). Now both are a ``ProtocolError`` whose
``__cause__`` is the provider's exception, raised after the CLI's process tree is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from alice_trio import OneShotBackend, RunRequest, SessionBackend
from alice_trio.errors import ProtocolError
from alice_trio.models import EventKind, TurnEvent
from alice_trio.providers.base import CLIConfig, Invocation, JsonLineDecoder, Provider
from alice_trio.validation import checked_fields

FAKE_CLI = """#!{python}
import json, os, sys, time
open({pidfile!r}, "w").write(str(os.getpid()))
sys.stdin.read()
for event in ({{"type": "session", "id": "s-1"}}, {{"type": "message", "text": "hi"}},
              {{"type": "done"}}):
    print(json.dumps(event), flush=True)
time.sleep({linger})
sys.exit({code})
"""


@attrs.frozen(kw_only=True, field_transformer=checked_fields)
class EchoConfig(CLIConfig):
    pass


class EchoDecoder(JsonLineDecoder):
    provider = "misbehaving"

    def _decode(self, obj: dict[str, Any], line: str) -> list[TurnEvent]:
        kind = obj.get("type")
        if kind == "session":
            self.thread_id = str(obj["id"])
            return [self._event(EventKind.THREAD_STARTED, line)]
        if kind == "message":
            return self._assistant(str(obj["text"]), line)
        if kind == "done":
            return [self._complete(line)]
        return [self._unknown(line, "?")]


class Bug(Exception):
    pass


def _raise(*_: Any) -> Any:
    raise Bug("the provider's bug")


def _decoder_with(**methods: Callable[..., Any]) -> type[EchoDecoder]:
    return type("BrokenDecoder", (EchoDecoder,), dict(methods))


#: hook name → what the broken hook does; the Provider fields it replaces
BROKEN: dict[str, dict[str, Any]] = {
    "build_invocation raises": {"build_invocation": _raise},
    "build_invocation returns None": {"build_invocation": lambda request, config: None},
    "new_decoder raises": {"new_decoder": _raise},
    "new_decoder returns None": {"new_decoder": lambda request, config: None},
    "feed raises": {"decoder": _decoder_with(feed=_raise)},
    "feed returns None": {"decoder": _decoder_with(feed=lambda self, line: None)},
    "feed returns strings": {"decoder": _decoder_with(feed=lambda self, line: ["x"])},
    "finish raises": {"decoder": _decoder_with(finish=_raise)},
    "finish returns None": {"decoder": _decoder_with(finish=lambda self: None)},
    "feed returns an event of bytes": {
        "decoder": _decoder_with(
            feed=lambda self, line: [TurnEvent(kind=EventKind.ASSISTANT_TEXT, text=b"x")]  # type: ignore[arg-type]
        )
    },
    "feed returns an event with a dict for usage": {
        "decoder": _decoder_with(
            feed=lambda self, line: [TurnEvent(kind=EventKind.USAGE, usage={"input": 1})]  # type: ignore[arg-type]
        )
    },
    "feed returns a number": {"decoder": _decoder_with(feed=lambda self, line: 42)},
    "prepare_request raises": {"prepare_request": _raise},
    "explain_exit raises": {"explain_exit": _raise, "code": 3},
}


def _provider(tmp_path: Path, case: dict[str, Any], *, linger: float) -> tuple[Provider, Path]:
    pidfile = tmp_path / "pid"
    cli = tmp_path / "echo-cli"
    code = case.get("code", 0)
    cli.write_text(FAKE_CLI.format(python=sys.executable, pidfile=str(pidfile), linger=linger,
                                   code=code))  # fmt: skip
    cli.chmod(0o755)
    decoder_class = case.get("decoder", EchoDecoder)

    def build(request: RunRequest, config: EchoConfig) -> Invocation:
        return Invocation(
            argv=(str(cli),), env={}, cwd=None, stdin=request.prompt.encode(),
            timeout=60.0, idle_timeout=None, limits=config.limits,
        )  # fmt: skip

    def new_decoder(request: RunRequest, config: EchoConfig) -> EchoDecoder:
        return decoder_class(thread_id=request.thread_id)

    provider = Provider(
        name="misbehaving",
        default_command=str(cli),
        config_class=EchoConfig,
        build_invocation=case.get("build_invocation", build),
        new_decoder=case.get("new_decoder", new_decoder),
        explain_exit=case.get("explain_exit"),
        prepare_request=case.get("prepare_request"),
    )
    return provider, pidfile


def _gone(pidfile: Path) -> bool:
    if not pidfile.exists():
        return True  # never spawned
    try:
        os.kill(int(pidfile.read_text()), 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("name", list(BROKEN))
async def test_a_provider_bug_is_a_protocol_error_and_leaves_no_process(
    tmp_path: Path, name: str
) -> None:
    # the CLI lingers after its last line: a decoder failing mid-run fails a live process
    provider, pidfile = _provider(tmp_path, BROKEN[name], linger=0 if "exit" in name else 600)
    backend = OneShotBackend(provider, EchoConfig())
    with pytest.raises(ProtocolError) as caught:
        await backend.run(RunRequest(user_text="ping"))
    assert "misbehaving provider failed" in str(caught.value)
    if "raises" in name:
        assert caught.value.__cause__ is not None
    if "event" in name:  # refused before any callback saw it, naming the field
        assert ("text is bytes" if "bytes" in name else "usage is dict") in str(caught.value)
    assert _gone(pidfile)


async def test_a_working_provider_is_untouched(tmp_path: Path) -> None:
    provider, _ = _provider(tmp_path, {}, linger=0)
    result = await OneShotBackend(provider, EchoConfig()).run(RunRequest(user_text="ping"))
    assert (result.reply, result.next_thread_id) == ("hi", "s-1")


async def test_the_same_bug_in_a_session_is_a_protocol_error_too(tmp_path: Path) -> None:
    provider, pidfile = _provider(tmp_path, BROKEN["feed raises"], linger=600)
    async with SessionBackend(provider, EchoConfig()) as backend:
        with pytest.raises(ProtocolError):
            await backend.run(RunRequest(user_text="ping"))
    assert _gone(pidfile)


async def test_a_cancel_of_a_run_whose_provider_is_broken_is_a_bare_cancel(
    tmp_path: Path,
) -> None:
    """The caller's cancel (here from its progress callback, mid-run) stays ``Cancelled``."""
    provider, pidfile = _provider(tmp_path, BROKEN["finish raises"], linger=600)
    with trio.CancelScope() as scope:
        request = RunRequest(user_text="ping", on_progress=lambda text: scope.cancel())
        await OneShotBackend(provider, EchoConfig()).run(request)
    assert scope.cancelled_caught
    assert _gone(pidfile)


def _installed(tmp_path: Path, name: str, body: str) -> dict[str, str]:
    """The environment of a command that finds provider ``name`` as an installed entry point:
    a module ``<name>_provider`` (``body``, with ``pathlib`` and this module as ``t``) exporting
    ``PROVIDER``."""
    package = tmp_path / "site"
    dist = package / f"{name}_provider-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-provider\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[alice_trio.providers]\n{name} = {name}_provider:PROVIDER\n"
    )
    (package / f"{name}_provider.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import pathlib, test_misbehaving_provider as t\n" + body
    )
    path = [str(package), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


#: what only the command sees: the library passes a provider's SystemExit on, bare
CLI_CASES = {
    **BROKEN,
    "feed exits": {"decoder": _decoder_with(feed=lambda self, line: sys.exit(3))},
}


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("feed raises", "misbehaving provider failed: Bug("),
        ("feed returns an event of bytes", "its decoder's event: text is bytes"),
        ("feed exits", "internal error: SystemExit(3)"),
    ],
)
def test_alice_trio_run_prints_one_line_for_a_broken_entry_point_provider(
    tmp_path: Path, name: str, says: str
) -> None:
    """The same through the CLI, the provider installed as an entry point: one
    ``alice-trio: …`` line and exit 1, no ExceptionGroup traceback."""
    env = _installed(
        tmp_path,
        "misbehaving",
        f"PROVIDER, _ = t._provider(pathlib.Path({str(tmp_path)!r}), t.CLI_CASES[{name!r}],"
        " linger=600)\n",
    )
    argv = [sys.executable, "-m", "alice_trio.cli.main", "run", "--provider", "misbehaving", "hi"]
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=120, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "ExceptionGroup" not in proc.stderr, proc.stderr
    assert says in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert _gone(tmp_path / "pid")


def test_alice_trio_providers_shows_a_plugins_nested_texts_never_obeys_them(
    tmp_path: Path,
) -> None:
    """Every text of a plugin's record, at any depth (a flavor's protocol, its verified
    versions), reaches the terminal in caret form."""
    env = _installed(
        tmp_path,
        "loud",
        "import attrs\n"
        "from alice_trio.providers.record import Flavor, SessionSpec, VersionCheck\n"
        f"base, _ = t._provider(pathlib.Path({str(tmp_path)!r}), {{}}, linger=0)\n"
        "flavor = Flavor(label='loud\\x1b[2J',"
        " session=SessionSpec(protocol='x\\x1b[31mred\\nforged'),"
        " versions=VersionCheck(verified=('1.0\\x07',)))\n"
        "PROVIDER = attrs.evolve(base, name='loud', flavors=(flavor,))\n",
    )
    argv = [sys.executable, "-m", "alice_trio.cli.main", "providers"]
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loud = proc.stdout.split(b"\nloud ", 1)[1]
    assert b"x^[[31mred^Jforged" in loud and b"1.0^G" in loud, proc.stdout
    assert not any(c in proc.stdout for c in (b"\x1b", b"\x07")), proc.stdout
