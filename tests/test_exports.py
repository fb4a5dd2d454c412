"""The public surface is pinned: what ``import alice_trio`` exports, and that the README and the
docs use nothing but public names (and only names that exist)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import alice_trio

ROOT = Path(__file__).resolve().parents[1]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

#: the modules whose ``__all__`` names are public (alice_trio/__init__.py says why)
PUBLIC_MODULES = {
    "alice_trio",
    "alice_trio.errors",
    "alice_trio.models",
    "alice_trio.config",
    "alice_trio.routing",
    "alice_trio.backend",
    "alice_trio.transcript",
    "alice_trio.testing",
    "alice_trio.providers",
    "alice_trio.providers.base",
    "alice_trio.providers.record",
    "alice_trio.providers.registry",
    "alice_trio.providers.codex",
    "alice_trio.providers.claude",
    "alice_trio.providers.gemini",
    "alice_trio.providers.kimi",
    "alice_trio.providers.opencode",
    "alice_trio.providers.replay",
    "alice_trio.sessions",
    "alice_trio.sessions.session",
    "alice_trio.sessions.backend",
    "alice_trio.sessions.driver",
    "alice_trio.sessions.approval",
    # for provider authors: the field checks of config classes (docs/add-backend.md)
    "alice_trio.validation",
    "alice_trio.file_changes",
    # the documented process-cleanup switches (docs/process-cleanup.md)
    "alice_trio.engine.reaper",
    "alice_trio.engine.guardian",
}

EXPORTS = {
    # running turns, routing, configuration
    "OneShotBackend", "run_once", "MultiBackend", "Backend", "backend_from_config",
    "AppConfig", "ProfileConfig", "load_config", "parse_config",
    # the data model
    "RunRequest", "RunResult", "Usage", "TurnEvent", "EventKind", "RawEvent", "ExecPolicy",
    "TurnQuestion", "QuestionInfo", "QuestionOption",
    # sessions
    "open_session", "InteractiveSession", "SessionState", "SessionBackend", "SESSION_KEY_ENV",
    "ScalingConfig",
    "SessionDriver", "SteerMode", "SubmitMode", "SubmitResult", "TurnRef",
    "Approver", "ApprovalRequest", "ApprovalDecision", "ApprovalOption",
    # providers: configs, the record, writing one
    "CodexConfig", "ProfileOverride", "ClaudeConfig", "GeminiConfig", "KimiConfig",
    "OpenCodeConfig", "ReplayConfig", "CLIConfig", "RunLimits",
    "Provider", "Flavor", "SessionSpec", "Capabilities", "VersionCheck", "AuthCheck",
    "CredentialPath", "Invocation", "Decoder", "DecodeOutcome", "JsonLineDecoder",
    "get_provider", "provider_names", "register_provider", "decode_transcript",
    # errors
    "AliceError", "AgentError", "CallbackError", "CLINotFoundError", "ConfigError",
    "EmptyPromptError", "IdleTimeoutError", "JsonRpcError", "LineTooLongError", "NoActiveTurnError",
    "ProcessFailedError", "ProtocolError", "RunInterruptedError", "RunTimeoutError",
    "SessionClosedError", "SessionError", "SessionStateError", "SteerUnsupportedError",
    "TransportClosedError", "ResumeUnsupportedError", "ConversationLimitError",
    "UnknownProviderError",
    "__version__",
}  # fmt: skip


def test_exports_are_pinned() -> None:
    """Adding or removing a public name is a decision: change this list with it."""
    assert set(alice_trio.__all__) == EXPORTS
    for name in EXPORTS:
        assert getattr(alice_trio, name) is not None


def test_the_names_the_docs_need_are_at_top_level() -> None:
    from alice_trio.config import parse_config
    from alice_trio.providers.codex import CodexConfig
    from alice_trio.routing import Backend
    from alice_trio.sessions.backend import SESSION_KEY_ENV

    assert alice_trio.parse_config is parse_config and alice_trio.CodexConfig is CodexConfig
    assert alice_trio.Backend is Backend and alice_trio.SESSION_KEY_ENV == SESSION_KEY_ENV


def test_every_error_is_exported() -> None:
    errors = importlib.import_module("alice_trio.errors")
    for name in errors.__all__:
        assert name in EXPORTS, name


def _code_imports(text: str) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import in the python blocks of a markdown text."""
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        block = re.sub(r"\(\s*([^)]*?)\s*\)", lambda m: m.group(1).replace("\n", " "), block)
        for module, names in re.findall(r"^\s*from (alice_trio[\w.]*) import (.+)$", block, re.M):
            out.append((module, [n.strip() for n in names.split(",") if n.strip()]))
        for module in re.findall(r"^\s*import (alice_trio[\w.]*)", block, re.M):
            out.append((module, []))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_import_only_public_names_that_exist(doc: Path) -> None:
    for module, names in _code_imports(doc.read_text()):
        assert module in PUBLIC_MODULES, f"{doc.name} imports internal module {module}"
        mod = importlib.import_module(module)
        for name in names:
            assert hasattr(mod, name), f"{doc.name}: {module}.{name} does not exist"
            public = getattr(mod, "__all__", None)
            assert public is None or name in public, f"{doc.name}: {module}.{name} is internal"


def test_embedding_guide_imports_from_the_top_level_only() -> None:
    """The guide's bot imports from ``alice_trio`` alone; its tests also from the public fakes
    module ``alice_trio.testing`` (as httpx's tests use its ``MockTransport``)."""
    imports = _code_imports((ROOT / "docs" / "embedding.md").read_text())
    assert imports and {module for module, _ in imports} == {"alice_trio", "alice_trio.testing"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_dotted_names_in_the_docs_exist(doc: Path) -> None:
    """`alice_trio.x.y` mentioned in prose resolves (a renamed or removed name fails here)."""
    for ref in set(re.findall(r"`(alice_trio(?:\.\w+)+)", doc.read_text())):
        parts = ref.split(".")
        obj = None
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for attr in parts[i:]:
                assert hasattr(obj, attr), f"{doc.name} mentions {ref}, which does not exist"
                obj = getattr(obj, attr)
            break
        assert obj is not None, ref


def test_internal_packages_say_so() -> None:
    for package in ("engine", "transports", "protocols", "cli"):
        doc = importlib.import_module(f"alice_trio.{package}").__doc__ or ""
        assert "Internal" in doc, package
