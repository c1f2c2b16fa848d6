"""The `## recommendations run` section of RESULTS.md, from a `python -m benchmarks.recommendations` result."""

from __future__ import annotations

from typing import Any

from benchmarks import report

NAME = "recommendations"
fmt = report._fmt
NAMES = {"attimo_streaming": "Attimo, streaming", "attimo_trained": "Attimo, trained", "item_knn_batch":
         "item-KNN (batch)", "popularity": "popularity"}


def _pcts(points: dict[str, Any]) -> str:
    return " / ".join(fmt(points.get(k)) for k in ("p50", "p90", "p99", "max")) if points else "—"


def _quality(q: dict[str, Any]) -> list[str]:
    w, s = q["world"], q["settings"]
    lines = [
        "\n### Quality: HR@10 and MRR@10 on held-out next views (synthetic shop, planted structure)\n",
        f"{fmt(w['products'])} products in {w['categories']} categories, {fmt(w['sessions'])} sessions over "
        f"{fmt(w['days'])} days (seed {w['seed']}); the last {fmt(w['test_sessions'])} held out, each cut after "
        f"every view ({fmt(q['recommenders']['popularity']['cases'])} cases); {w['new_products']} products launch "
        "in the held-out period. Attimo = the `personal` strip as the decisions route composes it, from documents "
        "the real capability and product shards wrote in-process (default settings: LLR ≥ "
        f"{fmt(s['min_llr'])}, half-life {fmt(s['half_life_s'] / 86_400)} d, {s['neighbours']} neighbours kept, "
        f"{s['doc_size']} per document). *Trained* saw the training sessions only, like the baselines; "
        "*streaming* also counted the held-out sessions as they happened (what production does).\n",
        "| recommender | HR@10 | MRR@10 | HR@10 on new products | HR@10 vs popularity | HR@10 vs item-KNN |",
        "|---|---|---|---|---|---|",
    ]
    for key, name in NAMES.items():
        r = q["recommenders"][key]
        ratio = q["ratios"].get(key, {})
        lines.append(f"| {name} | **{fmt(r['hr_at_10'])}** | {fmt(r['mrr_at_10'])} | "
                     f"{fmt(r['hr_at_10_new_products'])} | {fmt(ratio.get('hr_vs_popularity'))} | "
                     f"{fmt(ratio.get('hr_vs_item_knn'))} |")
    lines.append(f"\n{fmt(q['interactions_counted'])} interactions counted, {fmt(q['documents'])} neighbour "
                 f"documents; {fmt(q['seconds'])} s. Check: every strip held 10 distinct known products and none "
                 f"of the latest views — {str(q['check']['correct']).lower()}.")
    return lines


def _freshness(f: dict[str, Any]) -> list[str]:
    return [
        "\n### Freshness: new co-purchase → neighbour document (real dataflow)\n",
        f"Background: synthetic shop sessions replayed live at {fmt(f['background_events_per_s'])} events/s "
        f"(achieved {fmt(f['achieved_events_per_s'])}; every event a product view, add or order), appended as "
        f"the gateway appends. Probes: {fmt(f['probes'])} new shoppers over {fmt(f['seconds'])} s, each adding "
        "two never-seen products and ordering them; visible = the first product's document lists the second "
        "as bought together, with its card (polled every 5 ms). Default settings (`ATTIMO_RECS_REFRESH_S` = 1 s).\n",
        f"- append → visible p50 / p90 / p99 / max: **{_pcts(f['visible_ms'])} ms**; not visible "
        f"{f['not_visible']}",
        f"- CPU s: {'; '.join(f'{k} {fmt(v)}' for k, v in f['cpu_s'].items())}; quarantined "
        f"{f['check']['quarantined']}; correct: {str(f['check']['correct']).lower()}",
    ]


def _throughput(t: dict[str, Any]) -> list[str]:
    lines = [
        "\n### Dataflow throughput: recommendations on vs off\n",
        f"The same pre-loaded backlog ({fmt(t['visitors'])} visitors, {fmt(t['contacts'])} contacts, "
        f"{fmt(t['events'])} events: a week of shop traffic) drained by the dataflow (1 worker, recovery on, "
        "default configuration), with `ATTIMO_RECOMMENDATIONS` off and on, alternating.\n",
        "| drain | recommendations | events/s | CPU s per M events | neighbour documents | correct |",
        "|---|---|---|---|---|---|",
    ]
    for n, r in enumerate(t["runs"], 1):
        lines.append(f"| {n} | {r['recommendations']} | {fmt(r['events_per_s'])} | {fmt(r['cpu_s_per_m_events'])} "
                     f"| {fmt(r['neighbour_documents'])} | {str(r['check']['correct']).lower()} |")
    lines.append(f"\nWith recommendations the dataflow runs at **{fmt(t['throughput_ratio'])}×** the events/s "
                 f"without (medians) and costs {fmt(t['cpu_ratio'])}× the CPU per event.")
    return lines


def render_recommendations(doc: dict[str, Any]) -> str:
    """The section: targets, then each measure that ran."""
    f = doc["figures"]
    m = doc["machine"]
    lines = [
        f"## recommendations run — {doc['date']}\n",
        f"- machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB, Python {m['python']}, Redis {m['redis']}",
        f"- command: `{doc['command']}`",
        f"- code: {report._code(f.get('code'))}",
        f"- duration: {fmt(f.get('seconds'))} s",
        f"- **correct: {str(doc['correct']).lower()}**",
        "\n| target | goal | measured | verdict |",
        "|---|---|---|---|",
    ]
    for t in f.get("targets", []):
        verdict = "met" if t["met"] else "not measured" if t["met"] is None else "**missed**"
        lines.append(f"| {t['what']} | {t['goal']} | {fmt(t['measured'])} | {verdict} |")
    if "quality" in f:
        lines += _quality(f["quality"])
    if "freshness" in f:
        lines += _freshness(f["freshness"])
    if "throughput" in f:
        lines += _throughput(f["throughput"])
    return "\n".join(lines) + "\n"
