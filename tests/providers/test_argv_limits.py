"""What ``execve`` would refuse is a ConfigError before anything is spawned (issue 12 item 5):
a prompt that must go into argv (Kimi Code, gemini ``prompt_via: argv``) longer than one
argument may be or holding a NUL byte, and a NUL in any argv element, env value or cwd any
provider builds. Prompts go on stdin wherever the CLI reads them there."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import ConfigError
from alice_trio.models import ExecPolicy, RunRequest
from alice_trio.providers.base import MAX_ARG_STRLEN, Invocation, check_argument
from alice_trio.providers.registry import get_provider

PROVIDERS = ("codex", "claude", "gemini", "kimi", "opencode", "replay")
ARGV_PROMPT = [("kimi", {}), ("gemini", {"prompt_via": "argv"})]
STDIN_PROMPT = [
    ("codex", {}), ("claude", {}), ("gemini", {}), ("kimi", {"flavor": "legacy"}),
    ("opencode", {}), ("replay", {}),
]  # fmt: skip
BIG = "x" * 200_000


@pytest.mark.parametrize(("name", "config"), ARGV_PROMPT)
@pytest.mark.parametrize("prompt", [BIG, "a\x00b"], ids=["200KB", "NUL"])
def test_an_argv_prompt_that_cannot_be_executed_is_refused(
    name: str, config: dict[str, str], prompt: str
) -> None:
    provider = get_provider(name)
    with pytest.raises(ConfigError) as info:
        provider.build_invocation(RunRequest(user_text=prompt), provider.config_class(**config))
    text = str(info.value)
    assert ("131,071 bytes (MAX_ARG_STRLEN)" in text) or ("NUL byte" in text)
    assert "stdin" in text  # says where the prompt could go instead


@pytest.mark.parametrize(("name", "config"), STDIN_PROMPT)
def test_stdin_prompts_have_no_argv_limit(name: str, config: dict[str, str]) -> None:
    provider = get_provider(name)
    inv = provider.build_invocation(RunRequest(user_text=BIG + "\x00"),
                                    provider.config_class(**config))  # fmt: skip
    assert inv.stdin is not None and BIG.encode() in inv.stdin
    assert all(len(a) < 1000 for a in inv.argv)


@pytest.mark.parametrize(("name", "config"), ARGV_PROMPT)
def test_the_limit_is_exact(name: str, config: dict[str, str]) -> None:
    """The largest prompt one argument holds is accepted; one byte more is not."""
    provider = get_provider(name)
    room = MAX_ARG_STRLEN - 1 - len("--prompt=")
    inv = provider.build_invocation(RunRequest(user_text="é" * (room // 2)),
                                    provider.config_class(**config))  # fmt: skip
    assert max(len(a.encode()) for a in inv.argv) == MAX_ARG_STRLEN - 1 - room % 2
    with pytest.raises(ConfigError):
        provider.build_invocation(RunRequest(user_text="y" * (room + 1)),
                                  provider.config_class(**config))  # fmt: skip


def test_the_constant_is_the_kernel_limit() -> None:
    """Exec ``true`` with an argument of exactly the accepted size, then one byte more."""
    if not sys.platform.startswith("linux"):
        pytest.skip("MAX_ARG_STRLEN is a Linux limit")
    ok = "a" * (MAX_ARG_STRLEN - 1)
    check_argument(ok, "arg")
    subprocess.run(["true", ok], check=True)
    with pytest.raises(OSError) as info:
        subprocess.run(["true", ok + "a"], check=True)
    assert info.value.errno == errno.E2BIG
    with pytest.raises(ConfigError):
        check_argument(ok + "a", "arg")


BAD_VALUES = {
    "model": dict(model="gpt\x00x"),
    "thread": dict(thread_id="abc\x00"),
    "add_dir": dict(exec_policy=lambda: ExecPolicy(add_dirs=["/tmp/\x00x"])),
    "env": dict(env={"A": "b\x00c"}),
    "workspace": dict(workspace_dir="/tmp\x00/x"),
}


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("where", list(BAD_VALUES))
def test_a_nul_anywhere_is_a_config_error(name: str, where: str) -> None:
    provider = get_provider(name)
    with pytest.raises(ConfigError):
        kw = {k: v() if callable(v) else v for k, v in BAD_VALUES[where].items()}
        request = RunRequest(user_text="hi", **kw)
        provider.build_invocation(request, provider.config_class())


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_nul_in_config_extra_args_is_a_config_error(name: str) -> None:
    provider = get_provider(name)
    with pytest.raises(ConfigError, match="NUL"):
        provider.build_invocation(RunRequest(user_text="hi"),
                                  provider.config_class(extra_args=["--x=\x00"]))  # fmt: skip


def test_invocation_checks_every_element() -> None:
    with pytest.raises(ConfigError, match=r"argv\[1\].*NUL"):
        Invocation(argv=("a", "b\x00"))
    with pytest.raises(ConfigError, match="MAX_ARG_STRLEN"):
        Invocation(argv=("a", "b" * MAX_ARG_STRLEN))
    with pytest.raises(ConfigError, match=r"env B.*NUL"):
        Invocation(argv=("a",), env={"B": "\x00"})
    with pytest.raises(ConfigError, match="must not contain '='"):
        Invocation(argv=("a",), env={"B=C": "x"})
    with pytest.raises(ConfigError, match="ARG_MAX"):
        Invocation(argv=("a",) + ("b" * 100_000,) * 30)
    with pytest.raises(ConfigError, match="empty argv"):
        Invocation(argv=())


async def test_nothing_is_spawned(tmp_path: os.PathLike[str]) -> None:
    """The one-shot path raises the typed error, not OSError E2BIG / ValueError."""
    marker = os.path.join(os.fspath(tmp_path), "spawned")
    provider = get_provider("kimi")
    config = provider.config_class(command="/bin/sh", extra_args=["-c", f"touch {marker}"])
    for prompt in (BIG, "a\x00b"):
        with pytest.raises(ConfigError):
            await run_oneshot(provider, config, RunRequest(user_text=prompt))
    assert not os.path.exists(marker)
