"""What `attimo demo` shows a person: a live status line while shoppers run, and a table when it ends.

Drawn by rich on stderr. On a terminal the line redraws in place, and the
demo's JSON log lines (which go to stderr too) are routed through rich so
they print above it instead of through it. When stderr is not a terminal
(a CI log, a pipe) rich draws nothing while the demo runs and prints the
final line once; the JSON logs are untouched. The closing table goes to
stdout.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import IO, Any, Final

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

REFRESH_S: Final = 0.5
_COUNTS: Final = (("events", "tracker events (websocket)"), ("server_events", "server events (HTTP)"),
                  ("server_errors", "server errors"), ("decisions", "decisions read"))


def _line(stats: Mapping[str, int]) -> str:
    return ", ".join(f"{stats.get(key, 0):,} {key.replace('_', ' ')}" for key, _ in _COUNTS)


class DemoStatus:
    """`with DemoStatus(stats, shoppers, seconds) as status: … status.refresh()` — the live line."""

    def __init__(self, stats: Mapping[str, int], shoppers: int, seconds: float | None) -> None:
        self.stats = stats
        self.seconds = seconds
        self.started = time.monotonic()
        columns: list[Any] = [SpinnerColumn(), TextColumn(f"[bold]{shoppers} shoppers")]
        if seconds:
            columns.append(BarColumn())
        columns += [TextColumn("{task.fields[counts]}", markup=False), TimeElapsedColumn()]
        self._progress = Progress(*columns, console=Console(stderr=True))
        self._task = self._progress.add_task("demo", total=seconds or None, counts="")
        self._rerouted: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []

    def refresh(self) -> None:
        """Show the counts as they are now."""
        self._progress.update(self._task, completed=time.monotonic() - self.started, counts=_line(self.stats))

    def __enter__(self) -> DemoStatus:
        real_stderr = sys.stderr
        self._progress.start()  # on a terminal this swaps sys.stderr for a proxy printing above the line
        if sys.stderr is not real_stderr:
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is real_stderr:
                    self._rerouted.append((handler, real_stderr))
                    handler.setStream(sys.stderr)
        self.refresh()
        return self

    def __exit__(self, *_: object) -> None:
        self.refresh()
        for handler, stream in self._rerouted:
            handler.setStream(stream)
        self._progress.stop()


def summary(stats: Mapping[str, int], shoppers: int, seconds: float) -> Table:
    """The closing table: what the shoppers sent and read, and how fast."""
    table = Table(title="attimo demo", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("shoppers", f"{shoppers:,}")
    table.add_row("seconds", f"{seconds:,.1f}")
    for key, what in _COUNTS:
        table.add_row(what, f"{stats.get(key, 0):,}")
    sent = stats.get("events", 0) + stats.get("server_events", 0)
    table.add_row("events/s", f"{sent / seconds:,.1f}" if seconds > 0 else "—")
    return table
