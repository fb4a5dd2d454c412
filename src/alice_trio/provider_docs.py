"""What the providers can do, generated from their records: ``alice-trio providers --json`` and
``docs/providers.md``.

``python -m alice_trio.provider_docs --write docs/providers.md`` rewrites the generated part of
that page (between the ``BEGIN``/``END GENERATED`` markers); a test fails when the page and the
records drift apart, and another opens every registered session driver and compares it with the
record. Pure: no I/O beyond the ``--write`` file.
"""

from __future__ import annotations

import sys
from typing import Any

import attrs

from . import generated_docs
from .providers.base import Provider
from .providers.record import Capabilities, Flavor
from .providers.registry import BUILTIN_MODULES, get_provider

__all__ = ["BEGIN", "END", "flavor_info", "provider_info", "render", "splice"]

BEGIN = "<!-- BEGIN GENERATED (python -m alice_trio.provider_docs --write docs/providers.md) -->"
END = "<!-- END GENERATED -->"

_CAPABILITY_TITLES = {
    "approvals": "approvals",
    "questions": "questions",
    "file_changes": "file changes",
    "model_switch": "model per turn",
    "resume": "resume",
}


def flavor_info(provider: Provider, flavor: Flavor) -> dict[str, Any]:
    """One flavor of ``provider`` as JSON-able data."""
    s, v = flavor.session, flavor.versions
    return {
        "name": flavor.name,
        "selected_by": f"{provider.flavor_field}: {flavor.name}" if provider.flavor_field else "",
        "label": flavor.label,
        "session": {
            "driver": s.factory_name(),
            "protocol": s.protocol,
            "long_lived": s.long_lived,
            "steer_mode": s.steer_mode,
            "capabilities": attrs.asdict(s.capabilities),
        },
        "versions": {
            "check": list(v.args),
            "verified": list(v.verified),
            "newest_verified": v.newest,
            "source": v.source,
        },
        "state": [{"dir": d.describe(), "what": d.what} for d in flavor.state],
    }


def provider_info(provider: Provider) -> dict[str, Any]:
    """``provider``'s record as JSON-able data (one row of ``alice-trio providers --json``).

    ``steer_mode`` and ``interactive`` (a long-lived session process) are those of the default
    flavor; ``flavors`` holds each flavor's session driver, capabilities and versions."""
    default = provider.default_flavor
    cl = provider.config_class
    return {
        "name": provider.name,
        "description": provider.description,
        "default_command": provider.default_command,
        "config_class": f"{cl.__module__}.{cl.__qualname__}",
        "flavor_field": provider.flavor_field,
        "default_flavor": default.name,
        "steer_mode": default.session.steer_mode,
        "interactive": default.session.long_lived,
        "flavors": [flavor_info(provider, f) for f in provider.flavors],
    }


def _flavor_cell(provider: Provider, flavor: Flavor) -> str:
    if not provider.flavor_field:
        return "—"
    default = " (default)" if flavor is provider.default_flavor else ""
    return f"`{provider.flavor_field}: {flavor.name}`{default}"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def render() -> str:
    """The generated part of docs/providers.md."""
    providers = [get_provider(n) for n in BUILTIN_MODULES]
    cap_names = [a.name for a in attrs.fields(Capabilities)]
    out = [BEGIN, "", "### Interactive sessions", ""]
    head = ["provider", "flavor", "session driver", "one process", "steer mode"]
    head += [_CAPABILITY_TITLES[c] for c in cap_names]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in providers:
        for f in p.flavors:
            s = f.session
            row = [f"`{p.name}`", _flavor_cell(p, f), s.protocol, _yes(s.long_lived)]
            row += [f"`{s.steer_mode}`"]
            row += [_yes(getattr(s.capabilities, c)) for c in cap_names]
            out.append("| " + " | ".join(row) + " |")
    out += ["", "### Verified CLI versions", ""]
    out += ["| provider | flavor | CLI package | verified with | version check |"]
    out += ["|---|---|---|---|---|"]
    for p in providers:
        seen: set[int] = set()
        for f in p.flavors:
            v = f.versions
            if id(v) in seen or not v.verified:
                continue
            seen.add(id(v))
            flavors = [x for x in p.flavors if x.versions is v]
            cell = "—" if len(flavors) == len(p.flavors) else _flavor_cell(p, f)
            check = " ".join([p.default_command, *v.args])
            row = [f"`{p.name}`", cell, v.source, ", ".join(v.verified), f"`{check}`"]
            out.append("| " + " | ".join(row) + " |")
    out += ["", "### State created at start (first starts serialised)", ""]
    out += [
        "Two first starts of these CLIs on one fresh state directory at once break; the engine",
        "starts them one at a time per directory until one came up (docs/reliability.md).",
        "",
        "| provider | flavor | directory | what |",
        "|---|---|---|---|",
    ]
    for p in providers:
        for f in p.flavors:
            for d in f.state:
                row = [f"`{p.name}`", _flavor_cell(p, f), f"`{d.describe()}`", d.what]
                out.append("| " + " | ".join(row) + " |")
    out += ["", END]
    return "\n".join(out) + "\n"


def splice(document: str, generated: str) -> str:
    """``document`` with its generated part replaced by ``generated``."""
    return generated_docs.splice(document, generated, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    return generated_docs.main("python -m alice_trio.provider_docs", render, BEGIN, END, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
