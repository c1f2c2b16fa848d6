"""Helpers for tests that drive the real dataflow with live (wall-clock) time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import redis

from benchmarks.livestate_config import publish as publish_sync
from state import keys
from state.config import ActiveConfig
from state.events import Event, Identify, Page, Track
from state.profile import Profile, decode_profile
from state.segment_changes import SegmentChange, decode_change
from state.streams import append_events_sync

SHARDS = 2


def now() -> datetime:
    return datetime.now(UTC)


def ago(seconds: float) -> datetime:
    return now() - timedelta(seconds=seconds)


def live_track(who: str, name: str, at: datetime | None = None, user_id: str | None = None,
               **props: object) -> Track:
    at = at or now()
    # Received when it happened: history as it was ingested live, not a late arrival.
    return Track(message_id=str(uuid.uuid4()), anonymous_id=who, user_id=user_id, event=name,
                 timestamp=at, received_at=at, properties=dict(props))


def live_page(who: str, at: datetime | None = None) -> Page:
    at = at or now()
    return Page(message_id=str(uuid.uuid4()), anonymous_id=who, timestamp=at, received_at=at)


def live_identify(who: str, user_id: str, **traits: object) -> Identify:
    at = now()
    return Identify(message_id=str(uuid.uuid4()), anonymous_id=who, user_id=user_id, timestamp=at,
                    received_at=at, traits=dict(traits))


def send(client: redis.Redis, events: list[Event]) -> None:
    """Append as the gateway does, 20 events per frame."""
    for start in range(0, len(events), 20):
        append_events_sync(client, events[start:start + 20], SHARDS)


def publish(url: str, config: ActiveConfig) -> int:
    """Publish a configuration version as the admin API does; returns its number."""
    return publish_sync(url, config, SHARDS)


def profile(client: redis.Redis, contact_id: str) -> Profile | None:
    raw = client.get(keys.contact_profile(contact_id))
    return decode_profile(raw) if raw else None


def members(client: redis.Redis, segment_id: str) -> set[str]:
    return {m.decode() for m in client.zrange(keys.segment_members(segment_id), 0, -1)}


def segment_events(client: redis.Redis) -> list[SegmentChange]:
    return [decode_change(fields) for _, fields in client.xrange(keys.segment_changes())]


def comparable(p: Profile) -> dict[str, object]:
    """The parts of a profile that must not depend on when or how often it was written."""
    data = msgspec.to_builtins(p)
    for volatile in ("updated_at", "score_history", "sessions"):
        data.pop(volatile, None)
    return data
