"""Hold a replay to a rate: at most `rate` events a second, on average since the start.

A batch is sent only once the schedule has earned all of its events, so the
count sent never runs ahead of `rate × elapsed`. Batches are kept small
under a rate (about ten sends a second) so the flow is smooth rather than
a burst a second. After a long stall (the API pushing back) the schedule
keeps at most one second of credit, so the replay does not burst into an
API that has just recovered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

SENDS_PER_SECOND: Final = 10
MAX_CREDIT_S: Final = 1.0


class Pace:
    """Waits before each batch as long as `rate` requires (never, without a rate)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._start: float | None = None
        self._sent = 0

    def batch_size(self, wanted: int) -> int:
        """How many events a batch should hold: `wanted`, or fewer to send about ten times a second."""
        if self.rate is None:
            return wanted
        return max(1, min(wanted, int(self.rate / SENDS_PER_SECOND)))

    def wait_for(self, count: int) -> None:
        """Sleep until `count` more events may be sent."""
        if self.rate is None:
            return
        now = self._clock()
        if self._start is None:
            self._start = now
        due = self._start + (self._sent + count) / self.rate
        if now - due > MAX_CREDIT_S:
            self._start += now - due - MAX_CREDIT_S
        elif due > now:
            self._sleep(due - now)
        self._sent += count
