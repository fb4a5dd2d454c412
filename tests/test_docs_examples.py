"""Every Python example of README.md and docs/*.md runs (or, when it needs a real agent CLI,
at least compiles and imports only names that exist), so a doc example that stops working
fails the suite.

A block is marked by the HTML comment on the line before it:

* ``<!-- example: NAME -->``: a name (``tests/config/test_docs.py`` checks some outputs by it);
* ``<!-- example: needs codex -->`` (any ``needs …``): it needs a real agent CLI — compiled
  (top-level ``await``/``async with`` allowed, as in a fragment) and its ``alice_trio`` imports
  resolved, not run.

Every other block runs as a script in its own folder holding an ``alice.yaml`` (profile ``bot``,
a replay profile) and the add-backend example's ``echoagent_provider.py`` and fake ``echoagent``
executable, with the replay provider and fakes only: offline, no agent CLI. The third-party
registration path of docs/add-backend.md (its entry point table) is followed too: the entry
point is installed as package metadata, and the CLI and the library find the provider by it.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*$")
MARKER = re.compile(r"^\s*<!-- example: (?P<name>.+?) -->\s*$")

#: blocks that the other examples use as files (name → file name in the example's folder)
AS_FILES = {"add-backend/module": "echoagent_provider.py", "add-backend/fake-cli": "echoagent"}

#: what some runnable examples must print (a substring of stdout)
EXPECTED_OUTPUT = {
    "quickstart": "01a21857-8d93-7d61-8bab-f9ca2ca653ae",
    "scaling": "ScalingConfig(share=True, warm=1, max_processes=8",
    "embedding-testing": "bot tests passed",
    "add-backend/usage": "OK echo: ping",
    "approver": "approver ok",
}

#: code run after an example that only defines something, to use what it defines
EPILOGUE = {
    "approver": """
import trio as _trio

from alice_trio import ApprovalDecision as _D, ApprovalRequest as _R

_rm = _R(provider="codex", kind="command", command="rm -rf build")
assert _trio.run(approver, _rm) is _D.DECLINE
assert _trio.run(approver, _R(provider="codex", kind="command", command="ls")) is None
print("approver ok")
""",
}

ALICE_YAML = """\
default_profile: bot
llm_profiles:
  bot:
    provider: replay
    speed: 0
    scaling: {warm: 0, max_turns: 4}
"""


@attrs.frozen
class Block:
    doc: str
    line: int
    lang: str
    code: str
    marker: str  # the marker's text ("" when unmarked)

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}" + (f"[{self.marker}]" if self.marker else "")


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of one markdown file (indented ones in list items too)."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent = len(m["indent"])
        end = i + 1
        while not re.match(r"^\s*```\s*$", lines[end]):
            end += 1
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        prev = MARKER.match(lines[i - 1]) if i else None
        rel = str(path.relative_to(ROOT))
        found.append(Block(rel, i + 1, m["lang"], code, prev["name"] if prev else ""))
        i = end + 1
    return found


ALL = [b for doc in DOCS for b in blocks(doc)]
PYTHON = [b for b in ALL if b.lang == "python"]
NEEDS_CLI = [b for b in PYTHON if b.marker.startswith("needs ")]
RUNNABLE = [b for b in PYTHON if not b.marker.startswith("needs ")]


def named(name: str) -> Block:
    (block,) = [b for b in PYTHON if b.marker == name]
    return block


def env_with_path(*dirs: Path) -> dict[str, str]:
    path = [*map(str, dirs), str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def run_python(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def example_folder(tmp_path: Path) -> Path:
    (tmp_path / "alice.yaml").write_text(ALICE_YAML)
    for name, file_name in AS_FILES.items():
        target = tmp_path / file_name
        target.write_text(named(name).code)
        target.chmod(0o755)
    return tmp_path


def test_the_docs_have_examples() -> None:
    """The extraction itself works: a regex that silently finds nothing would pass every test."""
    assert len(RUNNABLE) >= 8 and len(NEEDS_CLI) >= 2, [b.id for b in PYTHON]
    assert set(EXPECTED_OUTPUT) | set(AS_FILES) | set(EPILOGUE) <= {b.marker for b in PYTHON}


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_example_runs(block: Block, tmp_path: Path) -> None:
    folder = example_folder(tmp_path)
    script = folder / "example_under_test.py"
    script.write_text(block.code + EPILOGUE.get(block.marker, ""))
    proc = run_python([script.name], folder, env_with_path(folder))
    assert proc.returncode == 0, f"{block.id} failed:\n{proc.stderr[-4000:]}"
    expected = EXPECTED_OUTPUT.get(block.marker)
    if expected is not None:
        assert expected in proc.stdout, f"{block.id} printed:\n{proc.stdout[-2000:]}"


def alice_trio_imports(tree: ast.AST) -> list[tuple[str, str]]:
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("alice_trio")
        for alias in node.names
    ]


@pytest.mark.parametrize("block", NEEDS_CLI, ids=lambda b: b.id)
def test_example_needing_a_cli_compiles(block: Block) -> None:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT | ast.PyCF_ONLY_AST
    tree = compile(block.code, block.id, "exec", flags=flags)
    imports = alice_trio_imports(tree)
    assert imports, f"{block.id} imports nothing from alice_trio"
    for module, name in imports:
        assert hasattr(importlib.import_module(module), name), f"{block.id}: {module}.{name}"


def test_every_python_example_imports_real_names() -> None:
    for block in PYTHON:
        tree = ast.parse(block.code) if block in RUNNABLE else None
        for module, name in alice_trio_imports(tree) if tree else []:
            assert hasattr(importlib.import_module(module), name), f"{block.id}: {module}.{name}"


def test_config_examples_load() -> None:
    """The YAML profiles of the docs (other than the add-backend one, below) and
    config.example.yaml structure without an error."""
    import yaml

    from alice_trio import load_config, parse_config

    yamls = [b for b in ALL if b.lang == "yaml" and "echoagent" not in b.code]
    assert yamls
    for block in yamls:
        app = parse_config(yaml.safe_load(block.code))
        for name in app.profiles:
            app.profile(name)
    example = load_config(ROOT / "config.example.yaml")
    assert example.profile()[0].name == "replay"


def test_add_backend_entry_point_registration(tmp_path: Path) -> None:
    """docs/add-backend.md step 2, third party: the provider module in its own package whose
    metadata holds the entry point table of the doc — no ``register_provider`` call. The
    ``alice-trio`` CLI runs it, the library finds it, the doc's YAML profile loads into it."""
    folder = example_folder(tmp_path)
    (toml_block,) = [b for b in ALL if b.lang == "toml" and "alice_trio.providers" in b.code]
    table = tomllib.loads(toml_block.code)["project"]["entry-points"]["alice_trio.providers"]
    assert table == {"echoagent": "echoagent_provider:PROVIDER"}
    dist = folder / "echoagent_provider-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: echoagent-provider\nVersion: 0.1\n"
    )
    lines = [f"{name} = {target}" for name, target in table.items()]
    (dist / "entry_points.txt").write_text("[alice_trio.providers]\n" + "\n".join(lines) + "\n")
    env = env_with_path(folder)
    echo = str(folder / "echoagent")

    cli = "import sys; from alice_trio.cli.entry import main; sys.argv[0] = 'alice-trio'; main()"
    proc = run_python(
        [
            "-c",
            cli,
            "run",
            "--provider",
            "echoagent",
            "--command",
            echo,
            "-o",
            "verbose=true",
            "ping",
        ],
        folder,
        env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("echo: ping argv=['run', '--json', '--verbose', '-']"), (
        proc.stdout
    )
    listed = run_python(["-c", cli, "providers"], folder, env)
    assert listed.returncode == 0 and "echoagent" in listed.stdout, listed.stderr

    (yaml_block,) = [b for b in ALL if b.lang == "yaml" and "provider: echoagent" in b.code]
    (folder / "echo.yaml").write_text(yaml_block.code)
    library = f"""
import trio, attrs
from alice_trio import RunRequest, backend_from_config, get_provider, load_config
assert get_provider("echoagent").config_class.__name__ == "EchoAgentConfig"
app = load_config("echo.yaml")
provider, config = app.profile("echo")
assert config.verbose and config.model == "echo-1" and config.timeout == 600, config
app = attrs.evolve(app, profiles={{"echo": attrs.evolve(app.get("echo"),
    config=attrs.evolve(config, command={echo!r}))}})
result = trio.run(backend_from_config(app).run, RunRequest(user_text="hi"))
print(result.reply)
"""
    proc = run_python(["-c", library], folder, env)
    assert proc.returncode == 0, proc.stderr
    reply = "echo: hi argv=['run', '--json', '--model=echo-1', '--verbose', '-']"
    assert proc.stdout.strip() == reply, proc.stdout


#: a recorded claude turn whose Write tool ran (docs/cli.md: `replay --json` prints the result
#: object a live run prints, `file_changes` included)
CLAUDE_WRITE = "\n".join(
    [
        '{"type":"system","subtype":"init","session_id":"s-1"}',
        '{"type":"assistant","message":{"id":"m1","role":"assistant","content":[{"type":"tool_use",'
        '"id":"t1","name":"Write","input":{"file_path":"a.txt","content":"x"}}]},"session_id":"s-1"}',
        '{"type":"user","message":{"role":"user","content":[{"type":"tool_result",'
        '"tool_use_id":"t1","content":"ok","is_error":false}]},"session_id":"s-1"}',
        '{"type":"assistant","message":{"id":"m2","role":"assistant","content":[{"type":"text",'
        '"text":"done"}]},"session_id":"s-1"}',
        '{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s-1",'
        '"usage":{"input_tokens":1,"output_tokens":1}}',
    ]
)


def test_replay_json_reports_the_recorded_file_changes(tmp_path: Path) -> None:
    import json

    from alice_trio import decode_transcript

    outcome = decode_transcript("claude", CLAUDE_WRITE)
    assert [(c.path, c.kind.value) for c in outcome.result.file_changes] == [("a.txt", "written")]
    (tmp_path / "stdout.raw").write_text(CLAUDE_WRITE)
    cli = "import sys; from alice_trio.cli.entry import main; sys.argv[0] = 'alice-trio'; main()"
    args = ["-c", cli, "replay", "--provider", "claude", "--json", "stdout.raw"]
    proc = run_python(args, tmp_path, env_with_path())
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["reply"] == "done"
    assert [(c["path"], c["kind"]) for c in obj["file_changes"]] == [("a.txt", "written")]
