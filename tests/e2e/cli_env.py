"""Isolated environments for the real agent CLIs against the fake model server (no pytest here).

``CliSetup.build(cli, root, port, manifest_entry)`` makes ``root/{home,tmp,work}`` plus the config
files each CLI needs (recipes: ``../shared/reference/real-clis.md``) and returns the environment
overrides, the workspace and the binary. Every environment carries ``ALICE_E2E_MARKER=<token>``
so a test can find every process a run started (``procscan.alive_with_marker``) — tools
inherit the CLI's environment, and so inherit the marker.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import attrs

MARKER_ENV = "ALICE_E2E_MARKER"
LANE_ENV = "ALICE_TRIO_E2E_LANE"  # a prefix of every marker of one lane run
FAKE_KEY = "sk-fake-not-a-secret"
BASE_PATH = ["/usr/local/bin", "/usr/bin", "/bin"]
CLIS = ("codex", "opencode", "claude", "gemini", "kimi", "kimi_legacy")

# Model names sent to the fake server (any name works; these avoid routers and warnings).
CODEX_MODEL = "fake-model"
GEMINI_MODEL = "gemini-2.5-flash"  # an explicit model skips gemini's router call


@attrs.frozen
class CliSetup:
    cli: str
    root: str
    binary: str
    env: dict[str, str]
    workspace: str
    home: str
    marker: str


#: per CLI of the lane: its provider, and the config fields every run of it here needs
PROVIDERS: dict[str, tuple[str, dict[str, Any]]] = {
    "codex": ("codex", {}),
    "claude": ("claude", {"is_sandbox": True}),  # bypassPermissions as root
    "gemini": ("gemini", {"model": GEMINI_MODEL}),
    "kimi": ("kimi", {"flavor": "code"}),
    "kimi_legacy": ("kimi", {"flavor": "legacy"}),
    "opencode": ("opencode", {}),
}


def provider_config(setup: CliSetup, **fields: Any) -> tuple[str, Any]:
    """``(provider name, config)`` running ``setup``'s CLI — its binary, environment and
    workspace, the fields of :data:`PROVIDERS` — with ``fields`` on top."""
    from alice_trio.providers.registry import get_provider

    name, needed = PROVIDERS[setup.cli]
    config_class = get_provider(name).config_class
    common = {"command": setup.binary, "env": setup.env, "workspace_dir": setup.workspace}
    return name, config_class(**{**common, **needed, **fields})


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def codex_catalog(codex_binary: str, cache_file: Path, env: dict[str, str]) -> Path:
    """``codex debug models``' gpt-5.5 entry renamed to ``fake-model`` (cached per install):
    without it codex warns "Model metadata for `fake-model` not found" on every run."""
    if cache_file.exists():
        return cache_file
    out = subprocess.run(
        [codex_binary, "debug", "models"],
        env=env,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    data = json.loads(out.stdout)
    models = data["models"] if isinstance(data, dict) else data
    entry = next(
        (m for m in models if m.get("slug") == "gpt-5.5"),
        models[0],
    )
    entry = dict(entry, slug=CODEX_MODEL, display_name=CODEX_MODEL)
    catalog = dict(data, models=[entry]) if isinstance(data, dict) else [entry]
    tmp = cache_file.with_suffix(".tmp")
    _write(tmp, json.dumps(catalog, indent=1))
    tmp.replace(cache_file)
    return cache_file


def build(
    cli: str,
    root: Path,
    port: int,
    entry: dict[str, Any],
    *,
    catalog_cache: Path | None = None,
) -> CliSetup:
    """Lay out an isolated HOME/TMPDIR/workspace for ``cli`` talking to 127.0.0.1:``port``."""
    home, tmp, work = root / "home", root / "tmp", root / "work"
    for d in (home, tmp, work):
        d.mkdir(parents=True, exist_ok=True)
    # the lane's id first (run_e2e.sh sets it): its final check then only looks at its own
    marker = os.environ.get(LANE_ENV, "") + uuid.uuid4().hex
    base_url = f"http://127.0.0.1:{port}"
    env: dict[str, str] = {
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "PATH": os.pathsep.join([*entry.get("path_prepend", []), *BASE_PATH]),
        "PWD": str(work),
        "NO_COLOR": "1",
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        MARKER_ENV: marker,
        # keep the host's real keys and endpoints out of the run
        "OPENAI_API_KEY": "",
        "ANTHROPIC_AUTH_TOKEN": "",
        "GOOGLE_API_KEY": "",
        "GOOGLE_CLOUD_PROJECT": "",
        "OPENAI_BASE_URL": "",
    }
    if cli == "codex":
        codex_home = root / "codex_home"
        catalog = codex_catalog(entry["path"], catalog_cache or root / "catalog.json", env)
        _write(
            codex_home / "config.toml",
            f"""model = "{CODEX_MODEL}"
model_provider = "fake"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false
model_catalog_json = "{catalog}"

[model_providers.fake]
name = "Fake loopback"
base_url = "{base_url}/v1"
env_key = "FAKE_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 300000

[analytics]
enabled = false
[feedback]
enabled = false

[features]
plugins = false
remote_plugin = false
apps = false
plugin_sharing = false
tool_suggest = false
""",
        )
        env.update(CODEX_HOME=str(codex_home), FAKE_API_KEY=FAKE_KEY)
    elif cli == "opencode":
        config = {
            "$schema": "https://opencode.ai/config.json",
            "model": "fake/fake-model",
            "small_model": "fake/fake-model",
            "autoupdate": False,
            "share": "disabled",
            "enabled_providers": ["fake"],
            "provider": {
                "fake": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Fake loopback",
                    "options": {"baseURL": f"{base_url}/v1", "apiKey": "{env:FAKE_API_KEY}"},
                    "models": {
                        "fake-model": {
                            "name": "Fake Model",
                            "tool_call": True,
                            "limit": {"context": 200000, "output": 8192},
                        }
                    },
                }
            },
            "permission": {"bash": "allow", "edit": "allow"},
        }
        config_file = root / "oc_config" / "opencode.json"
        _write(config_file, json.dumps(config, indent=1))
        env.update(
            FAKE_API_KEY=FAKE_KEY,
            OPENCODE_CONFIG=str(config_file),
            OPENCODE_DISABLE_AUTOUPDATE="1",
            OPENCODE_DISABLE_MODELS_FETCH="1",
            OPENCODE_DISABLE_DEFAULT_PLUGINS="1",
            OPENCODE_DISABLE_LSP_DOWNLOAD="1",
            OPENCODE_DISABLE_SHARE="1",
            OPENCODE_DISABLE_CLAUDE_CODE="1",
        )
    elif cli == "claude":
        env.update(
            ANTHROPIC_BASE_URL=base_url,
            ANTHROPIC_API_KEY="sk-ant-fake-not-a-secret",
            DISABLE_AUTOUPDATER="1",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            DISABLE_TELEMETRY="1",
            DISABLE_ERROR_REPORTING="1",
            CLAUDE_CODE_MAX_RETRIES="0",
        )
    elif cli == "gemini":
        settings = {
            "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
            "ide": {"enabled": False},
            "security": {"auth": {"selectedType": "gemini-api-key"}},
        }
        _write(home / ".gemini" / "settings.json", json.dumps(settings, indent=1))
        env.update(
            GEMINI_API_KEY="fake-not-a-secret",
            GOOGLE_GEMINI_BASE_URL=base_url,
            GEMINI_CLI_TRUST_WORKSPACE="true",
        )
    elif cli == "kimi":
        env.update(
            KIMI_CODE_NO_AUTO_UPDATE="1",
            KIMI_DISABLE_TELEMETRY="1",
            KIMI_MODEL_NAME="fake-kimi-model",
            KIMI_MODEL_API_KEY=FAKE_KEY,
            KIMI_MODEL_BASE_URL=f"{base_url}/v1",
            KIMI_MODEL_PROVIDER_TYPE="kimi",
        )
    elif cli == "kimi_legacy":
        share = home / ".kimi"
        _write(
            share / "config.toml",
            f"""default_model = "fake"
telemetry = false

[providers.fake]
type = "kimi"
base_url = "{base_url}/v1"
api_key = "{FAKE_KEY}"

[models.fake]
provider = "fake"
model = "fake-kimi-model"
max_context_size = 262144
""",
        )
        env.update(
            KIMI_SHARE_DIR=str(share), KIMI_CLI_NO_AUTO_UPDATE="1", KIMI_BASE_URL=f"{base_url}/v1"
        )
    else:
        raise ValueError(f"unknown CLI {cli!r}")
    return CliSetup(
        cli=cli,
        root=str(root),
        binary=entry["path"],
        env=env,
        workspace=str(work),
        home=str(home),
        marker=marker,
    )
