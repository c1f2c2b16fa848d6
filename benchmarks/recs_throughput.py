"""Dataflow throughput with recommendations on against off, on one pre-loaded backlog.

The backlog is the live-state benchmark's (`livestate.build_backlog`): a
week of shop traffic (product views, adds, orders among page views, sign-ups
and e-mail events), validated and encoded once as the gateway appends it;
each drain loads the same entries into a fresh Redis and times the real
dataflow process (1 worker, recovery on, default configuration) from its
first read to the last shard's sentinel (`backlog.timed_drain`). *On* is
the default (`ATTIMO_RECOMMENDATIONS=true`: the per-contact capability and
the products stage); *off* has neither. Drains alternate (off, on, on, off
…) so a drift in the machine's load touches both alike.

Correct, per drain: every contact's counters equal the generator's tally;
with recommendations, the products stage wrote neighbour documents and the
trending list, and quarantined nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.ab_drains import compared, drain_alternately
from benchmarks.backlog import timed_drain
from benchmarks.livestate import LiveBacklog, build_backlog, preload
from benchmarks.progress import note
from benchmarks.stack import Stack, wait_until
from state import keys

CONFIGS = ("off", "on")


@contextmanager
def recommendations(on: bool) -> Iterator[None]:
    """The stack's processes inherit this process's environment: set the switch there for one drain."""
    before = os.environ.get("ATTIMO_RECOMMENDATIONS")
    os.environ["ATTIMO_RECOMMENDATIONS"] = "true" if on else "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ATTIMO_RECOMMENDATIONS", None)
        else:
            os.environ["ATTIMO_RECOMMENDATIONS"] = before


def drain(directory: Path, work: LiveBacklog, which: str) -> dict[str, Any]:
    """One drain of the backlog with recommendations off or on, and its checks."""
    on = which == "on"
    with Stack(directory) as stack, recommendations(on):
        stack.start_redis()
        client = stack.client()
        preload(client, work)
        row = timed_drain(stack, client, f"recommendations {which}", work.events, work.sentinels, work.tally,
                          time_limit_s=max(90.0, work.events / 3_000))
        row["recommendations"] = which
        if on:  # the products stage writes on its own clock, a moment after the last event
            wait_until(lambda: client.exists(keys.trending()), 10, "the trending document")
        docs = sum(1 for _ in client.scan_iter(match=keys.product_neighbours("*"), count=1000))
        row["neighbour_documents"] = docs
        row["trending"] = client.exists(keys.trending()) == 1
        row["quarantined"] = int(client.zcard(keys.quarantine_index()))
        if on:
            row["check"]["correct"] = (row["check"]["correct"] and docs > 0 and row["trending"]
                                       and row["quarantined"] == 0)
        else:
            row["check"]["correct"] = row["check"]["correct"] and docs == 0
        stack.check_alive()
        return row


def measure(workdir: Path, visitors: int, repeats: int, seed: int) -> dict[str, Any]:
    """`repeats` drains of each configuration, alternating; the ratio of the median rates."""
    note(f"recommendations throughput: building the backlog of {visitors:,} visitors …")
    work = build_backlog(seed, visitors)

    def one(n: int, which: str) -> dict[str, Any]:
        note(f"recommendations throughput: drain {n + 1}/{2 * repeats}, {work.events:,} events, {which} …")
        return drain(workdir / f"throughput-{n}", work, which)

    runs = drain_alternately(CONFIGS, repeats, one)
    return {
        "visitors": visitors,
        "events": work.events,
        "contacts": len(work.tally.counts),
        "runs": runs,
        **compared(runs, "recommendations", CONFIGS),
        "check": {"correct": all(r["check"]["correct"] for r in runs)},
    }
