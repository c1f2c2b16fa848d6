"""The `## decisions run` section of RESULTS.md (`python -m benchmarks.decisions_bench`)."""

from __future__ import annotations

from typing import Any

from benchmarks import report

NAME = "decisions"


def render_decisions(doc: dict[str, Any]) -> str:
    """The `## decisions run` section of RESULTS.md."""
    f, m = doc["figures"], doc["machine"]
    fmt = report._fmt
    o = f["options"]
    lines = [
        f"## {NAME} run — {doc['date']}\n",
        f"- machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB, Python {m['python']}, Redis {m['redis']}; "
        "wrk, the ingest load and every process of the stack on the same cores, shared with other work",
        f"- command: `{doc['command']}`; code: {report._code(f.get('code'))}",
        f"- {fmt(o['contacts'])} contacts ({o['signed_share']:.0%} signed-in, asked with `sig`), "
        f"{fmt(o['products'])} products (neighbour documents of 10 per list with cards, trending 50); "
        f"wrk -t1 -c50 for {o['seconds']:g} s while ingesting {fmt(o['rate'])} events/s",
        f"- **correct: {str(doc['correct']).lower()}** (sampled answers equal their documents' composition, "
        "users without `sig` refused, no non-2xx, every push probe pushed)",
        "\n### Requests per second while ingesting (target ≥ 10,000 req/s, p99 ≤ 10 ms)\n",
        "| server | req/s | p50 / p90 / p99 / max ms | API CPU µs/request | Redis µs/request | ingest achieved ev/s "
        "| load avg before → after | non-2xx | without ingest: req/s, p99 ms (load), API CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in f["servers"]:
        h, lat = s["http"], s["http"].get("latency_ms", {})
        lines.append(
            f"| {s['server']} | **{fmt(h.get('requests_per_s'))}** | "
            + " / ".join(fmt(lat.get(k)) for k in ("p50", "p90", "p99", "max"))
            + f" | {fmt(s['api_cpu_us_per_request'])} | {fmt(s['redis_us_per_request'])} | "
            f"{fmt(s['ingest']['achieved_events_per_s'])} | {s['load_before']} → {s['load_after']} | "
            f"{fmt(h.get('non_2xx'))} | {_idle(s.get('idle') or {})} |")
    b = f.get("cpu_breakdown")
    if b:
        fast = (f"; the whole fast path (`api.decisions_fast` called as the server calls it, read and "
                f"composition included) {fmt(b['fast_path_us'])} µs; the HTTP server is the rest of the API's "
                "figure without ingest above" if "fast_path_us" in b
                else "; the HTTP server and the fast path are the rest of the API's figure above")
        lines.append(
            f"\nWhere an answer's CPU goes, measured in one process on the same documents (load avg {b['load']}): "
            f"the read — one EVALSHA on the pipelined connection, the products' documents held — "
            f"{fmt(b['read_us'])} µs; composing the strips (`state.recommendations.compose_cards`) and "
            f"encoding the answer {fmt(b['compose_and_encode_us'])} µs{fast}.")
    p = f["push"]
    lines.append(
        f"\nPush: {fmt(p['probes'])} fresh visitors' first page view → `decision` frame on their socket "
        f"(composed by the gateway), while ingesting {fmt(p['ingest']['achieved_events_per_s'])} events/s: "
        f"p50 / p95 / p99 / max {report._pcts(p['event_to_push_ms'])} ms; not pushed {p['not_pushed']}; "
        f"load avg {p['load_before']} → {p['load_after']}.")
    return "\n".join(lines) + "\n"


def _idle(idle: dict[str, Any]) -> str:
    if not idle:
        return "—"
    cpu = idle.get("api_cpu_us_per_request")
    cpu_text = "" if cpu is None else f", API CPU {report._fmt(cpu)} µs/request"
    return (f"{report._fmt(idle.get('requests_per_s'))}, {report._fmt(idle.get('latency_ms', {}).get('p99'))} "
            f"({idle.get('load')}){cpu_text}")
