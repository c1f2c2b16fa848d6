"""The live-state benchmark's parts that can be checked without running the stack."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from benchmarks import state_size
from benchmarks.livestate import expected_buyers
from benchmarks.livestate_config import BUYERS, PROBE_ENTRY, PROBE_EXIT, everything_on
from benchmarks.report import all_correct, render
from benchmarks.shoppers import Tally
from benchmarks.stack import Stack
from state.config import AbsenceRule, ActiveConfig, SegmentDef, default_stage_rules
from state.config_rules import config_problem
from state.segment_graph import walk


class TestEverythingOnConfig:
    """The configuration is what the issue asks for, and the admin API would accept it."""

    def test_it_would_be_accepted_by_the_admin_api(self) -> None:
        """No duplicate ids, known groups, no cycles: `config_problem` finds nothing."""
        assert config_problem(everything_on()) is None
        assert config_problem(everything_on(with_probes=True)) is None

    def test_every_live_feature_is_on(self) -> None:
        """~10 scoring rules with once and at_most, absence rules, decay, 3 tag rules, default stages."""
        config = everything_on()
        assert 8 <= len(config.scoring_rules) <= 12
        assert {"once", "at_most", "repeatable"} <= {r.mode for r in config.scoring_rules}
        assert 2 <= len(config.absence_rules) <= 4
        assert all(isinstance(r, AbsenceRule) for r in config.absence_rules)
        assert config.score_groups["default"].half_life_s == 30 * 86_400
        assert len(config.tag_rules) == 3
        assert config.stages == default_stage_rules()

    def test_segments_mix_every_kind_of_leaf(self) -> None:
        """About eight segments over windows, absence, cart, score, temperature, totals, tags, segments."""
        segments: list[SegmentDef] = everything_on().segments
        kinds = {type(node).__name__ for s in segments for node in walk(s.when)}
        assert 7 <= len(segments) <= 9
        assert {
            "WindowCount",
            "NoEventWithin",
            "Cart",
            "Score",
            "TemperatureIs",
            "Total",
            "HasTag",
            "InSegment",
        } <= kinds
        assert BUYERS in {s.id for s in segments}

    def test_probe_segments_only_in_the_latency_configuration(self) -> None:
        """The throughput runs do not carry the probe segments."""
        assert {PROBE_ENTRY, PROBE_EXIT}.isdisjoint(s.id for s in everything_on().segments)
        assert {PROBE_ENTRY, PROBE_EXIT} <= {s.id for s in everything_on(with_probes=True).segments}


def test_expected_buyers_follow_identity_merges() -> None:
    """A visitor who ordered and then signed up is a buyer under the user's id."""
    tally = Tally()
    tally.add({"type": "track", "event": "Order Completed", "anonymousId": "a", "properties": {"revenue": 5}})
    tally.add({"type": "identify", "anonymousId": "a", "userId": "u"})
    tally.add({"type": "page", "anonymousId": "b"})
    assert expected_buyers(tally) == {"u"}


def test_recovery_store_sums_the_latest_committed_snapshot_of_each_key(tmp_path: Path) -> None:
    """Older epochs and epochs after the commit are not counted; files are."""
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    with sqlite3.connect(recovery / "part-0.sqlite3") as db:
        db.execute("CREATE TABLE commits (part_index INTEGER PRIMARY KEY, commit_epoch INTEGER)")
        db.execute("CREATE TABLE snaps (step_id TEXT, state_key TEXT, snap_epoch INTEGER, ser_change BLOB)")
        db.execute("INSERT INTO commits VALUES (0, 2)")
        rows = [
            ("attimo.contacts", "0", 1, b"x" * 100),
            ("attimo.contacts", "0", 2, b"x" * 40),  # latest committed for key 0
            ("attimo.contacts", "0", 3, b"x" * 999),  # not committed yet
            ("attimo.contacts", "1", 1, b"x" * 10),  # untouched since epoch 1
            ("attimo.visitors", "0", 2, None),  # discarded key
        ]
        db.executemany("INSERT INTO snaps VALUES (?, ?, ?, ?)", rows)
    assert state_size.committed_epoch(recovery) == 2
    store = state_size.recovery_store(recovery, contacts=10)
    assert store["latest_snapshot_bytes"] == 50
    assert store["latest_snapshots"] == {"attimo.contacts": {"keys": 2, "bytes": 50}}
    assert store["latest_snapshot_bytes_per_contact"] == 5
    assert store["file_bytes"] > 0


def test_the_stack_runs_the_api_as_production_does(tmp_path: Path, monkeypatch: Any) -> None:
    """`python -m api.cli api`: the decisions fast path in front of FastAPI, as `attimo run` starts it."""
    spawned: list[list[str]] = []
    stack = Stack(tmp_path)
    monkeypatch.setattr(stack, "_spawn", lambda name, argv, env: spawned.append(argv))
    monkeypatch.setattr("benchmarks.stack._listens", lambda port: True)
    stack.start_api()
    assert spawned[0][1:] == ["-m", "api.cli", "api"]


def _run(config: str, correct: bool = True, stale: int = 0) -> dict[str, Any]:
    check = {"correct": correct, "contacts": 10, "events": 100, "missing": 0, "wrong": 0}
    buyers: dict[str, Any] = {"correct": True, "checked": config != "default", "stale_after_merge": stale,
                              "stale_examples": ["a-1"] if stale else []}
    return {
        "config": config,
        "events": 100,
        "contacts": 10,
        "events_per_s": 1000 if config == "default" else 700,
        "cpu_s_per_m_events": 20.0,
        "dataflow_rss_bytes_per_contact": 900,
        "check": check,
        "buyers_check": buyers,
        "redis": {"used_memory_bytes_per_contact": 1500, "memory_usage_per_contact": 1400,
                  "segment_members": {BUYERS: 3}},
        "recovery_store": {"latest_snapshot_bytes_per_contact": 800, "file_bytes_per_contact": 2000},
    }


def _figures(correct: bool = True, stale: int = 0) -> dict[str, Any]:
    latency = {
        "probes": 40, "probe_rate_per_s": 10.0, "background_events_per_s": 2000, "exit_window_s": 2.0,
        "entry_ms": {"p50": 4.0, "p95": 9.0, "p99": 11.0, "max": 12.0},
        "exit_lag_ms": {"p50": 2.0, "p95": 3.0, "p99": 4.0, "max": 5.0},
        "not_entered": 0, "not_exited": 0, "client_behind_schedule_max_ms": 0.0,
        "check": {"correct": True, "contacts": 900},
    }
    size = {"visitors": 10, "runs": [_run("default"), _run("everything_on", correct, stale)],
            "throughput_ratio": 0.7, "cpu_ratio": 1.4}
    config = ActiveConfig()
    return {"livestate": {"config": {"segments": [s.id for s in config.segments]}, "sizes": [size],
                          "segment_latency": latency}}


class TestReport:
    """The live-state section is written down, and a failed check makes the run incorrect."""

    def test_a_livestate_only_run_is_correct_when_every_check_passed(self) -> None:
        assert all_correct(_figures())
        assert not all_correct(_figures(correct=False))

    def test_the_section_shows_throughput_bytes_and_latency(self) -> None:
        doc = {"name": "short-livestate", "date": "2026-01-01T00:00:00+00:00", "command": "python -m benchmarks",
               "correct": True, "figures": _figures(stale=2), "targets": [],
               "machine": {"nproc": 2, "cpu": "x", "memory_gb": 1, "kernel": "k", "python": "3.11",
                           "redis": "7"}}
        text = render(doc)
        assert "### Live state: every feature on vs the default configuration" in text
        assert "| 10 | 100 | everything_on | 700 |" in text
        assert "**0.70×**" in text
        assert "| event in → membership visible | 4.00 / 9.00 / 11.00 / 12.00 | 0 |" in text
        assert "**Stale members**: 2" in text
