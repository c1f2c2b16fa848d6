"""When a failed delivery is tried again: the retry schedule, its jitter, and `Retry-After`.

The schedule is a setting (`ATTIMO_WEBHOOK_RETRY_SCHEDULE`), a list of
delays between attempts: the first attempt goes at once, the k-th retry
`delays[k-1]` after the k-th failure, and after the last delay's attempt the
action is dead-lettered. The default (`5s,5m,30m,2h,5h,10h,14h,20h,24h,24h`)
spans about 4 days, over the Standard Webhooks example (75.5 h) and
Stripe's 3 days. Each delay is stretched or shrunk at random by up to the
jitter fraction, so receivers that failed together are not retried together.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

from api.dispatcher.errors import InvalidScheduleError

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_STEP: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_delays(text: str) -> tuple[float, ...]:
    """`"5s,5m,2h"` as seconds; InvalidScheduleError naming the step that is not `<number><unit>`."""
    delays = []
    for step in text.split(","):
        found = _STEP.match(step)
        if found is None:
            raise InvalidScheduleError(f"retry schedule step {step.strip()!r} is not a number with a unit "
                                       f"({', '.join(_UNITS)})")
        delays.append(float(found[1]) * _UNITS[found[2]])
    return tuple(delays)


@dataclass(frozen=True)
class RetrySchedule:
    """Delays between attempts, and how much each may vary."""

    delays: tuple[float, ...]
    jitter: float = 0.1

    @classmethod
    def parse(cls, text: str, jitter: float) -> RetrySchedule:
        """The schedule a setting describes."""
        if not 0 <= jitter < 1:
            raise InvalidScheduleError(f"retry jitter {jitter} must be at least 0 and below 1")
        return cls(parse_delays(text), jitter)

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the first, and one after each delay."""
        return len(self.delays) + 1

    @property
    def longest(self) -> float:
        """The longest delay (a `Retry-After` is never followed further than this)."""
        return max(self.delays, default=0.0)

    @property
    def span(self) -> float:
        """From the first attempt to the last, without jitter."""
        return sum(self.delays)

    def delay_after(self, attempts: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
        """How long to wait after the `attempts`-th attempt failed (attempts ≥ 1 and < max_attempts)."""
        base = self.delays[min(attempts, len(self.delays)) - 1]
        return base * uniform(1 - self.jitter, 1 + self.jitter)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delay-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, when.timestamp() - now)
