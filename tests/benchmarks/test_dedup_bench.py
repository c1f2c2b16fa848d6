"""The de-duplication benchmark's smallest run: resends over the other transport counted once, its section written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.dedup import render_dedup
from tests.helpers import REPO


@pytest.mark.e2e
@pytest.mark.timeout(150)
def test_smallest_run_drops_every_resend_and_writes_its_section(tmp_path: Path) -> None:
    """`python -m benchmarks.dedup --tiny`: every resend dropped, none counted twice, the JSON and the section agree."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.dedup", "--tiny", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=140, check=False)
    results = list((out / "results").glob("dedup-*.json"))
    assert len(results) == 1, proc.stderr[-3000:]
    doc = json.loads(results[0].read_text())
    figures = doc["figures"]
    assert figures["first_sends"]["websocket"] > 0 and figures["first_sends"]["http"] > 0
    assert figures["resends"]["other transport"] > 0
    assert figures["counted"] == figures["events"]
    assert figures["resends_dropped"] == figures["resent_total"] > 0
    assert figures["counted_twice"] == 0 and figures["missing"] == 0
    assert figures["cost"]["resends_recognised"] == figures["cost"]["resends_timed"]
    assert doc["correct"] is True and report.all_correct(figures)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert render_dedup(doc) in (out / "RESULTS.md").read_text()
