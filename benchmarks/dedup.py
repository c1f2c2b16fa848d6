"""`python -m benchmarks.dedup [--short|--full]` — resent events are counted once, whatever transport resends them.

Clients resend: the tracker after a reconnect (now also over HTTP when the
websocket is blocked), Segment's libraries on retry. De-duplication by
`messageId` happens in the dataflow (`dataflows/shard/dedup.py`: each
contact remembers the ids it applied, 48 h / 2 000 ids), after both ingest
paths meet in the streams, so one mechanism covers the websocket and HTTP.

This measures it through the real stack (Redis, gateway, API, dataflow):

1. `events` events of `visitors` visitors are sent once, every other batch
   over the websocket (frames, acked) and the rest over HTTP `/v1/batch`;
2. a fraction (`resend`) of them, chosen at random, is sent again with the
   same `messageId`s over the *other* transport than the first time (and a
   further few over the same one);
3. once the dataflow has processed everything, every visitor's profile must
   count exactly its events: resends dropped = resends sent, counted twice
   = 0, missing = 0.

And what it costs: `first_time` (the dedup step run for every event) timed
in-process on a contact holding a full window of ids, for a new id and for a
resend, plus the bytes a full window adds to a contact's snapshot.

Results go to `benchmarks/results/dedup-<date>.json` and the `## dedup run`
section of `RESULTS.md` (the other sections stay).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import random
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec
import redis
import redis.asyncio as aioredis
from websockets.sync.client import connect

from benchmarks import report
from benchmarks.progress import note
from benchmarks.sized_run import run_sized
from benchmarks.stack import SHARDS, Stack
from dataflows.shard.dedup import DedupWindow, SeenIds, first_time
from state import keys
from state.profile import decode_profile
from state.streams import ingest_lag_seconds

NAME: Final = "dedup"
BATCH: Final = 20
SAME_TRANSPORT_SHARE: Final = 0.1  # of the resends, this share goes over the same transport again


@dataclass(frozen=True)
class Mode:
    """How big the measure is."""

    name: str
    visitors: int
    events: int
    resend: float
    timing_ids: int
    seed: int = 23


MODES: Final = {
    "tiny": Mode("tiny", 40, 600, 0.3, 20_000),  # a smoke run: checks, not figures
    "short": Mode("short", 500, 20_000, 0.3, 200_000),
    "full": Mode("full", 2_000, 100_000, 0.3, 1_000_000),
}


def make_events(mode: Mode, rng: random.Random) -> list[dict[str, Any]]:
    """Page views and product views of `mode.visitors` visitors, each with its own messageId."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    visitors = [f"dedup-{uuid.UUID(int=rng.getrandbits(128))}" for _ in range(mode.visitors)]
    out: list[dict[str, Any]] = []
    for n in range(mode.events):
        visitor = visitors[n % len(visitors)]
        at = (start + timedelta(milliseconds=n)).isoformat()
        if n % 3:
            out.append({"type": "page", "messageId": f"m-{n}", "anonymousId": visitor, "timestamp": at,
                        "properties": {"path": f"/p/{n % 50}"}})
        else:
            out.append({"type": "track", "event": "Product Viewed", "messageId": f"m-{n}", "anonymousId": visitor,
                        "timestamp": at, "properties": {"product_id": f"sku-{n % 97}", "price": 10}})
    return out


class Senders:
    """One websocket and one keep-alive HTTP connection to the stack."""

    def __init__(self, stack: Stack) -> None:
        self._open = ExitStack()
        self.ws = self._open.enter_context(connect(f"{stack.gateway_url}/v1/stream?key={stack.write_key}",
                                                   open_timeout=10, max_size=2**22))
        url = urlsplit(stack.api_url)
        self.http = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
        self.auth = "Basic " + base64.b64encode(f"{stack.write_key}:".encode()).decode()
        self.seq = 0

    def websocket(self, batch: list[dict[str, Any]]) -> None:
        self.seq += 1
        self.ws.send(json.dumps({"seq": self.seq, "batch": batch}))
        reply = json.loads(self.ws.recv(timeout=30))
        while "ack" not in reply:  # decision pushes for the visitors come on the same socket
            reply = json.loads(self.ws.recv(timeout=30))
        if reply.get("ack") != self.seq or reply.get("accepted") != len(batch):
            raise RuntimeError(f"websocket frame {self.seq} not acked whole: {reply}")

    def post(self, batch: list[dict[str, Any]]) -> None:
        self.http.request("POST", "/v1/batch", json.dumps({"batch": batch}),
                          {"Authorization": self.auth, "Content-Type": "application/json"})
        answer = self.http.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"/v1/batch answered {answer.status}: {body[:200]!r}")

    def send(self, transport: str, batch: list[dict[str, Any]]) -> None:
        (self.websocket if transport == "websocket" else self.post)(batch)

    def close(self) -> None:
        self._open.close()
        self.http.close()


def _batches(items: list[Any]) -> list[list[Any]]:
    return [items[i:i + BATCH] for i in range(0, len(items), BATCH)]


def send_all(stack: Stack, mode: Mode, events: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """The first sends, then the resends; how many of each went over which transport."""
    senders = Senders(stack)
    first: dict[str, str] = {}
    sent = {"websocket": 0, "http": 0}
    started = time.monotonic()
    try:
        for n, batch in enumerate(_batches(events)):
            transport = "websocket" if n % 2 == 0 else "http"
            senders.send(transport, batch)
            sent[transport] += len(batch)
            first |= {event["messageId"]: transport for event in batch}
        chosen = rng.sample(events, round(len(events) * mode.resend))
        resent = {"other transport": 0, "same transport": 0}
        by_transport: dict[str, list[dict[str, Any]]] = {"websocket": [], "http": []}
        for event in chosen:
            again = rng.random() < SAME_TRANSPORT_SHARE
            before = first[event["messageId"]]
            by_transport[before if again else ("http" if before == "websocket" else "websocket")].append(event)
            resent["same transport" if again else "other transport"] += 1
        for transport, items in by_transport.items():
            for batch in _batches(items):
                senders.send(transport, batch)
    finally:
        senders.close()
    return {"first_sends": sent, "resends": resent, "resent_total": len(chosen),
            "send_seconds": round(time.monotonic() - started, 2)}


def _lag(url: str) -> float:
    async def read() -> float:
        client = aioredis.from_url(url)
        try:
            return await ingest_lag_seconds(client, SHARDS)
        finally:
            await client.aclose()
    return asyncio.run(read())


def counted(client: redis.Redis, expected: dict[str, int]) -> dict[str, int]:
    """Each visitor's event count in its profile (0 when it has none yet)."""
    visitors = sorted(expected)
    raws = client.mget([keys.contact_profile(v) for v in visitors])
    return {v: decode_profile(raw).counters.events if isinstance(raw, bytes) else 0
            for v, raw in zip(visitors, raws, strict=True)}


def settle(stack: Stack, client: redis.Redis, expected: dict[str, int], timeout_s: float) -> dict[str, int]:
    """Wait until the dataflow has processed every entry and the counts stopped moving; the counts."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, int] = {}
    while time.monotonic() < deadline:
        if _lag(stack.redis_url) == 0:
            now = counted(client, expected)
            if now == last and all(now[v] >= expected[v] for v in expected):
                return now
            last = now
        time.sleep(0.5)
    return counted(client, expected)


def timing(mode: Mode) -> dict[str, Any]:
    """ns per `first_time` call on a contact with a full window: a new id, a resend; a full window's bytes."""
    window = DedupWindow()
    seen = SeenIds()
    received = time.time()
    for n in range(window.max_ids):
        first_time(seen, f"warm-{n}", received, window)
    ids = [str(uuid.uuid4()) for _ in range(mode.timing_ids)]
    started = time.perf_counter_ns()
    for message_id in ids:
        first_time(seen, message_id, received, window)
    new_ns = (time.perf_counter_ns() - started) / len(ids)
    recent = ids[-window.max_ids:]
    repeats = (recent * (mode.timing_ids // len(recent) + 1))[:mode.timing_ids]
    started = time.perf_counter_ns()
    dropped = sum(not first_time(seen, message_id, received, window) for message_id in repeats)
    resend_ns = (time.perf_counter_ns() - started) / len(repeats)
    # A typical contact holds a few ids: its window never fills, so nothing is ever pruned.
    started = time.perf_counter_ns()
    for start in range(0, len(ids), 20):
        small = SeenIds()
        for message_id in ids[start:start + 20]:
            first_time(small, message_id, received, window)
    small_ns = (time.perf_counter_ns() - started) / len(ids)
    return {"new_id_ns": round(new_ns), "new_id_small_contact_ns": round(small_ns), "resend_ns": round(resend_ns),
            "resends_recognised": dropped,
            "resends_timed": len(repeats), "ids_held": len(seen),
            "window_snapshot_bytes": len(msgspec.msgpack.encode(seen)), "window": {
                "seconds": window.window_s, "ids": window.max_ids}}


def measure(mode: Mode, workdir: Path) -> dict[str, Any]:
    """Send, resend over the other transport, check every count; time the dedup step."""
    started = time.monotonic()
    loadavg_at_start = [round(v, 2) for v in os.getloadavg()]
    rng = random.Random(mode.seed)
    events = make_events(mode, rng)
    expected: dict[str, int] = {}
    for event in events:
        expected[event["anonymousId"]] = expected.get(event["anonymousId"], 0) + 1
    with Stack(workdir / "stack") as stack:
        stack.start_all()
        client = stack.client()
        note(f"dedup: sending {len(events):,} events, then resending {mode.resend:.0%} of them …")
        sends = send_all(stack, mode, events, rng)
        got = settle(stack, client, expected, timeout_s=max(60.0, len(events) / 200))
        quarantined = int(client.zcard(keys.quarantine_index()))
        stack.check_alive()
    twice = sum(max(0, got[v] - expected[v]) for v in expected)
    missing = sum(max(0, expected[v] - got[v]) for v in expected)
    received = len(events) + sends["resent_total"]
    cost = timing(mode)
    correct = (twice == 0 and missing == 0 and not quarantined
               and cost["resends_recognised"] == cost["resends_timed"])
    return {
        "loadavg_at_start": loadavg_at_start,
        "mode": mode.name,
        "visitors": mode.visitors,
        "events": len(events),
        **sends,
        "received": received,
        "counted": sum(got.values()),
        "resends_dropped": received - sum(got.values()) - missing,
        "counted_twice": twice,
        "missing": missing,
        "quarantined": quarantined,
        "cost": cost,
        "correctness": {"correct": correct},
        "duration_s": round(time.monotonic() - started, 1),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }


fmt = report._fmt


def render_dedup(doc: dict[str, Any]) -> str:
    """The `## dedup run` section of RESULTS.md."""
    f, m = doc["figures"], doc["machine"]
    cost = f["cost"]
    load = " / ".join(fmt(v) for v in f.get("loadavg_at_start", [])) or "—"
    return "\n".join([
        f"## {NAME} run — {doc['date']}\n",
        f"- machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB, Python {m['python']}, "
        f"Redis {m['redis']}; load average {load} at the start",
        f"- command: `{doc['command']}`; duration {fmt(f['duration_s'])} s",
        f"- sent once: {fmt(f['events'])} events of {fmt(f['visitors'])} visitors, "
        f"{fmt(f['first_sends']['websocket'])} over the websocket and {fmt(f['first_sends']['http'])} over "
        f"HTTP `/v1/batch`; resent with the same `messageId`s: {fmt(f['resent_total'])} "
        f"({fmt(f['resends']['other transport'])} over the other transport, "
        f"{fmt(f['resends']['same transport'])} over the same one)",
        f"- **correct: {str(doc['correct']).lower()}** — counted {fmt(f['counted'])} of {fmt(f['received'])} "
        f"received: resends dropped **{fmt(f['resends_dropped'])}**, counted twice **{fmt(f['counted_twice'])}**, "
        f"missing {fmt(f['missing'])}, quarantined {fmt(f['quarantined'])}",
        f"- cost of the dedup step per event (`first_time`, in-process): a contact with a few ids "
        f"**{fmt(cost['new_id_small_contact_ns'])} ns** per new id; a contact holding a full window of "
        f"{fmt(cost['window']['ids'])} ids **{fmt(cost['new_id_ns'])} ns** per new id (forgetting the oldest "
        f"included), {fmt(cost['resend_ns'])} ns per resend; a full window adds "
        f"{fmt(cost['window_snapshot_bytes'])} B to the contact's snapshot\n",
    ])


def main(argv: list[str] | None = None) -> int:
    return run_sized(NAME, __doc__, MODES, ("20 000 events of 500 visitors", "100 000 events of 2 000 visitors"),
                     measure, lambda f: (f"resends dropped {f['resends_dropped']}, counted twice {f['counted_twice']}; "
                                         f"dedup {f['cost']['new_id_ns']} ns per new id"), argv)


if __name__ == "__main__":
    sys.exit(main())
