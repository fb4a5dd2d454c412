"""One exit-code table (``alice_trio.cli.exits``) for the code, ``--help`` and ``docs/cli.md``;
every error class has a documented code."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from alice_trio import errors
from alice_trio.cli.exits import EXIT_CODES, UsageError, exit_code_for, markdown_table

from cli_support import CLI

ROOT = Path(__file__).resolve().parents[2]


def test_docs_hold_the_table_of_the_code() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    assert markdown_table() in doc
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", doc, re.M)}
    assert documented == {row.code for row in EXIT_CODES}


@pytest.mark.parametrize("command", [[], ["run"], ["replay"], ["chat"]])
def test_help_lists_every_exit_code(command: list[str]) -> None:
    proc = subprocess.run([*CLI, *command, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for row in EXIT_CODES:
        assert f"{row.code} {row.name}: {' '.join(row.meaning.split())}" in text


def _error_classes() -> list[type[BaseException]]:
    out = []
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, errors.AliceError):
            out.append(obj)
    return out


def _instance(cls: type[BaseException]) -> BaseException:
    if cls is errors.UnknownProviderError:
        return cls("x", ["codex"])
    return cls("boom")


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_has_a_documented_code(cls: type[BaseException]) -> None:
    code = exit_code_for(_instance(cls))
    assert code in {row.code for row in EXIT_CODES}
    assert code not in (0, 130, 143)


def test_the_mapping_picks_the_most_specific_row() -> None:
    assert exit_code_for(errors.CLINotFoundError("x")) == 3
    assert exit_code_for(errors.RunTimeoutError("x")) == 4
    assert exit_code_for(errors.IdleTimeoutError("x")) == 4
    assert exit_code_for(errors.ConfigError("x")) == 2
    assert exit_code_for(errors.UnknownProviderError("x", [])) == 2
    assert exit_code_for(errors.EmptyPromptError("x")) == 2
    assert exit_code_for(UsageError("x")) == 2
    assert exit_code_for(errors.AgentError("x")) == 1
    assert exit_code_for(errors.ProcessFailedError("x")) == 1
    assert exit_code_for(errors.SessionClosedError("x")) == 1


def test_run_trio_unwraps_an_interrupt_delivered_in_a_group() -> None:
    """Ctrl-C that trio delivers inside a nursery (before a signal receiver is in place) comes
    out of the CLI's trio.run as a bare KeyboardInterrupt, not a BaseExceptionGroup."""
    import trio

    from alice_trio.cli.main import Terminated, run_trio

    async def body(exc: BaseException) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await trio.lowlevel.checkpoint()
            raise exc

    for exc in (KeyboardInterrupt(), Terminated()):
        with pytest.raises(KeyboardInterrupt) as info:
            run_trio(body, exc)
        assert type(info.value) is type(exc)
    with pytest.raises(BaseExceptionGroup):  # anything else is not hidden
        run_trio(body, ValueError("mine"))
