"""Results: one JSON file per run, and `RESULTS.md` rebuilt from the newest run of each mode."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
SOAK = "soak"
DISPATCHER = "dispatcher"
WORKFLOWS = "workflows"
POPUPS = "popups"


def own_sections() -> dict[str, Callable[[dict[str, Any]], str]]:
    """Runs with a section of their own in RESULTS.md (not the phase tables), each with its renderer.

    Such a run replaces only its section; every other run keeps them.
    """
    from benchmarks.decisions_report import NAME as DECISIONS
    from benchmarks.decisions_report import render_decisions
    from benchmarks.dedup import NAME as DEDUP
    from benchmarks.dedup import render_dedup
    from benchmarks.dispatch import render_dispatcher  # imported here: it imports this module
    from benchmarks.explorer import NAME as EXPLORER
    from benchmarks.explorer import render_explorer
    from benchmarks.popups import render_popups
    from benchmarks.recs_report import NAME as RECOMMENDATIONS
    from benchmarks.recs_report import render_recommendations
    from benchmarks.workflow_report import render_workflows

    return {SOAK: render_soak, DISPATCHER: render_dispatcher, WORKFLOWS: render_workflows,
            DECISIONS: render_decisions, POPUPS: render_popups, RECOMMENDATIONS: render_recommendations,
            EXPLORER: render_explorer, DEDUP: render_dedup}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        redis_version = (
            subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
            .stdout.split()[2]
            .removeprefix("v=")
        )
    except (OSError, IndexError):
        redis_version = "?"
    mem_kb = 0
    with contextlib.suppress(OSError, IndexError):
        mem_kb = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": redis_version,
    }


# (key, description, measured(figures) -> value or None, target, higher_is_better, unit)
def _latency_at(figures: dict[str, Any], rate: int, point: str) -> float | None:
    for row in figures.get("latency", []):
        if row["target_events_per_s"] == rate:
            value = row["event_to_visible_ms"].get(point)
            return float(value) if value is not None else None
    return None


def _memory_total(figures: dict[str, Any]) -> float | None:
    rows = [r for r in figures.get("memory", []) if "error" not in r and r["mix"] == "full"]
    if not rows:
        return None
    biggest = max(rows, key=lambda r: r["contacts"])
    return float(biggest["total_bytes_per_contact"])


TARGETS: list[tuple[str, str, Any, float, bool, str]] = [
    (
        "ingest",
        "sustained ingest through the websocket protocol, acked",
        lambda f: f.get("ingest", {}).get("acked_events_per_s"),
        50_000,
        True,
        "events/s",
    ),
    (
        "latency_p50",
        "event → visible p50 at 5 000 events/s",
        lambda f: _latency_at(f, 5_000, "p50"),
        20,
        False,
        "ms",
    ),
    (
        "latency_p99",
        "event → visible p99 at 5 000 events/s",
        lambda f: _latency_at(f, 5_000, "p99"),
        100,
        False,
        "ms",
    ),
    (
        "decisions_rps",
        "decisions API, 50 clients, one process",
        lambda f: f.get("decisions", {}).get("requests_per_s"),
        10_000,
        True,
        "req/s",
    ),
    (
        "decisions_p99",
        "decisions API p99",
        lambda f: f.get("decisions", {}).get("latency_ms", {}).get("p99"),
        5,
        False,
        "ms",
    ),
    ("memory", "state per active contact (Redis + dataflow RSS, full mix)", _memory_total, 2048, False, "B"),
    (
        "baseline_ratio",
        "throughput vs the naive baseline (dataflow, 1 worker)",
        lambda f: f.get("baseline", {}).get("attimo_ratio_1_worker"),
        5,
        True,
        "×",
    ),
]


def judge(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value, met or missed, and by how much."""
    out = []
    for key, text, get, target, higher, unit in TARGETS:
        value = get(figures)
        row: dict[str, Any] = {"key": key, "target": target, "unit": unit, "what": text, "measured": value}
        if value is None:
            row["verdict"] = "not measured"
        else:
            met = value >= target if higher else value <= target
            factor = value / target if higher else (target / value if value else float("inf"))
            row["verdict"] = "met" if met else "missed"
            row["ratio_to_target"] = round(factor, 2)
        out.append(row)
    return out


def all_correct(figures: dict[str, Any]) -> bool:
    """True when every correctness check the run made passed (and it made at least one)."""
    checks = [figures["correctness"]["correct"]] if "correctness" in figures else []
    checks += [r["check"]["correct"] for r in figures.get("scaling", [])]
    if "baseline" in figures:
        checks.append(figures["baseline"]["check"]["correct"])
    live = figures.get("livestate")
    if live:
        for size in live.get("sizes", []):
            checks += [r["check"]["correct"] and r["buyers_check"]["correct"] for r in size["runs"]]
        if "segment_latency" in live:
            checks.append(live["segment_latency"]["check"]["correct"])
    if "memory" in figures and not checks:
        checks.append(all("error" not in r for r in figures["memory"]))
    return bool(checks) and all(checks) and not figures.get("errors")


def write(figures: dict[str, Any], mode: str, command: str, out_dir: Path) -> Path:
    """Write `results/<mode>-<date>.json` and update `RESULTS.md` next to it.

    A soak (or another run with a section of its own, `own_sections`)
    replaces only its own section of `RESULTS.md`; any other run rebuilds
    the file from the newest JSON of each mode, and keeps those sections
    already there if no JSON of theirs is at hand.
    """
    own = own_sections()
    results = out_dir / "results"
    results.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    correct = all_correct(figures)
    document = {
        "name": mode,
        "date": now.isoformat(timespec="seconds"),
        "command": command,
        "correct": correct,
        "machine": machine(),
        "figures": figures,
        "targets": [] if mode in own else judge(figures),
    }
    path = results / f"{mode}-{now.date().isoformat()}.json"
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    markdown = out_dir / "RESULTS.md"
    old = markdown.read_text() if markdown.exists() else ""
    if mode in own and old:
        text = replace_section(old, mode, own[mode](document))
    else:
        text = render_all(results)
        for name in own:
            kept = section(old, name)
            if kept is not None and section(text, name) is None:
                text = replace_section(text, name, kept)
    markdown.write_text(text)
    return path


def render_all(results: Path) -> str:
    """RESULTS.md: the newest full run, then the newest short run, other runs, and the newest soak and dispatcher."""
    newest: dict[str, dict[str, Any]] = {}
    for path in sorted(results.glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        if doc.get("date", "") >= newest.get(doc["name"], {}).get("date", ""):
            newest[doc["name"]] = doc
    parts = [
        "# Attimo benchmark results\n",
        "Generated by `python -m benchmarks` (`attimo bench`); every figure below was measured on the "
        "machine named, with the load generator on the same machine. Ratios measured in the same run "
        "travel better than absolute numbers.\n",
    ]
    own = own_sections()
    for name in ("full", "short", *sorted(set(newest) - {"full", "short", *own})):
        if name in newest:
            parts.append(render(newest[name]))
    for name, render_own in own.items():
        if name in newest:
            parts.append(render_own(newest[name]))
    return "\n".join(parts)


def _section_span(text: str, name: str) -> tuple[int, int] | None:
    """Where the `## <name> run …` section starts and where the next `## ` heading (or the end) is."""
    found = re.search(rf"^## {re.escape(name)} run\b.*$", text, re.M)
    if found is None:
        return None
    following = re.search(r"^## ", text[found.end() :], re.M)
    return found.start(), found.end() + following.start() if following else len(text)


def section(text: str, name: str) -> str | None:
    """The `## <name> run …` section of a RESULTS.md text, without the blank lines after it."""
    span = _section_span(text, name)
    return None if span is None else text[span[0] : span[1]].rstrip("\n") + "\n"


def replace_section(text: str, name: str, new: str) -> str:
    """`text` with its `## <name> run …` section replaced by `new` (appended if absent); the rest untouched."""
    span = _section_span(text, name)
    if span is None:
        return text.rstrip("\n") + "\n\n" + new
    start, end = span
    rest = text[end:]
    return text[:start] + new + ("\n" + rest if rest else "")


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _code(code: dict[str, str] | None) -> str:
    if not code:
        return "not recorded"
    changes = code.get("uncommitted_changes", "0")
    dirty = f", plus {changes} uncommitted file(s) in state/dataflows/api" if changes != "0" else ""
    return f"`{code.get('commit')}` ({code.get('subject')}){dirty}"


def _pcts(d: dict[str, Any]) -> str:
    return " / ".join(_fmt(d.get(k)) for k in ("p50", "p95", "p99", "max")) if d else "—"


def render(doc: dict[str, Any]) -> str:
    f = doc["figures"]
    m = doc["machine"]
    lines = [
        f"## {doc['name']} run — {doc['date']}\n",
        f"- machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, Redis {m['redis']}",
        f"- command: `{doc['command']}`",
        f"- code: {_code(f.get('code'))}",
        f"- duration: {_fmt(f.get('duration_s'))} s",
        f"- **correct: {str(doc['correct']).lower()}**"
        + ("" if doc["correct"] else " — the figures below are NOT valid"),
    ]
    for phase, error in f.get("errors", {}).items():
        lines.append(f"- **{phase} phase failed**: `{error[:300]}`")
    c = f.get("correctness")
    if c:
        lines.append(
            f"- correctness check: {c['contacts']:,} contacts, {c['events']:,} events; "
            f"missing {c['missing']}, wrong {c['wrong']}"
        )
    lines.append("\n### Targets\n\n| target | goal | measured | verdict |\n|---|---|---|---|")
    for t in doc["targets"]:
        goal = (
            "≥ " if t["unit"] in ("events/s", "req/s", "×") else "≤ "
        ) + f"{_fmt(t['target'])} {t['unit']}"
        verdict = t["verdict"]
        if verdict == "missed":
            verdict = (
                f"**missed** ({t['ratio_to_target']:.2f}× of target)"
                if t["unit"] in ("events/s", "req/s", "×")
                else f"**missed** (target is {t['ratio_to_target']:.2f}× of measured)"
            )
        lines.append(f"| {t['what']} | {goal} | {_fmt(t['measured'])} {t['unit']} | {verdict} |")
    if f.get("latency"):
        lines.append("\n### Event → visible (open loop, browser-like frames)\n")
        lines.append(
            "Visible = the probe contact's profile is readable in Redis (what `/v1/decisions` serves); "
            "pushed = its decision frame arrived on the visitor's socket. All times from the scheduled "
            "send; p50 / p95 / p99 / max in ms.\n"
        )
        lines.append(
            "| target ev/s | achieved ev/s | ev/frame | sockets | visible | pushed | ack | "
            "probes (not visible / not pushed) | client late max ms | reconnects |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in f["latency"]:
            lines.append(
                f"| {_fmt(r['target_events_per_s'])} | {_fmt(r['achieved_events_per_s'])} | "
                f"{r['events_per_frame']} | {r['connections']} | {_pcts(r['event_to_visible_ms'])} | "
                f"{_pcts(r['event_to_push_ms'])} | {_pcts(r['ack_ms'])} | {r['probes']['sent']} "
                f"({r['probes']['not_visible']} / {r['probes']['not_pushed']}) | "
                f"{_fmt(r['client_behind_schedule_max_ms'])} | {r['reconnects']} |"
            )
        for r in f["latency"]:
            if r["errors"]:
                lines.append(
                    f"\nAt {_fmt(r['target_events_per_s'])} ev/s the gateway closed sockets: "
                    f"`{r['errors'][0][:200]}` (frames resent, as the tracker does)."
                )
    i = f.get("ingest")
    if i:
        lines.append("\n### Sustained ingest (closed loop, whole stack running)\n")
        lines.append(
            f"- {_fmt(i['events_acked'])} events ({i['events_per_frame']}/frame, {i['connections']} sockets, "
            f"{i['frames_in_flight_per_connection']} frames in flight each; "
            f"{_fmt(i['http_events_acked'])} server-side events over HTTP `/v1/batch`)"
        )
        lines.append(
            f"- acked: **{_fmt(i['acked_events_per_s'])} events/s**; ack p50 / p95 / p99 / max "
            f"{_pcts(i['ack_ms'])} ms"
        )
        lines.append(
            f"- dataflow finished {_fmt(i['dataflow_drain_after_ingest_s'])} s after the last ack: "
            f"end-to-end processed **{_fmt(i['end_to_end_processed_events_per_s'])} events/s**"
        )
        lines.append("\n| process | CPU s | CPU s per million events |\n|---|---|---|")
        for name, seconds in i["cpu_s"].items():
            lines.append(f"| {name} | {_fmt(seconds)} | {_fmt(i['cpu_s_per_m_events'].get(name))} |")
    d = f.get("decisions")
    if d:
        lat = d.get("latency_ms", {})
        points = ("p50", "p75", "p90", "p99", "max")
        lines.append("\n### Decisions API\n")
        lines.append(
            f"- {d['client']}, {d['connections']} connections: **{_fmt(d['requests_per_s'])} req/s**, "
            f"p50 / p75 / p90 / p99 / max {' / '.join(_fmt(lat.get(k)) for k in points)} ms; "
            f"non-2xx {d.get('non_2xx', 0)}; API CPU {_fmt(d.get('api_cpu_us_per_request'))} µs/request"
        )
    if f.get("scaling"):
        lines.append("\n### Per stage: draining the same pre-loaded backlog\n")
        lines.append(
            "| pipeline | events | events/s | CPU s per M events | start-up s | correct |\n"
            "|---|---|---|---|---|---|"
        )
        for r in f["scaling"]:
            lines.append(
                f"| dataflow {r['processes']} process × {r['workers']} worker | {_fmt(r['events'])} | "
                f"{_fmt(r['events_per_s'])} | {_fmt(r['cpu_s_per_m_events'])} | {_fmt(r['startup_s'])} | "
                f"{str(r['check']['correct']).lower()} |"
            )
        b = f.get("baseline")
        if b:
            lines.append(
                f"| naive loop (1 round trip per event) | {_fmt(b['events'])} | {_fmt(b['events_per_s'])} | "
                f"{_fmt(b['cpu_s_per_m_events'])} | — | {str(b['check']['correct']).lower()} |"
            )
            lines.append(
                f"\nAttimo / naive: {_fmt(b['attimo_ratio_1_worker'])}× (1 worker), "
                f"{_fmt(b['attimo_ratio_best'])}× (best configuration)."
            )
    if f.get("memory"):
        lines.append("\n### Memory per contact\n")
        lines.append(
            "| contacts | event mix | events | Redis B (INFO delta) | Redis B (MEMORY USAGE of profile) | "
            "profile JSON B | dataflow RSS B | Redis + dataflow B |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for r in f["memory"]:
            if "error" in r:
                lines.append(f"| {_fmt(r['contacts'])} | {r['mix']} | error: {r['error'][:80]} | | | | | |")
                continue
            lines.append(
                f"| {_fmt(r['contacts'])} | {r['mix']} | {_fmt(r['events'])} | "
                f"{_fmt(r['redis_bytes_per_contact'])} | {_fmt(r['redis_memory_usage_sampled'])} | "
                f"{_fmt(r['profile_json_bytes'])} | {_fmt(r['dataflow_rss_bytes_per_contact'])} | "
                f"{_fmt(r['total_bytes_per_contact'])} |"
            )
    if f.get("livestate"):
        lines += livestate_section(f["livestate"])
    p = f.get("profile")
    if p and "error" not in p:
        lines.append("\n### Profile (py-spy, self time share of samples)\n")
        for name in ("gateway", "dataflow", "api"):
            prof = p.get(name, {})
            if "self_pct" in prof:
                top = "; ".join(f"{fn} {pct}%" for fn, pct in prof["self_pct"][:6])
                lines.append(f"- **{name}** ({prof['samples']} samples): {top}")
    return "\n".join(lines) + "\n"


def livestate_section(live: dict[str, Any]) -> list[str]:
    """Live state: throughput and bytes per contact with every feature on, segment-change latency."""
    c = live.get("config", {})
    lines = [
        "\n### Live state: every feature on vs the default configuration\n",
        f"Same pre-loaded backlog, drained by the dataflow (1 process × 1 worker, recovery on) once per "
        f"configuration. Everything on = {c.get('scoring_rules')} scoring rules "
        f"({', '.join(c.get('scoring_modes', []))}), {c.get('absence_rules')} absence rules, decay "
        f"(half-life {_fmt(c.get('half_life_days', {}).get('default'))} d), {c.get('tag_rules')} tag rules, "
        f"{len(c.get('segments', []))} segments ({', '.join(c.get('segments', []))}), default stages. "
        "Correct = every contact's counters equal the generator's tally and the `buyers` segment equals "
        "the contacts the tally says ordered.\n",
        "| contacts | events | configuration | events/s | CPU s per M events | dataflow RSS B/contact | "
        "Redis B/contact (INFO) | Redis B/contact (MEMORY USAGE) | snapshot B/contact (latest) | "
        "recovery files B/contact | correct |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in live.get("sizes", []):
        for r in size["runs"]:
            red = r.get("redis", {})
            store = r.get("recovery_store", {})
            correct = r["check"]["correct"] and r["buyers_check"]["correct"]
            lines.append(
                f"| {_fmt(r['contacts'])} | {_fmt(r['events'])} | {r['config']} | {_fmt(r['events_per_s'])} | "
                f"{_fmt(r['cpu_s_per_m_events'])} | {_fmt(r['dataflow_rss_bytes_per_contact'])} | "
                f"{_fmt(red.get('used_memory_bytes_per_contact'))} | {_fmt(red.get('memory_usage_per_contact'))} | "
                f"{_fmt(store.get('latest_snapshot_bytes_per_contact'))} | "
                f"{_fmt(store.get('file_bytes_per_contact'))} | {str(correct).lower()} |"
            )
    for size in live.get("sizes", []):
        live_run = size["runs"][-1]
        red = live_run.get("redis", {})
        lines.append(
            f"\n{_fmt(live_run['contacts'])} contacts: everything on runs at **{_fmt(size['throughput_ratio'])}×** "
            f"the default configuration's events/s and costs {_fmt(size['cpu_ratio'])}× its CPU per event. "
            f"Redis MEMORY USAGE per contact: profile {_fmt(red.get('profile_memory_usage'))} B + segment "
            f"member sets {_fmt(red.get('segment_sets_bytes_per_contact'))} B + segment-change stream "
            f"{_fmt(red.get('segment_changes_stream_bytes_per_contact'))} B "
            f"({_fmt(red.get('segment_changes'))} changes). Members: "
            + ", ".join(f"{k} {_fmt(v)}" for k, v in red.get("segment_members", {}).items())
            + "."
        )
        stale = live_run["buyers_check"].get("stale_after_merge")
        if stale:
            lines.append(
                f"\n**Stale members**: {_fmt(stale)} anonymous ids stay in `buyers` after their visitor was "
                "merged into a signed-up user (profile deleted, memberships never exited; e.g. "
                f"`{live_run['buyers_check']['stale_examples'][0]}`). Every expected buyer is a member."
            )
    s = live.get("segment_latency")
    if s:
        lines.append("\n### Segment-change latency (everything on, open loop)\n")
        lines.append(
            f"{s['probes']} probes at {_fmt(s['probe_rate_per_s'])}/s, each a fresh contact whose one event "
            f"puts it in a segment, over {_fmt(s['background_events_per_s'])} background events/s appended as "
            "the gateway appends. Entry: scheduled send → member of the segment's set in Redis (polled every "
            f"~1 ms). Exit by time alone: the event's time + {_fmt(s['exit_window_s'])} s (the segment's "
            "window) → member gone. p50 / p95 / p99 / max in ms.\n"
        )
        lines.append("| measure | p50 / p95 / p99 / max ms | not seen |\n|---|---|---|")
        lines.append(f"| event in → membership visible | {_pcts(s['entry_ms'])} | {s['not_entered']} |")
        lines.append(f"| window end → membership gone | {_pcts(s['exit_lag_ms'])} | {s['not_exited']} |")
        lines.append(
            f"\nCorrect: {str(s['check']['correct']).lower()} ({_fmt(s['check']['contacts'])} contacts' "
            f"counters exact); client behind schedule at most {_fmt(s['client_behind_schedule_max_ms'])} ms."
        )
    return lines


def _mib(value: Any) -> str:
    return "—" if value is None else f"{value / 2**20:,.1f}"


def _series_row(what: str, c: dict[str, Any]) -> str:
    per = c.get("bytes_per_new_contact")
    verdict = c["verdict"] if c["passed"] else f"**{c['verdict']}**"
    return (
        f"| {what} | {_mib(c['start'])} | {_mib(c['warm'])} | {_mib(c['end'])} | {_mib(c['max'])} | "
        f"{_fmt(c['max_over_min'])} | {_fmt(per)} | {verdict} |"
    )


def render_soak(doc: dict[str, Any]) -> str:
    """The soak section: the load, a verdict per check, the fits, and the samples over time."""
    f, m = doc["figures"], doc["machine"]
    o, cap, load = f["options"], f["capacity"], f["load"]
    summary = f.get("summary", {})
    checks = summary.get("checks", {})
    c = f.get("correctness", {})
    if cap.get("given"):
        measured = f"{_fmt(cap['events_per_s'])} events/s (given)"
    else:
        measured = (
            f"{_fmt(cap['events_per_s'])} events/s, measured first: {o['capacity_seconds']:g} s closed loop "
            f"of the same traffic ({_fmt(cap['events_acked'])} events acked at {_fmt(cap['acked_events_per_s'])}/s), "
            f"then {_fmt(cap['drain_after_s'])} s until the dataflow had processed them all"
        )
    failed = [k for k, v in checks.items() if not v["passed"]]
    load_check = summary.get("kept_up")
    if load_check and not load_check["passed"]:
        failed.insert(0, "kept_up")
    lines = [
        f"## {SOAK} run — {doc['date']}\n",
        f"- machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, Redis {m['redis']}; the load generator on the same cores",
        f"- command: `{doc['command']}`",
        f"- code: {_code(f.get('code'))}",
        f"- duration: {_fmt(f.get('duration_s'))} s in all; {o['minutes']:g} min of soak",
        f"- capacity: {measured}",
        f"- load: **{_fmt(f['rate_events_per_s'])} events/s** open loop ({o['load_share']:.0%} of capacity) over "
        f"{o['connections']} tracker sockets, ≤ {o['frame_size']} events per frame, orders and e-mail opens "
        "over HTTP `/v1/batch`; every visit is one of "
        f"{_fmt(o['templates'] + o['templates'] // 3)} seeded shopper sessions with a fresh visitor id, session "
        f"and times; new visitors make {o['new_share_high']:.0%} of the visits in the first half of every "
        f"{o['wave_s']:g} s wave and {o['new_share_low']:.0%} in the second (returning ones are drawn from all "
        f"earlier visitors); probes {o['probe_rate']:g}/s; a sample every {o['interval_s']:g} s",
        f"- sent: {_fmt(load['events_acked'])} events acked in {_fmt(load['visits'])} visits by "
        f"{_fmt(load['visitors'])} visitors; rejected {load['events_rejected']}, frame errors "
        f"{load['frame_errors']}, HTTP errors {load['http_errors']}, reconnects {load['reconnects']}, "
        f"unacked at the end {load['unacked_at_end']}",
        f"- **correct: {str(doc['correct']).lower()}**"
        + (
            f" — {_fmt(c.get('contacts'))} contacts, {_fmt(c.get('events'))} events; "
            f"missing {c.get('missing')}, wrong {c.get('wrong')}"
            if c
            else ""
        ),
        f"- **checks: {'all passed' if summary.get('passed') else 'FAILED: ' + ', '.join(failed)}**",
    ]
    for phase, error in f.get("errors", {}).items():
        lines.append(f"- **{phase} failed**: `{error[:300]}`")
    if f.get("probe_errors"):
        lines.append(f"- probe windows that failed: {len(f['probe_errors'])} (first: `{f['probe_errors'][0]}`)")
    if not checks:
        return "\n".join(lines) + "\n"
    lines.append(
        f"\n### Verdicts (after a warm-up of {_fmt(summary['warmup_s'])} s, "
        f"{summary['samples_after_warmup']} samples)\n"
    )
    lines.append(
        "RSS must stay within 10 % (largest over smallest after warm-up); Redis and the dataflow hold the "
        "contacts' state, so for them and for the stores growth is accepted when a straight line in contacts "
        "explains it (R² ≥ 0.9) and, fitted jointly with events, events account for at most 25 % of the rise. "
        "Redis state = `used_memory` minus the event streams (trimmed behind the dataflow's snapshots). "
        "MiB; per new contact in bytes, from the end of warm-up to the end.\n"
    )
    if load_check:
        verdict = load_check["verdict"] if load_check["passed"] else f"**{load_check['verdict']}**"
        lines.append(
            f"Load: {verdict} (the stack must keep up — lag ≤ 5 s, at least 95 % of the planned rate acked — "
            "for the memory verdicts to speak of leaks rather than of an overload).\n"
        )
    lines.append(
        "| series | start MiB | after warm-up MiB | end MiB | max MiB | max/min | B per new contact | verdict |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for key, check in checks.items():
        what = f"RSS {key.split(':', 1)[1]}" if key.startswith("rss:") else {
            "redis_state": "Redis state (`used_memory` − streams)",
            "recovery_store": "recovery store on disk",
        }.get(key, key)
        lines.append(_series_row(what, check))
    lines.append("\n### Growth against contacts and events (least squares over the samples after warm-up)\n")
    lines.append(
        "| series | new contacts | B per contact (contacts only) | R² | R² against events only | "
        "joint: B per contact | joint: B per event | events' share of the rise |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for key, check in checks.items():
        if "fit_joint" not in check:
            continue
        fc, fj = check["fit_contacts"], check["fit_joint"]
        lines.append(
            f"| {key} | {_fmt(check['new_contacts'])} | {_fmt(fc['bytes_per_contact'])} | {fc['r2']:.3f} | "
            f"{check['fit_events_r2']:.3f} | {_fmt(fj['bytes_per_contact'])} | {_fmt(fj['bytes_per_event'])} | "
            f"{fj['event_share']:.0%} |"
        )
    p = f.get("probes", {})
    lag = summary["lag_s"]
    lines.append(
        f"\nLatency over the whole soak: probe event → profile visible p50 / p95 / p99 / max "
        f"{_pcts(p.get('visible_ms', {}))} ms, → decision pushed {_pcts(p.get('pushed_ms', {}))} ms "
        f"({_fmt(p.get('sent'))} probes, {p.get('not_visible')} not visible, {p.get('not_pushed')} not pushed). "
        f"Median of the per-sample p50: {_fmt(summary['probe_p50_ms_first_third'])} ms in the first third "
        f"after warm-up, {_fmt(summary['probe_p50_ms_last_third'])} ms in the last. Ingest lag after warm-up: "
        f"median {_fmt(lag['median'])} s, max {_fmt(lag['max'])} s. Event streams held at most "
        f"{_fmt(summary['event_streams_max_entries'])} entries after warm-up."
    )
    cpu = summary.get("cpu", {})
    if cpu:
        lines.append(
            "\nCPU, first → last third after warm-up (cores; µs per event): "
            + "; ".join(
                f"{name} {' → '.join(_fmt(x) for x in v['cores'])} "
                f"({' → '.join(_fmt(x) for x in v['us_per_event'])} µs)"
                for name, v in cpu.items()
            )
            + f". Machine load average (1 min) {_fmt(summary['loadavg_1m']['min'])}–"
            f"{_fmt(summary['loadavg_1m']['max'])} on 2 cores: others' work shares them."
        )
    lines += _soak_timeline(f["samples"])
    return "\n".join(lines) + "\n"


def _soak_timeline(samples: list[dict[str, Any]], rows: int = 12) -> list[str]:
    """About a dozen samples, evenly spread, and the last."""
    names = list(samples[-1]["rss"])
    step = max(1, len(samples) // rows)
    picked = samples[::step]
    if picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    lines = [
        "\n### Over time (every sample is in the JSON)\n",
        "| t s | contacts | events/s | lag s | probe visible p50 / max ms | ack p50 / p99 ms | "
        + " | ".join(f"RSS {n} MiB" for n in names)
        + " | Redis state MiB | streams MiB | recovery MiB | CPU cores "
        + " / ".join(names)
        + " | load avg |",
        "|" + "---|" * (11 + len(names)),
    ]
    previous = samples[0]
    for s in picked:
        span = max(1e-3, s["t_s"] - previous["t_s"])
        cores = " / ".join(
            f"{(s['cpu_s'].get(n, 0) - previous['cpu_s'].get(n, 0)) / span:.2f}" for n in names
        ) if s is not previous else "—"
        previous = s
        vis, ack = s["probe"].get("visible_ms", {}), s.get("ack_ms", {})
        lines.append(
            f"| {_fmt(s['t_s'])} | {_fmt(s['contacts'])} | {_fmt(s['events_per_s'])} | {_fmt(s['lag_s'])} | "
            f"{_fmt(vis.get('p50'))} / {_fmt(vis.get('max'))} | {_fmt(ack.get('p50'))} / {_fmt(ack.get('p99'))} | "
            + " | ".join(_mib(s["rss"].get(n)) for n in names)
            + f" | {_mib(s['redis_used_memory'] - s['event_stream_bytes'])} | {_mib(s['event_stream_bytes'])} | "
            f"{_mib(s['recovery_bytes'])} | {cores} | {_fmt(s.get('loadavg_1m'))} |"
        )
    return lines


def command_line() -> str:
    return "python -m benchmarks " + " ".join(sys.argv[1:])
