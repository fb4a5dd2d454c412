"""alice_trio.testing: the fakes a bot author tests with run the real engine."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
import trio

from alice_trio import AgentError, OneShotBackend, ProcessFailedError, RunRequest, Usage
from alice_trio.file_changes import FileChange, FileChangeKind
from alice_trio.sessions.backend import SessionBackend
from alice_trio.testing import ScriptedDriver, fake_config, fake_turn


async def test_a_fake_turn_through_the_one_shot_engine() -> None:
    progress: list[str] = []
    result = await OneShotBackend(
        "replay",
        fake_config(
            "the answer",
            thread_id="thr-9",
            progress=["looking"],
            commands=["ls"],
            files=[("src/a.py", "modified")],
            usage=Usage(input_tokens=7, output_tokens=3),
        ),
    ).run(RunRequest(user_text="question", on_progress=progress.append))
    assert result.reply == "the answer"
    assert result.next_thread_id == "thr-9"
    assert result.usage == Usage(input_tokens=7, output_tokens=3)
    assert result.file_changes == (FileChange(path="src/a.py", kind=FileChangeKind.MODIFIED),)
    assert progress == ["looking", "[file_change] - `src/a.py` modified", "the answer"]


async def test_failures_a_bot_must_handle() -> None:
    with pytest.raises(AgentError, match="quota exceeded") as info:
        await OneShotBackend("replay", fake_config(error="quota exceeded")).run(
            RunRequest(user_text="x")
        )
    assert info.value.partial.next_thread_id == "fake-thread"
    with pytest.raises(ProcessFailedError) as crash:
        await OneShotBackend("replay", fake_config("half", exit_code=3, stderr="boom")).run(
            RunRequest(user_text="x")
        )
    assert "boom" in crash.value.stderr_tail


async def test_a_slow_fake_agent_is_cancelled_like_a_real_one() -> None:
    backend = OneShotBackend("replay", fake_config("late", delay=30.0, speed=1.0))
    with trio.move_on_after(0.5) as scope:
        await backend.run(RunRequest(user_text="x"))
    assert scope.cancelled_caught


def test_transcripts_go_where_asked(tmp_path: Path) -> None:
    path = fake_turn("hi", directory=tmp_path)
    assert path.parent == tmp_path and path.read_text().count("\n") >= 4
    with pytest.raises(ValueError, match="delay"):
        fake_turn("hi", delay=-1)


async def test_a_scripted_session_driver_behind_session_backend() -> None:
    def factory(config: object, request: RunRequest) -> ScriptedDriver:
        return ScriptedDriver(auto_reply=True, reply=lambda prompt: prompt.upper())

    async with SessionBackend("codex", driver_factory=factory) as backend:
        result = await backend.run(RunRequest(user_text="hello", env={"ALICE_SESSION_KEY": "u1"}))
    assert result.reply == "HELLO"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"delay": float("inf")}, "delay must be a finite number"),
        ({"delay": float("nan")}, "delay must be a finite number"),
        ({"usage": None}, "usage must be a Usage"),
        ({"progress": "thinking"}, "progress must be a list of strings"),
        ({"commands": "ls -la"}, "commands must be a list of strings"),
        ({"progress": ["ok", 5]}, "progress must be a list of strings, got an item 5"),
        ({"files": [("a.txt", "renamed")]}, "a file kind must be one of"),
        ({"files": [("a.txt",)]}, "files must be (path, kind) pairs"),
        ({"error": 5}, "error must be a string"),
        ({"thread_id": None}, "thread_id must be a string"),
        ({"exit_code": 300}, "exit_code must be 0..255"),
        ({"exit_code": -9999}, "exit_code must be 0..255"),
        ({"exit_code": -int(signal.SIGSTOP)}, "exit_code must be 0..255"),
        ({"exit_code": 1.5}, "exit_code must be an integer"),
    ],
)  # fmt: skip
def test_arguments_a_fake_turn_cannot_write_are_value_errors(
    tmp_path: Path, kwargs: dict[str, object], needle: str
) -> None:
    """Each is a ValueError naming the argument — not an OverflowError/AttributeError from
    inside, nor a turn that plays something else ("thinking" as eight progress messages, exit
    300 as exit 1, a SIGSTOP that leaves the replay stopped until the drain kills it)."""
    with pytest.raises(ValueError, match=re.escape(needle)):
        fake_turn("hi", directory=tmp_path, **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_list_arguments_may_be_any_iterable(tmp_path: Path) -> None:
    path = fake_turn("hi", progress=(p for p in ["one", "two"]), directory=tmp_path)
    assert path.read_text().count("agent_message") == 3  # the two progress texts, the reply
