"""Poison in the stream, through the real dataflow: it is quarantined and nothing stops.

The entries here are written as an older version of the gateway wrote them
before the edge refused such events: an identify with an integer beyond 64
bits (which made every snapshot fail, forever) and an element that does not
decode as an event at all, each between good events of the same entry.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import redis

from state import keys
from state.profile import decode_profile
from state.quarantine import decode_record
from state.shards import shard_of
from state.streams import ENTRY_FIELD
from tests.helpers import RedisServer, running_dataflow, wait_for

SHARDS = 2
VISITOR = "anon-poisoned"


def page(n: int) -> dict[str, object]:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + "Z"
    return {"type": "page", "messageId": f"page-{n}", "anonymousId": VISITOR, "timestamp": stamp,
            "receivedAt": stamp}


def append_raw(client: redis.Redis, elements: list[bytes]) -> None:
    """One stream entry holding these JSON elements, on the visitor's shard."""
    client.xadd(keys.event_stream(shard_of(VISITOR, SHARDS)), {ENTRY_FIELD: b"[" + b",".join(elements) + b"]"})


def page_views(client: redis.Redis) -> int:
    raw = client.get(keys.contact_profile(VISITOR))
    return decode_profile(raw).counters.page_views if raw else 0


def records(client: redis.Redis) -> dict[str, str]:
    ids = [i.decode() for i in client.zrange(keys.quarantine_index(), 0, -1)]
    raws = client.mget([keys.quarantine_record(i) for i in ids]) if ids else []
    return {i: decode_record(raw).stage for i, raw in zip(ids, raws, strict=True) if raw}


class TestPoisonInTheStream:
    """Quarantined with its error; the good events of the same entry count; snapshots and trimming go on."""

    def test_poison_is_quarantined_and_the_dataflow_keeps_snapshotting(self, redis_server: RedisServer,
                                                                       tmp_path: Path) -> None:
        client = redis_server.client()
        encode = msgspec.json.encode
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        big = encode({"type": "identify", "messageId": "poison", "anonymousId": VISITOR, "timestamp": now,
                      "receivedAt": now, "traits": {"loyalty_points": 2**70}})
        append_raw(client, [encode(page(1)), big, b'{"type": "not-an-event"}', encode(page(2))])
        stream = keys.event_stream(shard_of(VISITOR, SHARDS))
        poison_entry = client.xrange(stream)[0][0]
        data = tmp_path / "df"
        with running_dataflow(redis_server.url, data, stream_shards=str(SHARDS)) as dataflow:
            wait_for(lambda: page_views(client) == 2, 20, "the good events of the poisoned entry")
            wait_for(lambda: len(records(client)) == 2, 10, "both poisons to be quarantined")
            assert sorted(records(client).values()) == ["source", "visitors"]
            # Snapshots keep committing: the poisoned entry is trimmed once later snapshots pass it.
            deadline = time.monotonic() + 20
            n = 3
            while client.xrange(stream, count=1)[0][0] == poison_entry:
                assert time.monotonic() < deadline, "the stream was never trimmed past the poison"
                append_raw(client, [encode(page(n))])
                n += 1
                time.sleep(0.5)
            wait_for(lambda: page_views(client) == n - 1, 10, "every later page")
            dataflow.kill_hard()
            assert "Traceback" not in dataflow.log() and "panicked" not in dataflow.log()
        with running_dataflow(redis_server.url, data, stream_shards=str(SHARDS)) as resumed:
            append_raw(client, [encode(page(n))])
            wait_for(lambda: page_views(client) == n, 20, "the resumed dataflow to count on, exactly")
            assert "Traceback" not in resumed.log() and "panicked" not in resumed.log()
