"""The per-event cost of the erase tombstone check, measured in-process on the visitor stage.

`python -m benchmarks.tombstones [--events 20000] [--tombstones 10000] [--repeat 5]`

Erasing is rare work (once per request); the tombstone check is not: once a
shard holds tombstones, every event's ids (anonymous id, user id, an
identify's e-mail) are hashed and looked up before the event touches state
(`dataflows.shard.erase.blocked`). This runs the real visitor-stage logic
(`dataflows.shard.stages.visitor_logic`, no Bytewax, no Redis) over the same
batches of page views and identifies twice — on a shard with no tombstones
and on one holding `--tombstones` of them (none matching, the common case) —
alternating, and reports the best time per event of each and their
difference. It first checks that a tombstoned id is indeed dropped.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime

from dataflows.io.outputs import MetricAdd, ShardErase
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.erase import blocked, event_ids
from dataflows.shard.stages import ContactConfig, visitor_logic
from state.erasure import EraseControl, hashes_of
from state.events import Event, Identify, Page


def _events(count: int) -> list[Event]:
    at = datetime.now(UTC)
    out: list[Event] = []
    for n in range(count):
        device = f"device-{n % 500}"
        if n % 10 == 9:
            out.append(Identify(message_id=str(uuid.uuid4()), anonymous_id=device, user_id=f"user-{n % 500}",
                                traits={"email": f"shopper{n % 500}@example.com"}, timestamp=at, received_at=at))
        else:
            out.append(Page(message_id=str(uuid.uuid4()), anonymous_id=device, timestamp=at, received_at=at))
    return out


def _logic(tombstones: int):  # type: ignore[no-untyped-def]
    logic = visitor_logic(ContactConfig(contact_shards=1), ConfigLoader(None), time.time)(None)
    if tombstones:
        hashes = hashes_of(f"erased-{n}" for n in range(tombstones))
        logic.on_batch([ShardErase(EraseControl("bench", hashes, time.time()), "0")])
    return logic


def _run(tombstones: int, events: list[Event], batch: int = 1000) -> float:
    logic = _logic(tombstones)
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        logic.on_batch(list(events[start:start + batch]))
    return (time.perf_counter() - started) / len(events)


def main() -> None:
    """Measure and print µs per event with and without tombstones."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tombstones", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--tombstones", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    check = _logic(1)
    at = datetime.now(UTC)
    out, _ = check.on_batch([Page(message_id="m", anonymous_id="erased-0", timestamp=at, received_at=at)])
    assert MetricAdd("erased_events_dropped", 1) in list(out), "a tombstoned id was not dropped"
    assert check.s.book.get("erased-0") is None, "a tombstoned id made a visitor"
    events = _events(args.events)
    tombstones = dict.fromkeys(hashes_of(f"erased-{n}" for n in range(args.tombstones)), 0.0)
    started = time.perf_counter()
    for _ in range(args.repeat):
        for event in events:
            blocked(tombstones, event_ids(event))
    alone = (time.perf_counter() - started) / (args.repeat * len(events)) * 1e6
    without: list[float] = []
    with_: list[float] = []
    for _ in range(args.repeat):
        without.append(_run(0, events))
        with_.append(_run(args.tombstones, events))
    base, checked = min(without) * 1e6, min(with_) * 1e6
    print(f"visitor stage, {args.events} events (10 % identify with e-mail), best of {args.repeat}:")
    print(f"  no tombstones:              {base:6.2f} µs/event")
    print(f"  {args.tombstones} tombstones (no match): {checked:6.2f} µs/event")
    print(f"  difference:                 {checked - base:6.2f} µs/event (noisy on a shared machine)")
    print(f"  the check alone (event_ids + blocked, same events): {alone:.2f} µs/event")


if __name__ == "__main__":
    main()
