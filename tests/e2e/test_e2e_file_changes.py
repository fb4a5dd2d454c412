"""e2e: a session turn's ``file_change`` events on the real CLIs (docs/embedding.md, "File
changes"): a shell command's create / edit / delete / rename / non-ASCII name are reported by
the turn-end snapshot with workspace-relative paths and the right kinds, and each CLI's own
write tool is reported as it ran — also outside the workspace, which no snapshot sees (where
the CLI lets the write happen there at all)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from cli_env import CLIS, provider_config
from e2e_support import FakeServer, assert_nothing_left
from oneshot_cases import SetupFactory

from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.sessions.session import InteractiveSession, open_session

pytestmark = pytest.mark.e2e
TURN_LIMIT = 120.0
#: each CLI's write tool and its path argument (codex edits with apply_patch only)
WRITE_TOOL = {
    "claude": ("Write", "file_path"),
    "gemini": ("write_file", "file_path"),
    "kimi": ("Write", "path"),
    "kimi_legacy": ("WriteFile", "path"),
    "opencode": ("write", "filePath"),
}


async def turn(session: InteractiveSession, request: RunRequest) -> list[TurnEvent]:
    ref = await session.submit(request)
    seen: list[TurnEvent] = []
    with trio.fail_after(TURN_LIMIT):
        while True:
            seen.append(await session.events().receive())
            if seen[-1].kind.terminal and seen[-1].turn_id == ref.turn_id:
                return seen


def changes(events: list[TurnEvent]) -> set[tuple[str, str]]:
    return {
        (f.path, f.kind.value) for e in events if e.kind is EventKind.FILE_CHANGE for f in e.files
    }


@pytest.mark.parametrize("cli", CLIS)
async def test_file_changes_have_the_right_paths_and_kinds(
    cli_setup: SetupFactory, fake_server: FakeServer, cli: str
) -> None:
    setup = cli_setup(cli)
    work = Path(setup.workspace)
    for name in ("existing.txt", "gone.txt", "old.txt"):
        (work / name).write_text(name)
    shell = "echo a > new.txt; echo b >> existing.txt; rm gone.txt; mv old.txt renamed.txt; "
    shell += "echo x > 'héllo wörld.txt'"
    provider, config = provider_config(setup)
    initial = RunRequest(user_text="(start)", workspace_dir=setup.workspace)
    async with open_session(provider, config, initial=initial) as session:
        events = await turn(session, initial.evolve(user_text=f"[[TOOL]][[CMD:{shell}]] go"))
        assert events[-1].kind is EventKind.TURN_COMPLETED
        assert changes(events) == {
            ("new.txt", "added"),
            ("existing.txt", "modified"),
            ("gone.txt", "deleted"),
            ("old.txt", "deleted"),
            ("renamed.txt", "added"),
            ("héllo wörld.txt", "added"),
        }
        if cli not in WRITE_TOOL:
            return
        tool, argument = WRITE_TOOL[cli]
        for target, reported in (
            (work / "ünï café.txt", "ünï café.txt"),
            (Path(setup.root) / "outside.txt", str(Path(setup.root) / "outside.txt")),
        ):
            call = json.dumps({argument: str(target), "content": "hi\n"})
            events = await turn(session, initial.evolve(user_text=f"[[CALL:{tool}:{call}]] go"))
            assert events[-1].kind is EventKind.TURN_COMPLETED
            if target.exists():  # gemini and opencode (by default) refuse the outside one
                assert {path for path, _ in changes(events)} == {reported}, events
    await assert_nothing_left(setup)
