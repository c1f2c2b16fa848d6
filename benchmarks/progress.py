"""What the benchmarks show while they run: progress bars and status lines on stderr, tables on stdout.

Drawn by rich. On a terminal a bar redraws in place and status lines print
above it; when stderr is a CI log (not a terminal) rich draws nothing while
the bar runs and prints its final state once, so a log gets one line per
bar instead of thousands of carriage returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as _RichProgress
from rich.table import Table

REDRAW_S: Final = 0.1
_status = Console(stderr=True)
_tables = Console()


class Progress:
    """`with Progress("ingest", total) as bar: bar.advance(n)` — one bar with share, count, rate and time.

    `advance` only counts; the bar is told at most ten times a second, so a
    load generator calling it per frame spends next to nothing on it.
    """

    def __init__(self, label: str, total: int, width: int = 30) -> None:
        self.label = label
        self.total = max(1, total)
        self.done = 0
        self._bar = _RichProgress(
            TextColumn(f"{label:<22}"), BarColumn(bar_width=width), TaskProgressColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=_status,
        )
        self._task = self._bar.add_task(label, total=self.total, rate="")
        self._started = self._told = time.monotonic()

    def advance(self, n: int = 1) -> None:
        """`n` more units are done."""
        self.done += n
        now = time.monotonic()
        if now - self._told >= REDRAW_S:
            self._tell(now)

    def _tell(self, now: float) -> None:
        self._told = now
        elapsed = max(1e-9, now - self._started)
        self._bar.update(self._task, completed=self.done, rate=f"{self.done / elapsed:>10,.0f}/s")

    def __enter__(self) -> Progress:
        self._started = self._told = time.monotonic()
        self._bar.reset(self._task, total=self.total, rate="")  # the clock starts here, as the old bar's did
        self._bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._tell(time.monotonic())
        self._bar.stop()


def note(message: str) -> None:
    """A line of status on stderr (above a running bar, never through it)."""
    _status.print(message, markup=False, highlight=False, soft_wrap=True)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A table on stdout: the figures a run ends with."""
    shown = Table(title=title)
    for i, column in enumerate(columns):
        shown.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        shown.add_row(*("—" if value is None else str(value) for value in row))
    _tables.print(shown)
