"""Correctness before numbers: every contact's counters in Redis equal what was sent."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis

from benchmarks.shoppers import COUNTERS, Tally
from state import keys
from state.profile import decode_profile


@dataclass
class Check:
    """The outcome of comparing Redis with the generator's tally."""

    contacts: int = 0
    events: int = 0
    missing: int = 0
    wrong: int = 0
    examples: list[str] = field(default_factory=list)
    waited_s: float = 0.0

    @property
    def correct(self) -> bool:
        return self.contacts > 0 and self.missing == 0 and self.wrong == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "correct": self.correct,
            "contacts": self.contacts,
            "events": self.events,
            "missing": self.missing,
            "wrong": self.wrong,
            "examples": self.examples[:5],
            "waited_s": round(self.waited_s, 2),
        }


def _read(client: redis.Redis, ids: list[str]) -> list[list[float] | None]:
    out: list[list[float] | None] = []
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        raws: list[bytes | None] = client.mget([keys.contact_profile(c) for c in chunk])  # type: ignore[assignment]
        for raw in raws:
            if raw is None:
                out.append(None)
                continue
            c = decode_profile(raw).counters
            out.append([c.events, c.page_views, c.product_views, c.cart_adds, c.orders, c.revenue])
    return out


def compare(client: redis.Redis, tally: Tally) -> Check:
    """One pass over every contact the tally knows."""
    expected = tally.counts
    ids = list(expected)
    check = Check(contacts=len(ids), events=tally.events)
    for who, got in zip(ids, _read(client, ids), strict=True):
        want = expected[who]
        if got is None:
            check.missing += 1
            if len(check.examples) < 5:
                check.examples.append(f"{who}: no profile")
            continue
        revenue_ok = abs(got[5] - want[5]) <= 0.011 * max(1, want[4])
        if got[:5] != want[:5] or not revenue_ok:
            check.wrong += 1
            if len(check.examples) < 5:
                diff = {n: (g, w) for n, g, w in zip(COUNTERS, got, want, strict=True) if g != w}
                check.examples.append(f"{who}: got/want {diff}")
    return check


def wait_exact(client: redis.Redis, tally: Tally, timeout_s: float) -> Check:
    """Re-check until exact or `timeout_s` passes (the dataflow may still be draining)."""
    started = time.monotonic()
    while True:
        check = compare(client, tally)
        check.waited_s = time.monotonic() - started
        if check.correct or check.waited_s > timeout_s:
            return check
        time.sleep(0.5)
