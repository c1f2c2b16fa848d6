"""The soak's judgement on synthetic samples, its bookkeeping, and its place in RESULTS.md (no stack)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson

from benchmarks import report
from benchmarks.shoppers import Tally
from benchmarks.soak import Traffic, build_templates, growth, summarise

MIB = 2**20


def samples(
    rss: dict[str, Any],
    redis_state: Any,
    recovery: Any,
    n: int = 60,
    contacts_per_s: Any = None,
) -> list[dict[str, Any]]:
    """`n` samples 5 s apart; each series is a function of (t, contacts, events).

    Contacts arrive in waves (fast, then slow, every 60 s) while events arrive
    steadily, as in the soak, so growth per contact and growth per event differ.
    """
    contacts_per_s = contacts_per_s or (lambda t: 400 if (t // 30) % 2 == 0 else 100)
    rows, contacts = [], 10_000.0
    for i in range(n):
        t = i * 5.0
        if i:
            contacts += 5 * contacts_per_s(t)
        events = 5_000.0 * t
        rows.append(
            {
                "t_s": t,
                "contacts": int(contacts),
                "events": int(events),
                "rss": {name: int(f(t, contacts, events)) for name, f in rss.items()},
                "redis_used_memory": int(redis_state(t, contacts, events)) + 3 * MIB,
                "event_stream_bytes": 3 * MIB,
                "event_stream_entries": 30_000,
                "recovery_bytes": int(recovery(t, contacts, events)),
                "lag_s": 0.002,
                "probe": {"visible_ms": {"p50": 5.0, "max": 20.0}},
                "ack_ms": {"p50": 1.0, "p99": 4.0},
                "events_per_s": 5_000,
                "cpu_s": {"gateway": 0.2 * t, "dataflow": 0.3 * t + 0.001 * t * t},
                "loadavg_1m": 2.5,
            }
        )
    return rows


def flat(level: float) -> Any:
    # A little noise, well inside 10 %.
    return lambda t, c, e: level * (1 + 0.02 * math.sin(t / 7))


def per_contact(base: float, size: float) -> Any:
    return lambda t, c, e: base + size * c


def per_event(base: float, size: float) -> Any:
    return lambda t, c, e: base + size * e


def healthy() -> list[dict[str, Any]]:
    return samples(
        {"gateway": flat(80 * MIB), "api": flat(90 * MIB), "dataflow": per_contact(200 * MIB, 1_500)},
        per_contact(50 * MIB, 1_200),
        per_contact(10 * MIB, 2_000),
    )


class TestGrowth:
    """Each series is judged flat, growing with contacts, or growing with something else."""

    def test_flat_series_is_flat(self) -> None:
        """Within 10 % (max over min after warm-up): flat."""
        rows = samples({"gateway": flat(80 * MIB)}, flat(MIB), flat(MIB))
        check = growth([r["rss"]["gateway"] for r in rows], [r["contacts"] for r in rows], [r["events"] for r in rows])
        assert check["flat"]
        assert check["max_over_min"] < 1.05

    def test_growth_proportional_to_contacts_is_recognised(self) -> None:
        """A line in contacts: its slope is the bytes per contact, and events explain little of it."""
        rows = healthy()
        check = growth([r["recovery_bytes"] for r in rows], [r["contacts"] for r in rows], [r["events"] for r in rows])
        assert not check["flat"]
        assert check["with_contacts"]
        assert abs(check["fit_contacts"]["bytes_per_contact"] - 2_000) <= 2
        assert check["fit_contacts"]["r2"] > 0.999
        assert abs(check["bytes_per_new_contact"] - 2_000) <= 2
        assert check["fit_joint"]["event_share"] < 0.05

    def test_growth_with_events_is_not_taken_for_contacts(self) -> None:
        """Waves of new contacts over steady traffic: a per-event leak fits events, not contacts."""
        rows = samples({}, per_event(50 * MIB, 20), flat(MIB))
        values = [r["redis_used_memory"] - r["event_stream_bytes"] for r in rows]
        check = growth(values, [r["contacts"] for r in rows], [r["events"] for r in rows])
        assert not check["flat"]
        assert not check["with_contacts"]
        assert check["fit_events_r2"] > check["fit_contacts"]["r2"]
        assert abs(check["fit_joint"]["bytes_per_event"] - 20) < 0.5
        assert check["fit_joint"]["event_share"] > 0.9

    def test_mixed_growth_reports_both_parts(self) -> None:
        """Bytes per contact and per event are separated by the joint fit."""
        rows = samples({}, lambda t, c, e: 50 * MIB + 1_000 * c + 2 * e, flat(MIB))
        values = [r["redis_used_memory"] - r["event_stream_bytes"] for r in rows]
        check = growth(values, [r["contacts"] for r in rows], [r["events"] for r in rows])
        assert abs(check["fit_joint"]["bytes_per_contact"] - 1_000) <= 2
        assert abs(check["fit_joint"]["bytes_per_event"] - 2) < 0.01


class TestSummary:
    """Verdicts per process and per store, after the warm-up only."""

    def test_healthy_run_passes(self) -> None:
        """Stateless processes flat, the dataflow and the stores growing with contacts: all pass."""
        summary = summarise(healthy(), 0.2)
        checks = summary["checks"]
        assert summary["passed"]
        assert checks["rss:gateway"]["flat"] and checks["rss:api"]["flat"]
        assert not checks["rss:dataflow"]["flat"]
        assert checks["rss:dataflow"]["verdict"].startswith("grows with contacts: 1,500 B per contact")
        assert checks["redis_state"]["fit_contacts"]["bytes_per_contact"] == 1_200
        assert checks["recovery_store"]["passed"]

    def test_cpu_per_event_is_compared_between_the_first_and_last_third(self) -> None:
        """Steady traffic, dataflow CPU rising with time: its cores and µs per event go up, the gateway's not."""
        cpu = summarise(healthy(), 0.2)["cpu"]
        assert cpu["gateway"]["us_per_event"][0] == cpu["gateway"]["us_per_event"][1] == 40.0
        first, last = cpu["dataflow"]["cores"]
        assert last > first * 1.3

    def test_a_run_that_fell_behind_is_marked_so(self) -> None:
        """Lag past 5 s, or the planned rate not acked: the run fails as an overload, whatever the RSS did."""
        rows = healthy()
        assert summarise(rows, 0.2, rate=5_000)["kept_up"]["passed"]
        assert not summarise(rows, 0.2, rate=6_000)["kept_up"]["passed"]
        rows[-3]["lag_s"] = 12.0
        summary = summarise(rows, 0.2, rate=5_000)
        assert not summary["kept_up"]["passed"]
        assert summary["kept_up"]["verdict"].startswith("fell behind: lag up to 12.0 s")
        assert not summary["passed"]
        assert all(c["passed"] for c in summary["checks"].values())

    def test_warm_up_is_left_out(self) -> None:
        """A start-up jump in the first 20 % does not count; the same jump later does."""
        early = samples({"api": lambda t, c, e: 90 * MIB if t < 40 else 150 * MIB}, flat(MIB), flat(MIB))
        late = samples({"api": lambda t, c, e: 90 * MIB if t < 200 else 150 * MIB}, flat(MIB), flat(MIB))
        assert summarise(early, 0.2)["checks"]["rss:api"]["passed"]
        after = summarise(late, 0.2)
        assert not after["checks"]["rss:api"]["passed"]
        assert not after["passed"]
        assert after["warmup_s"] >= 0.2 * late[-1]["t_s"]

    def test_a_growing_stateless_process_fails_even_in_step_with_contacts(self) -> None:
        """The gateway holds no contact state: growing with contacts is still a failure for it."""
        rows = samples({"gateway": per_contact(80 * MIB, 500)}, flat(MIB), flat(MIB))
        check = summarise(rows, 0.2)["checks"]["rss:gateway"]
        assert check["with_contacts"]
        assert not check["passed"]
        assert check["verdict"].startswith("not flat")

    def test_a_store_growing_with_time_fails(self) -> None:
        """The recovery store growing per event, not per contact: the check fails and says so."""
        rows = samples({}, flat(MIB), per_event(10 * MIB, 30))
        check = summarise(rows, 0.2)["checks"]["recovery_store"]
        assert not check["passed"]
        assert "B/event" in check["verdict"]


class TestTraffic:
    """The generator's compact bookkeeping says what `Tally` would say about the same events."""

    def test_counts_equal_a_tally_of_the_sent_events(self) -> None:
        """Visits of new and returning visitors, sign-ups, orders and e-mail opens, all acked."""
        anonymous = build_templates(3, 200, known=False)
        known = build_templates(3, 60, known=True)
        traffic = Traffic(1, "t", 2_000, anonymous, known)
        reference = Tally()
        for i in range(1_500):
            n, t, chunks = traffic.next_session(0.6 if i % 200 < 100 else 0.2, 5)
            for batch, first, end in chunks:
                decoded = orjson.loads(batch)
                for event in decoded if isinstance(decoded, list) else [decoded]:
                    reference.add(event)
                traffic.acked(n, t, first, end)
        mine = traffic.tally()
        assert mine.events == reference.events
        assert mine.counts == reference.counts
        assert traffic.contacts == len(reference.counts) == traffic.created
        assert any(reference.links) and any(row[4] for row in reference.counts.values())

    def test_rejected_events_are_not_counted(self) -> None:
        """An event the gateway rejected by index is left out of the expected counters."""
        traffic = Traffic(1, "t", 10, build_templates(3, 5, known=False), build_templates(3, 2, known=True))
        n, t, chunks = traffic.next_session(1.0, 5)
        _, first, end = chunks[0]
        assert traffic.acked(n, t, first, end, frozenset({0})) == end - first - 1


def soak_document(date: str) -> dict[str, Any]:
    rows = healthy()
    figures = {
        "options": {
            "minutes": 5.0,
            "capacity_seconds": 15.0,
            "load_share": 0.5,
            "connections": 50,
            "frame_size": 5,
            "templates": 3_000,
            "new_share_high": 0.8,
            "new_share_low": 0.2,
            "wave_s": 60.0,
            "probe_rate": 10.0,
            "interval_s": 5.0,
        },
        "capacity": {
            "events_per_s": 20_000,
            "events_acked": 600_000,
            "acked_events_per_s": 40_000,
            "drain_after_s": 15.0,
        },
        "rate_events_per_s": 10_000,
        "load": {
            "events_acked": 3_000_000,
            "visits": 370_000,
            "visitors": 180_000,
            "events_rejected": 0,
            "frame_errors": 0,
            "http_errors": 0,
            "reconnects": 0,
            "unacked_at_end": 0,
        },
        "samples": rows,
        "probes": {
            "sent": 3_000,
            "not_visible": 0,
            "not_pushed": 0,
            "visible_ms": {"p50": 5.0},
            "pushed_ms": {"p50": 5.0},
        },
        "correctness": {"correct": True, "contacts": 180_000, "events": 3_000_000, "missing": 0, "wrong": 0},
        "summary": summarise(rows, 0.2, rate=5_000),
        "duration_s": 400.0,
        "code": {"commit": "abc1234", "subject": "soak", "uncommitted_changes": "0"},
    }
    return {
        "name": "soak",
        "date": date,
        "command": "python -m benchmarks --soak",
        "correct": True,
        "machine": {"nproc": 2, "cpu": "cpu", "memory_gb": 8.0, "kernel": "6", "python": "3.11", "redis": "7.0"},
        "figures": figures,
        "targets": [],
    }


class TestResultsMarkdown:
    """A soak run adds or replaces only its own section; other runs keep it."""

    def test_soak_section_has_the_command_machine_verdicts_and_timeline(self) -> None:
        """The command, 2 cores, one row per check with its verdict, and samples over time."""
        text = report.render_soak(soak_document("2026-01-01T00:00:00+00:00"))
        assert text.startswith("## soak run — 2026-01-01")
        assert "`python -m benchmarks --soak`" in text and "2 cores" in text
        assert "| RSS gateway |" in text and "| recovery store on disk |" in text
        assert "grows with contacts: 1,500 B per contact" in text
        assert "checks: all passed" in text
        assert "Load: kept up" in text
        assert "### Over time" in text

    def test_soak_run_replaces_only_its_own_section(self, tmp_path: Path) -> None:
        """Everything before and after the soak section stays byte for byte."""
        head = "# Attimo benchmark results\n\nintro\n\n## full run — x\n\nfull body\n"
        tail = "\n## short run — y\n\nshort body\n"
        markdown = tmp_path / "RESULTS.md"
        markdown.write_text(head + "\n## soak run — old\n\nold soak\n" + tail)
        figures = soak_document("2026-01-02T00:00:00+00:00")["figures"]
        report.write(figures, report.SOAK, "python -m benchmarks --soak", tmp_path)
        text = markdown.read_text()
        assert text.startswith(head + "\n## soak run — 20")
        assert text.endswith(tail)
        assert "old soak" not in text
        assert text.count("## soak run") == 1

    def test_soak_section_is_appended_when_absent(self, tmp_path: Path) -> None:
        """A file without a soak section gets one at the end, the rest untouched."""
        markdown = tmp_path / "RESULTS.md"
        markdown.write_text("# Attimo benchmark results\n\n## short run — y\n\nshort body\n")
        report.write(soak_document("d")["figures"], report.SOAK, "python -m benchmarks --soak", tmp_path)
        text = markdown.read_text()
        assert text.startswith("# Attimo benchmark results\n\n## short run — y\n\nshort body\n\n## soak run")

    def test_short_run_keeps_the_soak_section(self, tmp_path: Path) -> None:
        """Rebuilt from the JSON when there is one; carried over from the old file when there is not."""
        results = tmp_path / "results"
        results.mkdir()
        (results / "soak-2026-01-01.json").write_bytes(orjson.dumps(soak_document("2026-01-01T00:00:00+00:00")))
        assert "## soak run — 2026-01-01" in report.render_all(results)
        (results / "soak-2026-01-01.json").unlink()
        markdown = tmp_path / "RESULTS.md"
        markdown.write_text("# Attimo benchmark results\n\n## soak run — kept\n\nsoak body\n")
        report.write(
            {"correctness": {"correct": True, "contacts": 1, "events": 1, "missing": 0, "wrong": 0}},
            "short",
            "python -m benchmarks --short",
            tmp_path,
        )
        text = markdown.read_text()
        assert "## short run" in text
        assert text.endswith("## soak run — kept\n\nsoak body\n")
