"""The popups benchmark: its configuration is valid, its backlog holds popup events, its smallest run is correct."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.popup_config import config, shop_campaigns
from benchmarks.popups import build_backlog, render_popups
from state.config_rules import config_problem

REPO = Path(__file__).resolve().parents[2]


def test_the_ten_campaigns_are_a_configuration_the_admin_api_accepts() -> None:
    campaigns = shop_campaigns()
    assert len(campaigns) == 10 and len({c.id for c in campaigns}) == 10
    assert config_problem(config(campaigns)) is None


def test_the_backlog_holds_popup_events_and_counts_them() -> None:
    backlog = build_backlog(seed=3, visitors=60)
    assert 0 < backlog.popup_events < backlog.work.events


@pytest.mark.e2e
@pytest.mark.timeout(150)
def test_smallest_run_is_correct_and_writes_its_section(tmp_path: Path) -> None:
    """`python -m benchmarks.popups --tiny`: every check passes, the JSON and the section agree."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.popups", "--tiny", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=140, check=False)
    results = list((out / "results").glob("popups-*.json"))
    assert len(results) == 1, proc.stderr[-3000:]
    doc = json.loads(results[0].read_text())
    figures = doc["figures"]
    assert [r["campaigns"] for r in figures["runs"]] == ["none", "ten"]
    for run in figures["runs"]:
        assert run["check"]["correct"], {k: run.get(k) for k in ("check", "popups")}
    popups = figures["runs"][1]["popups"]
    assert popups["counted"] + popups["refused"] == popups["popup_events"] > 0 and not popups["unreached"]
    assert doc["correct"] is True and report.all_correct(figures)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert render_popups(doc) in (out / "RESULTS.md").read_text()
