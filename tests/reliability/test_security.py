"""Security: no shell and no evaluation of data anywhere; user values can never be read as
flags; prompts go through stdin where the CLI allows (not in ``ps``, no ARG_MAX); env values
(API keys) never reach an error, a raw event or a repr; the workspace dir is validated before
anything is spawned; JSON-RPC frames over the limit are refused (see test_c11)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import AliceError, ConfigError
from alice_trio.models import ExecPolicy, RunRequest
from alice_trio.protocols.jsonrpc import Notification, Request, parse_line
from alice_trio.providers.base import CLIConfig, Invocation
from alice_trio.providers.registry import get_provider
from alice_trio.providers.replay import PROVIDER as REPLAY
from alice_trio.providers.replay import ReplayConfig

from fake_provider import PROVIDER
from reliability_support import FAST, cfg, marked, new_mark, req
from transcripts_index import ROOT

SRC = Path(__file__).parents[2] / "src" / "alice_trio"
SECRET = "sk-secret-0123456789abcdef"
ENV = {"OPENAI_API_KEY": SECRET, "ANTHROPIC_API_KEY": SECRET + "-b"}


# -- no shell, no eval ------------------------------------------------------------------------
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


def _safe_yaml_loader(path: Path, call: ast.Call) -> bool:
    """``yaml.load(..., Loader=X)`` is fine when X is (a subclass of) yaml.SafeLoader."""
    import importlib

    import yaml

    loader = next((kw.value for kw in call.keywords if kw.arg == "Loader"), None)
    if loader is None:
        return False
    rel = path.relative_to(SRC.parent).with_suffix("")
    module = importlib.import_module(".".join(rel.parts))
    obj = getattr(module, loader.id, None) if isinstance(loader, ast.Name) else None
    if obj is None and isinstance(loader, ast.Attribute):
        obj = getattr(yaml, loader.attr, None)
    return isinstance(obj, type) and issubclass(obj, yaml.SafeLoader)


FORBIDDEN_CALLS = {
    "eval", "exec", "os.system", "os.popen", "subprocess.getoutput",
    "subprocess.getstatusoutput", "asyncio.create_subprocess_shell", "pickle.loads",
    "pickle.load", "marshal.loads", "yaml.load", "yaml.unsafe_load",
}  # fmt: skip
SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "zsh", "cmd", "cmd.exe", "powershell"}


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: p.name)
def test_no_shell_and_no_evaluation_of_data(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for call in _calls(tree):
        name = _name(call.func)
        if name == "yaml.load" and _safe_yaml_loader(path, call):
            continue
        assert name not in FORBIDDEN_CALLS, f"{path.name}:{call.lineno} calls {name}"
        for kw in call.keywords:
            if kw.arg == "shell":
                assert isinstance(kw.value, ast.Constant) and kw.value.value is False, (
                    f"{path.name}:{call.lineno} passes shell="
                )
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple) and len(node.elts) >= 2:
            first, second = node.elts[0], node.elts[1]
            if (
                isinstance(first, ast.Constant)
                and first.value in SHELLS
                and isinstance(second, ast.Constant)
                and second.value in ("-c", "/c", "-Command")
            ):
                pytest.fail(f"{path.name}:{node.lineno} builds a shell command line")


def test_jsonrpc_parser_never_evaluates():
    evil = '{"jsonrpc":"2.0","id":1,"method":"__import__(\'os\').system(\'touch /tmp/x\')"}'
    msg = parse_line(evil)
    assert isinstance(msg, Request) and msg.method.startswith("__import__")
    note = parse_line('{"method":"session/update","params":{"__class__":"x","eval":"1+1"}}')
    assert isinstance(note, Notification) and note.params == {"__class__": "x", "eval": "1+1"}


# -- flags --------------------------------------------------------------------------------------
STDIN_PROVIDERS = {
    "codex": {},
    "claude": {},
    "gemini": {},
    "opencode": {},
    "kimi": {"flavor": "legacy"},
}
HOSTILE = st.text(min_size=1, max_size=20).map(lambda s: "-" + s.replace("\x00", ""))


def _flag_safe(argv: tuple[str, ...], value: str, baseline: tuple[str, ...] = ()) -> None:
    """``value`` never stands alone in argv before a ``--`` end-of-options marker. Occurrences
    that the provider puts there itself (``baseline``: the argv built without the user value,
    e.g. claude's own ``-p``) are the provider's flags, not the user's value."""
    own = baseline.count(value)
    for i, arg in enumerate(argv):
        if arg == value:
            if own:
                own -= 1
                continue
            assert "--" in argv[1:i], f"{value!r} can be read as a flag in {argv}"


CONFIGS = [
    ("codex", {}),
    ("claude", {}),
    ("gemini", {}),
    ("gemini", {"prompt_via": "argv"}),
    ("kimi", {}),
    ("kimi", {"flavor": "legacy"}),
    ("opencode", {}),
]


@pytest.mark.parametrize(("name", "extra"), CONFIGS, ids=[f"{n}{e}" for n, e in CONFIGS])
@settings(max_examples=60, deadline=None)
@given(prompt=HOSTILE, thread=HOSTILE, model=HOSTILE, add_dir=HOSTILE)
def test_user_values_starting_with_a_dash_are_never_flags(name, extra, prompt, thread, model,
                                                          add_dir):  # fmt: skip
    provider = get_provider(name)
    config = provider.config_class(**extra)
    values = {"prompt": prompt, "thread": thread, "model": model, "add_dir": add_dir}
    for key, value in values.items():
        request = RunRequest(
            user_text=value if key == "prompt" else "hello",
            thread_id=value if key == "thread" else "",
            model=value if key == "model" else "",
            exec_policy=ExecPolicy(add_dirs=(value,)) if key == "add_dir" else None,
        )
        if not request.prompt or (key != "prompt" and not value.strip()):
            continue
        try:
            inv = provider.build_invocation(request, config)
        except ConfigError:
            continue  # refusing a value that would read as a flag is safe too
        baseline = provider.build_invocation(RunRequest(user_text="hello"), config).argv
        _flag_safe(inv.argv, value.strip(), baseline)


@pytest.mark.parametrize("name", sorted(STDIN_PROVIDERS))
def test_prompt_is_not_in_argv_for_stdin_providers(name: str):
    provider = get_provider(name)
    config = provider.config_class(**STDIN_PROVIDERS[name])
    prompt = "TOP-SECRET-PROMPT " * 10_000  # 180 kB: over the 128 kB single-argument limit
    inv = provider.build_invocation(RunRequest(user_text=prompt), config)
    assert not any("TOP-SECRET-PROMPT" in a for a in inv.argv)
    assert inv.stdin is not None and b"TOP-SECRET-PROMPT" in inv.stdin


async def test_prompt_is_not_visible_in_ps_while_running():
    """/proc/<pid>/cmdline of every process of a running replay (prompt on stdin)."""
    mark = new_mark()
    transcript = ROOT / "codex" / "codex_exec_tool" / "timeline.jsonl"
    config = ReplayConfig(transcript=str(transcript), speed=1.0, limits=FAST)
    cmdlines: list[bytes] = []

    async def watch() -> None:
        while not cmdlines:
            for pid in marked(mark):
                try:
                    cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
                except OSError:
                    pass
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await run_oneshot(REPLAY, config, req(mark, user_text="SECRET-PROMPT-42"))
        nursery.cancel_scope.cancel()
    assert cmdlines and all(b"SECRET-PROMPT-42" not in c for c in cmdlines)


# -- secrets ------------------------------------------------------------------------------------
ENDINGS = [
    ("--crash", "2"),
    ("--die-signal", "9"),
    ("--fail", "overloaded"),
    ("--no-done",),
    ("--sleep", "30"),
    ("--giant-line", "5000"),
    ("--garbage", "--crash", "1"),
]


def _texts(err: AliceError) -> list[str]:
    return [str(err), repr(err), err.message, err.stderr_tail, repr(err.partial), repr(err.args)]


@pytest.mark.parametrize("args", ENDINGS, ids=lambda a: a[0])
async def test_env_secrets_never_appear_in_errors_or_raw_events(args):
    raw = []
    config = cfg(*args, env=ENV, idle_timeout=0.3, limits_kw={"max_line_bytes": 1000})
    with pytest.raises(AliceError) as info:
        await run_oneshot(PROVIDER, config, req(env=ENV, on_raw_event=raw.append))
    for text in _texts(info.value):
        assert SECRET not in text
    for event in raw:
        assert SECRET not in event.line and SECRET not in event.detail


async def test_env_secrets_not_in_spawn_and_config_errors(tmp_path: Path):
    bad_cmd = cfg(env=ENV)
    errors: list[AliceError] = []
    for config, request in [
        (bad_cmd, req(env=ENV, workspace_dir=str(tmp_path / "missing"))),
        (cfg(env=ENV), req(env=ENV, user_text="  ")),
    ]:
        with pytest.raises(AliceError) as info:
            await run_oneshot(PROVIDER, config, request)
        errors.append(info.value)
    missing = get_provider("codex")
    with pytest.raises(AliceError) as info:
        await run_oneshot(
            missing, missing.config_class(command="/nonexistent/codex", env=ENV),
            RunRequest(user_text="x", env=ENV),
        )  # fmt: skip
    errors.append(info.value)
    for err in errors:
        for text in _texts(err):
            assert SECRET not in text


def test_reprs_hide_env_values():
    request = RunRequest(user_text="x", env=ENV)
    config = CLIConfig(env=ENV)
    inv = Invocation(argv=("a",), env=ENV)
    for obj in (request, config, inv, get_provider("claude").config_class(env=ENV)):
        text = repr(obj)
        assert SECRET not in text and "OPENAI_API_KEY" in text


# -- workspace -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["missing", "file", "nul"])
async def test_workspace_dir_is_validated_before_spawning(kind: str, tmp_path: Path):
    mark = new_mark()
    if kind == "missing":
        wd = str(tmp_path / "nope")
    elif kind == "file":
        (tmp_path / "f").write_text("x")
        wd = str(tmp_path / "f")
    else:
        wd = str(tmp_path) + "\x00/etc"
    with pytest.raises(ConfigError, match=r"workspace.dir"):
        await run_oneshot(PROVIDER, cfg("--sleep", "30"), req(mark, workspace_dir=wd))
    assert marked(mark) == []


@pytest.mark.parametrize("name", ["codex", "claude", "gemini", "kimi", "opencode"])
async def test_every_provider_refuses_a_missing_workspace(name: str, tmp_path: Path):
    provider = get_provider(name)
    config = provider.config_class(command="/bin/true")
    request = RunRequest(user_text="hi", workspace_dir=str(tmp_path / "missing"))
    with pytest.raises(ConfigError):
        await run_oneshot(provider, config, request)


def test_workspace_with_a_leading_dash_is_cwd_not_argv(tmp_path: Path):
    wd = tmp_path / "-rf"
    wd.mkdir()
    for name in ("codex", "claude", "gemini", "kimi", "opencode"):
        provider = get_provider(name)
        inv = provider.build_invocation(
            RunRequest(user_text="hi", workspace_dir=str(wd)), provider.config_class()
        )
        assert os.path.samefile(inv.cwd, wd)
        _flag_safe(inv.argv, str(wd))
