"""``python -m benchmarks [--quick] [--json PATH]``: run every section, print a table, write JSON.

Each section runs in a fresh interpreter (``python -m benchmarks.<section>``): the subreaper flag
is process-wide and peak RSS must be the scenario's own. Numbers are medians and percentiles
from this one run and every baseline is measured in the same run as its subject; nothing here
asserts a timing (CI runs ``--quick`` as a smoke test only).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from .common import machine_facts, run_module

SESSION_NOTE = (
    "interactive sessions (open_session + the claude stream-json driver) had not landed: the "
    "cancel section's agent_process rows measure the long-lived process layer "
    "(alice_trio.transports.process.open_agent_process) sessions are built on"
)


def _section(name: str, module: str, args: list[str], timeout: float = 1800.0) -> dict[str, Any]:
    t0 = time.perf_counter()
    print(f"… {name}", file=sys.stderr, flush=True)
    try:
        data = run_module(module, args, timeout=timeout)
    except Exception as exc:  # keep going: the report says which section failed
        data = {"error": f"{type(exc).__name__}: {exc}"[:4000]}
    data["section_seconds"] = round(time.perf_counter() - t0, 2)
    return data


def run_all(quick: bool) -> dict[str, Any]:
    q = ["--quick"] if quick else []
    sections: dict[str, Any] = {}
    sections["cancel"] = _section("cancel latency", "cancel", ["--mechanism", "auto", *q])
    sections["mechanisms"] = {
        mech: _section(
            f"cancel by mechanism ({mech})",
            "cancel",
            ["--mechanism", flag, "--only", "mechanism", *q],
        )
        for mech, flag in (("subreaper", "on"), ("marker_scan", "off"))
    }
    sections["throughput"] = _section("throughput", "throughput", q)
    mb = 1_000_000
    memory = (
        (("giant", 10 * mb), ("giant_skip", 10 * mb), ("stderr", 20 * mb))
        if quick
        else (("giant", 50 * mb), ("giant_skip", 50 * mb), ("stderr", 100 * mb))
    )
    sections["memory"] = {
        name: _section(f"memory {name}", "memory", ["--scenario", name, "--bytes", str(size)])
        for name, size in memory
    }
    sections["overhead"] = _section("overhead", "overhead", q)
    sections["peer"] = _section("claude-agent-sdk side by side", "peer", q)
    sections["cli"] = _section("alice-trio command: rendering", "cli", q)
    sections["scaling"] = _section("scaling on the real CLIs", "scaling", q)
    sections["capacity"] = _section("conversations per host on the real CLIs", "capacity", q)
    sections["file_changes"] = _section("file changes: workspace snapshots", "file_changes", q)
    rows = [
        r["name"]
        for r in _get(sections, "cancel", "scenarios") or []
        if str(r.get("name", "")).startswith("session/")
    ]
    if rows:
        note = "session cancel rows are in the cancel section"
        sections["sessions"] = {"note": note, "rows": rows}
    else:
        note = _get(sections, "cancel", "session_note") or SESSION_NOTE
        errors = _get(sections, "cancel", "session_errors")
        sections["sessions"] = {"skipped": note, **({"errors": errors} if errors else {})}
    return sections


# -- goals -----------------------------------------------------------------------------------
def _get(d: Any, *path: Any) -> Any:
    for key in path:
        if isinstance(d, dict):
            d = d.get(key)
        elif isinstance(d, list) and isinstance(key, int) and key < len(d):
            d = d[key]
        else:
            return None
    return d


def _scenario(sections: dict[str, Any], name: str) -> dict[str, Any]:
    for s in _get(sections, "cancel", "scenarios") or []:
        if s.get("name") == name:
            return s
    return {}


def goals(sections: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def goal(name: str, value: Any, target: float, op: str, unit: str, note: str = "") -> None:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            out.append(
                {
                    "goal": name,
                    "target": f"{op} {target:g}{unit}",
                    "value": None,
                    "met": None,
                    "note": note or "not measured",
                }
            )
            return
        met = value <= target if op == "≤" else value >= target
        out.append(
            {
                "goal": name,
                "target": f"{op} {target:g}{unit}",
                "value": value,
                "met": met,
                "note": note,
            }
        )

    term = _scenario(sections, "oneshot/term")
    noterm = _scenario(sections, "oneshot/noterm")
    grace = _get(sections, "cancel", "kill_grace_ms") or 250.0
    floor = _get(sections, "cancel", "observer_floor_ms", "p50")
    fl = f"includes the observer's own lag (p50 {floor} ms)" if floor is not None else ""
    goal(
        "cancel→reaped p50, CLI exits on SIGTERM", _get(term, "reaped_ms", "p50"), 2, "≤", " ms", fl
    )
    goal(
        "cancel→reaped p99, CLI exits on SIGTERM",
        _get(term, "reaped_ms", "p99"),
        10,
        "≤",
        " ms",
        fl,
    )
    goal(
        "cancel→reaped p99, CLI ignores SIGTERM",
        _get(noterm, "reaped_ms", "p99"),
        grace + 10,
        "≤",
        " ms",
        f"kill grace {grace:g} ms + 10 ms",
    )
    scen = list(_get(sections, "cancel", "scenarios") or [])
    for mech in ("subreaper", "marker_scan"):
        scen += _get(sections, "mechanisms", mech, "scenarios") or []
    ours = [s for s in scen if not str(s.get("name", "")).startswith("bare")]
    if ours:
        goal(
            "orphans after cancel (all scenarios, both mechanisms)",
            sum(s.get("orphans", 0) + s.get("zombies", 0) for s in ours),
            0,
            "≤",
            "",
        )
    else:
        goal("orphans after cancel (all scenarios, both mechanisms)", None, 0, "≤", "")
    goal(
        "events/s end to end (Backend.run + progress callback)",
        _get(sections, "throughput", "layers", "backend", "events_per_s"),
        300_000,
        "≥",
        "",
    )
    peer_ratio = _get(sections, "peer", "throughput", "alice_over_sdk")
    goal(
        "events/s vs claude-agent-sdk typed query()",
        peer_ratio,
        5,
        "≥",
        "×",
        "" if peer_ratio is not None else str(_get(sections, "peer", "skipped") or ""),
    )
    goal(
        "50 MB line: peak RSS added / line size",
        _get(sections, "memory", "giant", "peak_delta_over_bytes"),
        3,
        "≤",
        "×",
    )
    goal(
        "per-run cost vs bare trio.run_process",
        _get(sections, "overhead", "sequential", "ratio"),
        1.2,
        "≤",
        "×",
    )
    goal(
        "concurrent runs wall vs bare",
        _get(sections, "overhead", "concurrent", "ratio"),
        1.2,
        "≤",
        "×",
    )
    goal(
        "CLI on an event flood (200k; quick 20k) vs bare trio+orjson reader, wall (median of "
        "the rounds' own ratios)",
        _get(sections, "cli", "flood", "cli_over_bare_paired"),
        1.6,
        "≤",
        "×",
        _cli_note(sections),
    )
    goal(
        "CLI huge reply (50 MB; quick 10 MB): peak RSS added / line size",
        _get(sections, "cli", "big_reply", "peak_delta_over_bytes"),
        3,
        "≤",
        "×",
        "library alone: "
        + str(_get(sections, "cli", "big_reply", "library_peak_delta_over_bytes"))
        + "×; a reply ending in whitespace: CLI "
        + str(_get(sections, "cli", "big_reply_trailing_space", "peak_delta_over_bytes"))
        + "×, library "
        + str(_get(sections, "cli", "big_reply_trailing_space", "library_peak_delta_over_bytes"))
        + "×",
    )
    scaling_goals(sections, goal)
    return out


def _cli_note(sections: dict[str, Any]) -> str:
    flood = _get(sections, "cli", "flood") or {}
    if not flood:
        return ""
    return (
        f"{flood.get('events')} events; ratio of the medians {flood.get('cli_over_bare')}×, "
        f"load average {flood.get('loadavg_start_end')}; "
        f"library alone / bare {flood.get('library_over_bare')}×, "
        f"CLI / library {flood.get('cli_over_library')}× (what rendering adds; CPU "
        f"{flood.get('cpu_cli_over_library')}×)"
    )


#: CLIs whose memory per extra idle conversation has a goal (the shared ones)
MEMORY_GOAL_CLIS = ("codex", "opencode", "gemini", "kimi")


def scaling_goals(sections: dict[str, Any], goal: Any) -> None:
    providers = _get(sections, "scaling", "providers") or {}
    skipped = _get(sections, "scaling", "skipped") or ""
    for cli in ("codex", "claude", "gemini", "kimi", "kimi_legacy", "opencode"):
        row = providers.get(cli) or {}
        note = row.get("skipped") or _get(row, "pooled", "error") or skipped
        goal(
            f"{cli}: new conversation's first run / warm run (pooled)",
            _get(row, "pooled", "new_over_warm"), 1.5, "≤", "×", str(note or ""),
        )  # fmt: skip
        if cli in MEMORY_GOAL_CLIS:
            goal(
                f"{cli}: MB per extra idle conversation (pooled)",
                _get(row, "pooled", "mb_per_idle_conversation"), 25, "≤", " MB", str(note or ""),
            )  # fmt: skip


def _not_run(title: str, sec: dict[str, Any], lines: list[str]) -> bool:
    """The one line of a section that did not run — ``title: ERROR …`` or ``title: skipped —
    …`` — and True; False (nothing written) for a section with results."""
    if "error" in sec:
        lines.append(f"\n{title}: ERROR {str(sec['error'])[:300]}")
    elif "skipped" in sec:
        lines.append(f"\n{title}: skipped — {sec['skipped']}")
    else:
        return False
    return True


def _cli_rows(sec: dict[str, Any], lines: list[str], width: int) -> list[tuple[str, Any]]:
    """A per-CLI section's rows that ran; a ``skipped`` CLI gets its line here instead."""
    ran = []
    for cli, row in sec["providers"].items():
        if "skipped" in row:
            lines.append(f"  {cli:{width}} skipped — {row['skipped']}")
        else:
            ran.append((cli, row))
    return ran


def render_scaling(sec: dict[str, Any], lines: list[str]) -> None:
    if _not_run("Scaling on the real CLIs", sec, lines):
        return
    lines.append(
        f"\nScaling on the real CLIs (SessionBackend, fake model on loopback; medians of "
        f"{sec['runs']} runs, memory over {sec['extra']} extra idle conversations)"
    )
    lines.append(
        f"  {'CLI':12} {'mode':12} {'new run s':>9} {'warm run s':>10} {'new/warm':>8} "
        f"{'MB/idle conv':>12} {'conv/GiB':>8} {'procs':>5}"
    )
    for cli, row in _cli_rows(sec, lines, 12):
        for mode in ("per_process", "pooled"):
            r = row.get(mode) or {}
            if "error" in r:
                lines.append(f"  {cli:12} {mode:12} ERROR {r['error'][:200]}")
                continue
            lines.append(
                f"  {cli:12} {mode:12} {r['new_median_s']:>9} {r['warm_median_s']:>10} "
                f"{r['new_over_warm']!s:>8} {r['mb_per_idle_conversation']:>12} "
                f"{r['conversations_per_gib']!s:>8} {r['processes_after']:>5}"
            )


# -- the table -------------------------------------------------------------------------------
def _ms(d: Any) -> str:
    if not isinstance(d, dict) or not d.get("n"):
        return "—"
    return f"{d['p50']:.1f} / {d['p99']:.1f} / {d['max']:.1f}"


def _left(row: dict[str, Any]) -> str:
    text = str(row.get("orphans", 0))
    if row.get("zombies"):
        text += f" (+{row['zombies']} zombies)"
    return text


def render_capacity(sec: dict[str, Any], lines: list[str]) -> None:
    """The capacity section: PSS of N conversations on one shared process, per-turn growth,
    memory after closing, the admission bounds at the largest N."""
    if _not_run("Conversations per host", sec, lines):
        return
    lines.append(
        f"\nConversations per host (one shared process, SessionBackend, fake model; PSS of every "
        f"process of the run, MB; N = {sec['steps']}, a conversation of {sec['long_turns']} turns)"
    )
    for fake, h in (sec.get("python_heap") or {}).items():
        if "error" in h:
            lines.append(f"  our heap, fake {fake}: ERROR {str(h['error'])[:200]}")
        else:
            lines.append(
                f"  our heap, fake {fake}: {h['kib_per_conversation']} KiB stay per conversation "
                f"over {h['conversations']} opened and closed; {h['backend_state']}"
            )
    for cli, row in _cli_rows(sec, lines, 9):
        g = row.get("growth") or {}
        if "error" in g:
            lines.append(f"  {cli:9} growth ERROR {str(g['error'])[:200]}")
        elif g:
            steps = "  ".join(
                f"{r['conversations']}:{r['pss_mb']}"
                + (f" ({r['mb_per_conversation_in_range']:+}/conv)"
                   if r.get("mb_per_conversation_in_range") is not None else "")
                for r in g["rows"]
            )  # fmt: skip
            closes = ", ".join(f"{c['state']} {c['pss_mb']}" for c in g.get("close", []))
            long = g.get("long") or {}
            lines.append(f"  {cli:9} N:PSS   {steps}")
            lines.append(
                f"  {'':9} per turn of one conversation {long.get('mb_per_turn')} MB; "
                f"{closes}; our process {g['rows'][-1].get('self_pss_mb')} MB"
            )
        bd = row.get("bounded") or {}
        if "error" in bd:
            lines.append(f"  {cli:9} bounds ERROR {str(bd['error'])[:200]}")
        elif bd:
            b = bd["bounds"]
            lines.append(
                f"  {'':9} bounds conv≤{b['max_conversations']} proc≤{b['max_processes']} "
                f"cap {b['host_capacity']} over {bd['conversations']} conversations: live max "
                f"{bd['max_live_conversations']}, processes max {bd['max_pool_processes']} "
                f"(children {bd['max_agent_children']}), peak {bd['peak_pss_mb']} MB, "
                f"errors {bd['error_count']}{', HUNG' if bd.get('burst_hung') else ''} — "
                f"{'within' if bd['within_bounds'] else 'OUTSIDE'} the bounds"
            )


def render(report: dict[str, Any]) -> str:
    lines: list[str] = []
    m = report["machine"]
    lines.append(
        f"alice_trio benchmarks ({'quick' if report['quick'] else 'full'}) — {m['cores']} cores, "
        f"Python {m['python']}, trio {m['trio']}, load {m['loadavg_at_start']}"
    )
    s = report["sections"]

    def cancel_table(title: str, sec: dict[str, Any]) -> None:
        if _not_run(title, sec, lines):
            return
        lines.append(
            f"\n{title} — mechanism {sec.get('mechanism')}, ms p50 / p99 / max "
            f"(observer floor p50 {_get(sec, 'observer_floor_ms', 'p50')} ms)"
        )
        lines.append(
            f"  {'scenario':26} {'runs':>4}  {'→ control':>22}  {'→ CLI exited':>22}  "
            f"{'→ tree reaped':>22}  orphans"
        )
        for row in sec.get("scenarios", []):
            lines.append(
                f"  {row['name']:26} {row['runs']:>4}  {_ms(row['control_ms']):>22}  "
                f"{_ms(row['exited_ms']):>22}  {_ms(row['reaped_ms']):>22}  "
                f"{_left(row)}"
            )

    cancel_table("Cancel latency", s["cancel"])
    for mech, sec in s["mechanisms"].items():
        cancel_table(f"Cancel → no descendant alive, {mech}", sec)

    t = s["throughput"]
    if not _not_run("Throughput", t, lines):
        lines.append(
            f"\nThroughput — {t['events']} lines of ~300 B, events/s (median of {t['repeats']})"
        )
        for layer, row in t["layers"].items():
            extra = (
                f" (stream {row['stream_events_per_s']:,})" if "stream_events_per_s" in row else ""
            )
            lines.append(f"  {layer:10} {row['events_per_s']:>10,}{extra}")
        lines.append(
            "  decoder only (recorded transcripts): "
            + ", ".join(
                f"{k} {v['events_per_s']:,}"
                for k, v in t["decoder_only"].items()
                if "events_per_s" in v
            )
        )

    lines.append("\nBig lines and floods")
    for name, row in s["memory"].items():
        if "error" in row and not isinstance(row.get("bytes"), int):
            lines.append(f"  {name}: ERROR {row['error'][:300]}")
            continue
        lines.append(
            f"  {name:11} {row['bytes'] / 1e6:>6.0f} MB  wall {row['wall_s']:.3f} s  peak RSS "
            f"{row['peak_rss_mb']} MB (+{row['peak_delta_mb']} MB = "
            f"{row['peak_delta_over_bytes']}× the bytes) {row['error']}"
        )

    o = s["overhead"]
    if not _not_run("Overhead", o, lines):
        sq, cc = o["sequential"], o["concurrent"]
        lines.append(
            f"\nOverhead — sequential p50 {sq['engine_ms_p50']} ms vs bare {sq['bare_ms_p50']} ms "
            f"({sq['ratio']}×); {cc['runs']} concurrent on {cc['cores']} cores "
            f"{cc['engine_wall_s']} s vs {cc['bare_wall_s']} s ({cc['ratio']}×)"
        )

    p = s["peer"]
    if not _not_run("claude-agent-sdk", p, lines):
        lines.append(
            f"\nclaude-agent-sdk {p['claude_agent_sdk']} side by side (same fake, same "
            "process), ms p50 control / exited / reaped, orphans"
        )
        for row in p["cancel"]:
            for who in ("alice_trio", "claude_agent_sdk"):
                r = row[who]
                lines.append(
                    f"  {r['name']:26} {_get(r, 'control_ms', 'p50')} / "
                    f"{_get(r, 'exited_ms', 'p50')} / {_get(r, 'reaped_ms', 'p50')}  "
                    f"orphans {_left(r)}"
                )
        tp = p["throughput"]
        lines.append(
            f"  events/s: alice_trio {tp['alice_trio_events_per_s']:,} vs sdk "
            f"{tp['claude_agent_sdk_events_per_s']:,} ({tp['alice_over_sdk']}×)"
        )

    c = s.get("cli", {})
    if c and not _not_run("alice-trio command", c, lines):
        f = c["flood"]
        lines.append(
            f"\nalice-trio command — {f['events']:,} progress events, wall s / CPU s "
            f"(median of {f['repeats']}, each a fresh process)"
        )
        for name, row in f["subjects"].items():
            lines.append(
                f"  {name:10} {row['wall_s']:>8.3f} / {row['cpu_s']:>7.3f}  "
                f"progress {row['progress_lines']:,} lines, {row['progress_bytes']:,} B"
            )
        lines.append(
            f"  CLI / bare, median of the rounds' own ratios: {f['cli_over_bare_paired']}× wall "
            f"(rounds {f['paired']['cli_file_over_bare']['wall_s_rounds']}), "
            f"{f['cpu_cli_over_bare_paired']}× CPU; load average {f['loadavg_start_end']}"
        )
        lines.append(
            f"  CLI / bare {f['cli_over_bare']}×, CLI / library {f['cli_over_library']}×, "
            f"library / bare {f['library_over_bare']}×, terminal CLI / library "
            f"{f['cli_tty_over_library']}× (CPU: CLI / bare {f['cpu_cli_over_bare']}×, "
            f"CLI / library {f['cpu_cli_over_library']}×, terminal CLI / library "
            f"{f['cpu_cli_tty_over_library']}×)"
        )
        for b in (c["big_reply"], c["big_reply_trailing_space"]):
            ws = " ending in a space" if b["trailing_space"] else ""
            lines.append(
                f"  {b['bytes'] / 1e6:.0f} MB reply{ws}: CLI wall {b['wall_s']} s, peak RSS "
                f"{b['peak_rss_mb']} MB (+{b['peak_delta_mb']} MB = "
                f"{b['peak_delta_over_bytes']}× the bytes); library alone "
                f"{b['library_wall_s']} s, peak {b['library_peak_rss_mb']} MB "
                f"({b['library_peak_delta_over_bytes']}×); progress {b['progress_bytes']:,} B, "
                f"stdout {b['reply_bytes_on_stdout']:,} B"
            )
    render_scaling(s.get("scaling") or {"skipped": "not run"}, lines)
    render_capacity(s.get("capacity") or {"skipped": "not run"}, lines)
    fc = s.get("file_changes") or {"error": "not run"}
    if not _not_run("File changes", fc, lines):
        lines.append(
            f"\nFile changes on a {fc['files']:,}-file repository (median of {fc['repeats']}): "
            f"snapshot {fc['snapshot_ms_p50']} ms (as a turn takes it "
            f"{fc['take_snapshot_ms_p50']} ms), diff {fc['diff_ms_p50']} ms, a whole turn's "
            f"watch {fc['per_turn_ms_p50']} ms"
        )

    lines.append("\nGoals")
    for g in report["goals"]:
        mark = {True: "met ", False: "MISS", None: "n/a "}[g["met"]]
        lines.append(f"  [{mark}] {g['goal']}: {g['value']} (target {g['target']}) {g['note']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, < 60 s (a smoke run)")
    p.add_argument("--json", type=Path, help="write the full report here")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    report: dict[str, Any] = {"machine": machine_facts(), "quick": a.quick}
    report["sections"] = run_all(a.quick)
    report["goals"] = goals(report["sections"])
    report["duration_s"] = round(time.perf_counter() - t0, 2)
    print(render(report))
    if a.json:
        a.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON written to {a.json}")
    failed = [
        name
        for name, sec in _flatten_sections(report["sections"])
        if "error" in sec and not isinstance(sec.get("bytes"), int)
    ]
    if failed:
        print(f"sections that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _flatten_sections(sections: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, sec in sections.items():
        if name in ("mechanisms", "memory"):
            out += [(f"{name}.{k}", v) for k, v in sec.items()]
        else:
            out.append((name, sec))
    return out


if __name__ == "__main__":
    sys.exit(main())
