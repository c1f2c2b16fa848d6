"""A small text progress bar on stderr (no dependency; quiet when stderr is not a terminal)."""

from __future__ import annotations

import sys
import time


class Progress:
    """`with Progress("ingest", total) as bar: bar.advance(n)` — redraws at most 5× a second."""

    def __init__(self, label: str, total: int, width: int = 30) -> None:
        self.label = label
        self.total = max(1, total)
        self.width = width
        self.done = 0
        self._started = time.monotonic()
        self._drawn = 0.0
        self._tty = sys.stderr.isatty()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._drawn >= 0.2:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float, end: str = "") -> None:
        if not self._tty and not end:
            return
        share = min(1.0, self.done / self.total)
        filled = int(share * self.width)
        elapsed = max(1e-9, now - self._started)
        bar = "#" * filled + "-" * (self.width - filled)
        sys.stderr.write(
            f"\r{self.label:<22} [{bar}] {share:6.1%} {self.done:>10,} "
            f"{self.done / elapsed:>10,.0f}/s {elapsed:6.1f}s{end}"
        )
        sys.stderr.flush()

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        self._draw(time.monotonic(), end="\n")


def note(message: str) -> None:
    """A line of status on stderr."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
