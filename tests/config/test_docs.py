"""The docs are checked against the code: the generated reference, and the examples run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from alice_trio.config_docs import BEGIN, END, builtin_classes, missing_docs, render

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def example(doc: str, name: str) -> str:
    text = (DOCS / doc).read_text()
    m = re.search(rf"<!-- example: {re.escape(name)} -->\n```python\n(.*?)```", text, re.S)
    assert m, f"{doc} has no example {name!r}"
    return m.group(1)


def test_every_config_key_has_a_description() -> None:
    assert missing_docs(builtin_classes()) == []


def test_configuration_reference_matches_the_classes() -> None:
    text = (DOCS / "configuration.md").read_text()
    current = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert current == render().rstrip("\n"), (
        "docs/configuration.md drifted from the config classes: run "
        "`python -m alice_trio.config_docs --write docs/configuration.md`"
    )


def test_embedding_bot_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "bot.py"
    script.write_text(example("embedding.md", "embedding-bot"))
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("The command printed:") >= 6  # 3 progress + 3 replies
    assert "[bob]" in proc.stdout and "[alice]" in proc.stdout
    assert "'alice': '01a21857-8d93-7d61-8bab-f9ca2ca653ae'" in proc.stdout


def test_embedding_testing_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "bot_test.py"
    script.write_text(example("embedding.md", "embedding-testing"))
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "bot tests passed"


def test_add_backend_example_runs(tmp_path: Path) -> None:
    (tmp_path / "echoagent_provider.py").write_text(example("add-backend.md", "add-backend/module"))
    fake = tmp_path / "echoagent"
    fake.write_text(example("add-backend.md", "add-backend/fake-cli"))
    fake.chmod(0o755)
    (tmp_path / "usage.py").write_text(example("add-backend.md", "add-backend/usage"))
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    proc = subprocess.run(
        [sys.executable, "usage.py"], capture_output=True, text=True, timeout=60,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK echo: ping")
