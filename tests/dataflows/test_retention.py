"""Retention through the real dataflow process: raw events trimmed by age, visitor → user links purged.

`ATTIMO_EVENT_RETENTION_S` keeps processed events in the ingest streams
until they are that old (never trimming ahead of the snapshot rule), then
drops them exactly. A visitor → user link unused for the anonymous TTL goes
with its alias key, so the links no longer grow forever.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import redis
import redis.asyncio as aioredis

from state import keys
from state.config import ActiveConfig, IdentitySettings
from state.config_store import publish_config
from state.events import Identify, Page
from state.streams import append_events_sync, entry_millis
from tests.helpers import RedisServer, running_dataflow, wait_for


def _page(anonymous_id: str) -> Page:
    at = datetime.now(UTC)
    return Page(message_id=str(uuid.uuid4()), anonymous_id=anonymous_id, timestamp=at, received_at=at)


async def _publish_ttl(url: str, ttl: float) -> None:
    """Publish a configuration whose anonymous TTL (hence a link's) is `ttl` seconds."""
    client = aioredis.Redis.from_url(url)
    try:
        await publish_config(client, ActiveConfig(identity=IdentitySettings(anonymous_ttl_s=ttl)), 1)
    finally:
        await client.aclose()


def _processed(client: redis.Redis, contact_id: str) -> bool:
    return bool(client.exists(keys.contact_profile(contact_id)))


class TestRetention:
    """Old raw events leave the streams; links of silent devices are purged."""

    def test_events_stay_until_the_retention_and_are_then_trimmed(self, redis_server: RedisServer,
                                                                    redis_client: redis.Redis,
                                                                    tmp_path: Path) -> None:
        retention = 5.0
        with running_dataflow(redis_server.url, tmp_path, stream_shards="1", contact_shards="4",
                              event_retention_s=str(retention)):
            append_events_sync(redis_client, [_page("visitor-old")], 1)
            wait_for(lambda: _processed(redis_client, "visitor-old"), 30, "the first visitor processed")
            entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", redis_client.xrange(keys.event_stream(0)))
            appended = entry_millis(entries[0][0]) / 1000
            # Well past the snapshot rule's 3 s (2 snapshot intervals + 1 s): still kept for the retention.
            time.sleep(max(0.0, appended + 4.0 - time.time()))
            append_events_sync(redis_client, [_page("visitor-new")], 1)
            assert redis_client.xlen(keys.event_stream(0)) == 2
            wait_for(lambda: redis_client.xlen(keys.event_stream(0)) == 1, 15, "the old entry trimmed")
            gone = time.time()
            assert gone - appended >= retention
            left = cast("list[tuple[bytes, dict[bytes, bytes]]]", redis_client.xrange(keys.event_stream(0)))
            assert b"visitor-new" in left[0][1][b"e"]

    def test_a_link_unused_for_the_anonymous_ttl_is_purged_with_its_alias(self, redis_server: RedisServer,
                                                                          redis_client: redis.Redis,
                                                                          tmp_path: Path) -> None:
        with running_dataflow(redis_server.url, tmp_path, stream_shards="1", contact_shards="4"):
            asyncio.run(_publish_ttl(redis_server.url, 3.0))
            at = datetime.now(UTC)
            append_events_sync(redis_client, [_page("device-1"), Identify(
                message_id=str(uuid.uuid4()), anonymous_id="device-1", user_id="user-1", timestamp=at,
                received_at=at)], 1)
            wait_for(lambda: redis_client.get(keys.contact_alias("device-1")) == b"user-1", 30, "the link")
            wait_for(lambda: redis_client.get(keys.contact_alias("device-1")) is None, 30, "the link purged")
            assert int(redis_client.hget(keys.metrics(), "links_purged") or 0) >= 1
            assert _processed(redis_client, "user-1")  # the contact itself stays
