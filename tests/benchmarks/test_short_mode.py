"""The benchmark suite end to end, in its tiny mode: correct before any number, and written down.

Speed is not asserted (CI machines vary); what is asserted is that the run
checked every contact against what the generator sent, and that the JSON and
the Markdown report exist and agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.report import all_correct, judge, render
from benchmarks.shoppers import ShopperModel, Tally
from benchmarks.suite import TINY

REPO = Path(__file__).resolve().parents[2]


class TestShopperModel:
    """The load generator is seeded and shaped like a shop's traffic."""

    def test_same_seed_gives_the_same_events(self) -> None:
        """Two models with one seed produce identical sessions."""
        now = ShopperModel(1).base
        a = [s.browser + s.server for s in ShopperModel(3, now=now).sessions(50)]
        b = [s.browser + s.server for s in ShopperModel(3, now=now).sessions(50)]
        assert a == b

    def test_funnel_has_views_carts_orders_sign_ups_and_returning_visitors(self) -> None:
        """Every funnel step occurs, orders go server-side, some visitors come back."""
        names: set[str] = set()
        visits: dict[str, int] = {}
        for session in ShopperModel(7).sessions(2_000):
            visits[session.visitor.anonymous_id] = visits.get(session.visitor.anonymous_id, 0) + 1
            names |= {e.get("event", e["type"]) for e in session.browser}
            assert all(e["event"] in ("Order Completed", "Email Opened") for e in session.server)
        assert {
            "page",
            "identify",
            "Product Viewed",
            "Product Added",
            "Product Removed",
            "Checkout Started",
            "Signed Up",
        } <= names
        assert any(n > 1 for n in visits.values())

    def test_tally_folds_a_visitor_into_the_user_it_becomes(self) -> None:
        """Once an event carries both ids, the visitor's counts and the user's are one contact."""
        tally = Tally()
        tally.add({"type": "page", "anonymousId": "a"})
        tally.add(
            {
                "type": "track",
                "event": "Order Completed",
                "anonymousId": "a",
                "userId": "u",
                "properties": {"revenue": 10.005},
            }
        )
        tally.add({"type": "track", "event": "Email Opened", "userId": "u"})
        tally.add({"type": "page", "anonymousId": "b"})
        assert tally.counts == {"u": [3, 1, 0, 0, 1, 10.01], "b": [1, 1, 0, 0, 0, 0.0]}


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_tiny_mode_checks_correctness_and_writes_json_and_markdown(tmp_path: Path) -> None:
    """`python -m benchmarks --tiny` runs every phase (live state included), is correct, writes both reports.

    The same code as `--short` and `--full`, smaller (`benchmarks.suite.TINY`), so the suite stays CI-sized.
    """
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tiny", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = list((out / "results").glob("tiny-*.json"))
    assert len(results) == 1
    doc = json.loads(results[0].read_text())
    figures = doc["figures"]
    assert doc["correct"] is True and all_correct(figures)
    assert figures["correctness"]["missing"] == 0 and figures["correctness"]["wrong"] == 0
    assert figures["correctness"]["contacts"] > 1_000  # the latency and ingest phases' visitors
    assert all(r["check"]["correct"] for r in figures["scaling"])
    assert figures["baseline"]["check"]["correct"]
    assert {r["target_events_per_s"] for r in figures["latency"]} == set(TINY.latency_rates)
    assert figures["ingest"]["events_acked"] == figures["ingest"]["events_planned"]
    assert figures["decisions"]["requests"] > 0
    assert figures["memory"] and "error" not in figures["memory"][0]
    live = figures["livestate"]
    runs = [r for size in live["sizes"] for r in size["runs"]]
    assert [r["config"] for r in runs] == ["default", "everything_on"]
    assert all(r["check"]["correct"] and r["buyers_check"]["correct"] for r in runs)
    assert runs[1]["buyers_check"]["checked"] and runs[1]["recovery_store"]["latest_snapshot_bytes"] > 0
    assert runs[1]["redis"]["segment_members"]["buyers"] > 0
    latency = live["segment_latency"]
    assert latency["check"]["correct"] and latency["not_entered"] == 0 and latency["not_exited"] == 0
    assert "### Live state" in (out / "RESULTS.md").read_text()
    assert {t["key"] for t in doc["targets"]} == {t["key"] for t in judge(figures)}
    markdown = (out / "RESULTS.md").read_text()
    assert render(doc) in markdown
    assert "correct: true" in markdown
