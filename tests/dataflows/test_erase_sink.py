"""The sink's scrub of an erased contact's stream entries, on a real Redis (`dataflows.io.erase_sink`)."""

from __future__ import annotations

import time
from typing import cast

import redis

from dataflows.io.erase_sink import scrub_traces
from state import keys
from state.streams import ENTRY_FIELD, decode_entry, encode_entry
from tests.factories import page

STREAM = keys.event_stream(0)


def _entries(client: redis.Redis) -> list[tuple[str, list[str | None]]]:
    found = cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(STREAM))
    return [(entry_id.decode(), [e.anonymous_id for e in decode_entry(fields[ENTRY_FIELD])])
            for entry_id, fields in found]


class TestStreamScrub:
    """Entries naming the contact go; other contacts' events come back only while the dataflow would drop them."""

    def test_a_recent_shared_entry_is_rewritten_an_old_one_dropped_and_others_untouched(
            self, redis_client: redis.Redis) -> None:
        day_ms = 86_400_000
        now_ms = int(time.time() * 1000)
        redis_client.xadd(STREAM, {ENTRY_FIELD: encode_entry([page("gone"), page("other-old")])},
                          id=f"{now_ms - 2 * day_ms}-0")  # older than half the 48 h dedup window
        redis_client.xadd(STREAM, {ENTRY_FIELD: encode_entry([page("gone")])}, id=f"{now_ms - 1000}-0")
        redis_client.xadd(STREAM, {ENTRY_FIELD: encode_entry([page("other"), page("gone")])}, id=f"{now_ms}-0")
        redis_client.xadd(STREAM, {ENTRY_FIELD: encode_entry([page("untouched")])}, id=f"{now_ms}-1")
        scrub_traces(redis_client, ["gone"], stream_shards=1, outbox_shards=1, dedup_window_s=48 * 3600.0)
        entries = _entries(redis_client)
        assert [ids for _, ids in entries] == [["untouched"], ["other"]]
        assert entries[0][0] == f"{now_ms}-1"  # kept in place
        raw = cast("list[tuple[bytes, dict[bytes, bytes]]]", redis_client.xrange(STREAM))
        assert not any(b"gone" in fields[ENTRY_FIELD] for _, fields in raw)
