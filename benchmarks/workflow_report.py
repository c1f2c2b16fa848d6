"""The `## workflows run` section of RESULTS.md, from a `python -m benchmarks.workflows` result."""

from __future__ import annotations

from typing import Any

from benchmarks import report
from benchmarks.workflow_config import DELAYED_FIRST, DELAYED_STEP, PROBE_EVENT, PROBE_SEGMENT

fmt = report._fmt


def _pcts(points: dict[str, Any], keys: tuple[str, ...] = ("p50", "p95", "p99", "max")) -> str:
    return " / ".join(fmt(points.get(k)) for k in keys) if points else "—"


def _cpu(cpu: dict[str, Any]) -> str:
    return "; ".join(f"{k} {fmt(v)}" for k, v in cpu.items())


def _machine(m: dict[str, Any] | None) -> str:
    """Others' CPU over the interval, the load average, and how long each of ours waited for a CPU."""
    if not m:
        return "—"
    text = f"others' CPU {fmt(m['others_cpu_s'])} s, load average {fmt(m['loadavg_1m'])}"
    waits = m.get("runqueue_wait_s")
    if waits:
        window = f" of {fmt(m['window_s'])} s" if "window_s" in m else ""
        text += f"; waiting for a CPU{window}: " + "; ".join(f"{k} {fmt(v)}" for k, v in waits.items())
    return text


def _quiets(f: dict[str, Any]) -> list[tuple[str, Any]]:
    """What the rest of the machine did before each measure: (which, what was seen)."""
    out = [(f"latency {_rate(r)}", r.get("quiet_before")) for r in f.get("latency", [])]
    if "delays" in f:
        out.append(("delays", f["delays"].get("quiet_before")))
    runs = f.get("throughput", {}).get("runs", [])
    out += [(f"drain {n} ({r['workflows']})", r.get("quiet_before")) for n, r in enumerate(runs, 1)]
    return [(name, q) for name, q in out if q]


def _quiet(q: dict[str, Any]) -> str:
    waited = f", after waiting {fmt(q['waited_s'])} s for it to go quiet" if q["waited_s"] > 1 else ""
    return f"{fmt(q['others_cores'])} cores busy{waited}"


def _rate(lat: dict[str, Any]) -> str:
    return fmt(lat["background_events_per_s"]) + ("" if lat.get("shop_workflows", True) else " *probes only*")


def _latency(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "\n### Event → webhook received (background shop traffic through the gateway, open loop)\n",
        f"Probes at {fmt(runs[0]['probe_rate_per_s'])}/s, alternating: `Coupon Applied` entering an "
        "event-triggered workflow, and a `Product Viewed` entering a segment whose entry triggers another; each "
        "sends one webhook at once. From the probe's scheduled send to the outbox append (Redis entry id) and to "
        "the receiver's arrival time; p50 / p95 / p99 / max in ms. Background: shoppers at the rate shown "
        "(5 events per websocket frame; orders and e-mail opens over HTTP); the dispatcher delivers their "
        "workflows' webhooks to the same receiver.\n",
        "With the ten shop workflows unless marked *probes only* (a control run without them).\n",
        "| background ev/s | trigger | probes | event → outbox append | event → webhook received | "
        "not received / twice / actions ≠ 1 |",
        "|---|---|---|---|---|---|",
    ]
    for lat in runs:
        for workflow, what in ((PROBE_EVENT, "event"), (PROBE_SEGMENT, "segment entry")):
            k = lat["probes"][workflow]
            lines.append(f"| {_rate(lat)} | {what} | {fmt(k['probes'])} | "
                         f"{_pcts(k['event_to_outbox_ms'])} | **{_pcts(k['event_to_received_ms'])}** | "
                         f"{k['not_received']} / {k['received_twice']} / {k['actions_not_one']} |")
    for lat in runs:
        check = lat["check"]
        counters, delivery = check["counters"], check["delivery"]
        by_workflow = ", ".join(f"{w} {fmt(n)}" for w, n in sorted(lat["actions_by_workflow"].items()))
        lines += [
            f"\nAt {_rate(lat)} events/s:\n",
            f"- achieved {fmt(lat['achieved_events_per_s'])} events/s ({fmt(lat['background_events_acked'])} "
            f"acked; client late at most {fmt(lat['client_behind_schedule_max_ms'])} ms); "
            f"{fmt(lat['background_actions'])} webhooks of the background's workflows delivered besides the "
            f"probes' ({fmt(lat['background_actions_per_s'])}/s); all by workflow: {by_workflow}",
            f"- CPU s: {_cpu(lat['cpu_s'])}; {_machine(lat.get('machine'))}",
            f"- correct: {str(check['correct']).lower()} — counters of {fmt(counters['contacts'])} contacts "
            f"({fmt(counters['events'])} events): missing {counters['missing']}, wrong {counters['wrong']}; "
            f"{fmt(delivery['actions'])} actions appended (= {fmt(delivery['entries_added'])} outbox entries): "
            f"missing {delivery['missing']}, delivered twice {delivery['delivered_twice']}, unexpected "
            f"{delivery['unexpected']}, bad signatures {delivery['bad_signatures']}, unacked {delivery['pending']}",
        ]
    return lines


def _delays(d: dict[str, Any]) -> list[str]:
    c = d["check"]
    first, follow = c[DELAYED_FIRST], c[DELAYED_STEP]
    return [
        f"\n### Delay lateness ({fmt(d['contacts'])} contacts in a delay at once)\n",
        f"{fmt(d['contacts'])} fresh contacts each got a webhook at once, then a {fmt(d['delay_s'])} s delay, "
        f"then a follow-up; loaded at {fmt(d['load_rate_per_s'])}/s over {fmt(d['window_s'])} s, so their due "
        f"times spread over {fmt(d['due_spread_s'])} s. The workflow's gauge counted "
        f"**{fmt(c['waiting_at_once'])} waiting at once** before the first delay ended. No other traffic "
        "besides the ten shop workflows being configured; no dispatcher (the dataflow's part ends at the "
        "outbox). Lateness = the follow-up's outbox append (Redis entry id, ms) − its due time (the first "
        "webhook's decision time + the delay).\n",
        f"- lateness p50 / p90 / p99 / max: **{_pcts(d['lateness_ms'], ('p50', 'p90', 'p99', 'max'))} ms**; "
        f"appended early (> 1 ms): {d['early']}; loader late at most {fmt(d['client_behind_schedule_max_ms'])} ms",
        f"- CPU s: {_cpu(d['cpu_s'])}; {_machine(d.get('machine'))}",
        f"- correct: {str(c['correct']).lower()} — first webhooks {fmt(first['actions'])}, follow-ups "
        f"{fmt(follow['actions'])}; contacts without a follow-up {follow['contacts_without']}, with two or more "
        f"{follow['contacts_with_two_or_more']}, other contacts {follow['unexpected_contacts']}",
    ]


def _throughput(t: dict[str, Any]) -> list[str]:
    lines = [
        "\n### Dataflow throughput: ten shop workflows vs none\n",
        f"The same pre-loaded backlog ({fmt(t['visitors'])} visitors, {fmt(t['contacts'])} contacts, "
        f"{fmt(t['events'])} events: a week of shop traffic that ended a day ago) drained by the dataflow "
        "(1 worker, recovery on) under everything on, without and with the ten workflows, alternating.\n",
        "| drain | workflows | events/s | CPU s per M events | actions appended | others' CPU s | correct |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, r in enumerate(t["runs"], 1):
        actions = fmt(r["outbox"]["actions"]) if "outbox" in r else "—"
        lines.append(f"| {n} | {r['workflows']} | {fmt(r['events_per_s'])} | {fmt(r['cpu_s_per_m_events'])} | "
                     f"{actions} | {fmt(r['machine']['others_cpu_s'])} | {str(r['check']['correct']).lower()} |")
    lines.append(f"\nTen workflows run at **{fmt(t['throughput_ratio'])}×** the events/s of none (medians) and "
                 f"cost {fmt(t['cpu_ratio'])}× the CPU per event.")
    ten = next((r for r in t["runs"] if r["workflows"] == "ten"), None)
    if ten is not None:
        entered = ", ".join(f"{w} {fmt(n)}" for w, n in ten["entered"].items())
        lines.append(f"Entered (first drain with workflows): {entered}.")
        out = ten["outbox"]
        mismatched = "; ".join(f"{w}: outbox {v['outbox']} vs queued {v['queued']}"
                               for w, v in out["count_mismatches"].items()) or "none"
        lines.append(f"Outbox check: {fmt(out['actions'])} actions, appended twice {out['appended_twice']}; "
                     f"outbox ≠ the workflow's own queued count: {mismatched}; workflows nobody entered: "
                     f"{', '.join(ten['not_entered']) or 'none'}.")
    return lines


def render_workflows(doc: dict[str, Any]) -> str:
    """The `## workflows run` section."""
    from benchmarks.workflows import targets  # imported here: it imports `report`, which imports this

    f, m = doc["figures"], doc["machine"]
    lines = [
        f"## {report.WORKFLOWS} run — {doc['date']}\n",
        f"- machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, Redis {m['redis']}; load generator and receiver on the same cores, and other "
        f"people's work too: load average {' / '.join(fmt(v) for v in f['loadavg_at_start'])} (1 / 5 / 15 min) "
        f"at the start, {' / '.join(fmt(v) for v in f['loadavg_at_end'])} at the end",
        f"- command: `{doc['command']}`",
        f"- code: {report._code(f.get('code'))}",
        f"- duration: {fmt(f.get('duration_s'))} s",
        "- the rest of the machine just before each measure: " + "; ".join(
            f"{name} {_quiet(q)}" for name, q in _quiets(f)),
        f"- **correct: {str(doc['correct']).lower()}**",
        "\n### Targets\n",
        "| target | goal | measured | verdict |",
        "|---|---|---|---|",
    ]
    for what, value, goal, met in targets(f):
        verdict = "not measured" if met is None else "met" if met else "**missed**"
        unit = "×" if "throughput" in what else " ms"
        lines.append(f"| {what} | {goal} | {fmt(value)}{unit if value is not None else ''} | {verdict} |")
    if "latency" in f:
        lines += _latency(f["latency"])
    if "delays" in f:
        lines += _delays(f["delays"])
    if "throughput" in f:
        lines += _throughput(f["throughput"])
    ref = f.get("dispatcher")
    if ref:
        rates = ", ".join(f"{fmt(v)}/s from {k} process{'es' if k != '1' else ''}"
                          for k, v in ref["deliveries_per_s"].items())
        lines.append(f"\nDispatcher deliveries: {rates} (`{ref['command']}`, {ref['date']}, correct: "
                     f"{str(ref['correct']).lower()}; its own section: `## dispatcher run`).")
    for name, error in f.get("errors", {}).items():
        lines.append(f"\n{name} failed: `{error[-300:]}`")
    return "\n".join(lines) + "\n"
