"""The recommendations benchmark: its scoring and checks are right, and its smallest run is correct and reported.

Speed and quality are not asserted here (the machine is shared, the tiny
shop is small); correctness is: the run fails unless every strip is
well-formed, every probe became visible and every drain's counters are exact.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from benchmarks.recs_quality import Baselines, Score, _check
from benchmarks.recs_world import Session, WorldSize, build_world

REPO = Path(__file__).resolve().parents[2]


class TestScoring:
    """HR@10 and MRR@10 as defined; the baselines never offer what the session already holds."""

    def test_hits_and_reciprocal_ranks(self) -> None:
        score = Score()
        score.add(["a", "b", "c"], "b", is_new=False)  # rank 2
        score.add(["a", "b", "c"], "z", is_new=True)   # miss
        figures = score.figures()
        assert figures["hr_at_10"] == 0.5 and figures["mrr_at_10"] == 0.25
        assert figures["hr_at_10_new_products"] == 0.0

    def test_item_knn_ranks_by_cosine_and_fills_with_popularity(self) -> None:
        sessions = [Session("s1", 0, ["a", "b"]), Session("s2", 0, ["a", "b"]), Session("s3", 0, ["a", "c"]),
                    Session("s4", 0, ["d"]), Session("s5", 0, ["d"]), Session("s6", 0, ["d"]), Session("s7", 0, ["d"])]
        baselines = Baselines.train(sessions)
        assert baselines.item_knn(["a"])[:2] == ["b", "c"]
        assert "a" not in baselines.item_knn(["a"]) and baselines.popularity(["a"])[0] == "d"

    def test_a_malformed_strip_is_reported(self) -> None:
        problems: list[str] = []
        _check("attimo", ["x"] * 10, ["a"], {"x"}, problems)
        _check("attimo", [f"p{i}" for i in range(9)] + ["a"], ["a"], {f"p{i}" for i in range(9)} | {"a"}, problems)
        assert len(problems) == 2


class TestWorld:
    """The synthetic shop is seeded and holds its promises."""

    def test_same_seed_same_world_and_new_products_only_in_the_test_period(self) -> None:
        size = WorldSize(products=60, categories=4, sessions=400)
        one, two = build_world(size, 3), build_world(size, 3)
        assert [s.views for s in one.sessions] == [s.views for s in two.sessions]
        assert not any(set(s.views) & one.new_products for s in one.train)
        assert all(len(set(s.views)) == len(s.views) for s in one.sessions)


class TestTinyRun:
    """`--tiny` runs every measure end to end, checks it, and writes its RESULTS.md section."""

    def test_tiny_run_is_correct_and_reported(self, tmp_path: Path) -> None:
        done = subprocess.run([sys.executable, "-m", "benchmarks.recommendations", "--tiny", "--out", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        [result] = list((tmp_path / "results").glob("recommendations-*.json"))
        doc = orjson.loads(result.read_bytes())
        assert doc["correct"] is True
        figures = doc["figures"]
        assert figures["quality"]["check"]["correct"] and figures["freshness"]["not_visible"] == 0
        assert {r["recommendations"] for r in figures["throughput"]["runs"]} == {"on", "off"}
        section = (tmp_path / "RESULTS.md").read_text()
        assert "## recommendations run" in section and "HR@10, Attimo / popularity" in section
