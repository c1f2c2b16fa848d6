"""Progress bars and tables of `attimo bench` / `attimo demo` stay sane in a CI log (stderr not a terminal)."""

from __future__ import annotations

import pytest
from rich.console import Console

from api.demo.status import DemoStatus, summary
from benchmarks.progress import Progress, note, table


class TestBenchmarkProgressInALog:
    """Under pytest stderr is captured, as in CI: no redraws, one final line per bar."""

    def test_one_final_line_with_count_and_no_carriage_returns(self, capsys: pytest.CaptureFixture[str]) -> None:
        """1,000 advances give one line saying 1000/1000 and 100%, a note printed before it."""
        with Progress("ingest", 1_000) as bar:
            for _ in range(1_000):
                bar.advance()
            note("halfway [not markup]")
        err = capsys.readouterr().err
        assert "\r" not in err and "\x1b" not in err
        lines = err.splitlines()
        assert lines[0] == "halfway [not markup]"
        assert len(lines) == 2 and "1000/1000" in lines[1] and "100%" in lines[1]

    def test_table_on_stdout(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A target table shows every row, a missing value as a dash."""
        table("targets", ["target", "measured"], [("ingest", "12,000 events/s"), ("p99", None)])
        out = capsys.readouterr().out
        assert "12,000 events/s" in out and "—" in out and "\x1b" not in out


class TestDemoStatusInALog:
    """The demo's live line prints once at the end in a log; its table counts what was sent."""

    def test_final_line_and_summary(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The counts as they were at the end, on one line; the table's events/s from both paths."""
        stats = {"events": 0, "server_events": 0, "server_errors": 0, "decisions": 0}
        with DemoStatus(stats, 3, None) as status:
            stats["events"], stats["server_events"] = 40, 10
            status.refresh()
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "\x1b" not in err
        assert "3 shoppers" in err and "40 events, 10 server events" in err
        console = Console(width=60)
        with console.capture() as shown:
            console.print(summary(stats, 3, 10.0))
        assert "events/s" in shown.get() and "5.0" in shown.get()
