"""The dashboard-cost benchmark (event log and active set, on against off): its smallest run is correct."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.explorer import render_explorer

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.timeout(150)
def test_smallest_run_is_correct_and_writes_its_section(tmp_path: Path) -> None:
    """`python -m benchmarks.explorer --tiny`: off then on, every check passes, the JSON and the section agree."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.explorer", "--tiny", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=140, check=False)
    results = list((out / "results").glob("explorer-*.json"))
    assert len(results) == 1, proc.stderr[-3000:]
    doc = json.loads(results[0].read_text())
    figures = doc["figures"]
    assert [(r["event_log"], r["event_log_size"]) for r in figures["runs"]] == [("off", 0), ("on", 30)]
    off, on = (r["log"] for r in figures["runs"])
    assert off["recent_events_listed"] == 0 < on["recent_events_listed"]
    assert on["profile_bytes_mean"] > off["profile_bytes_mean"]
    assert figures["runs"][0]["active_contacts"] == 0 < figures["runs"][1]["active_contacts"] == figures["contacts"]
    assert all(r["check"]["correct"] for r in figures["runs"]), [r["check"] for r in figures["runs"]]
    assert doc["correct"] is True and report.all_correct(figures)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert render_explorer(doc) in (out / "RESULTS.md").read_text()
