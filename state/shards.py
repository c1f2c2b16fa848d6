"""Stable hashing of routing ids to stream shards and contact shards.

Python's `hash()` is salted per process, so routing uses CRC32: the gateway,
the API and every dataflow process must agree on where a contact lives.
"""

from __future__ import annotations

from typing import Final
from zlib import crc32

CONTACT_STAGES: Final = ("visitors", "contacts")
"""The dataflow's two stages of contact shards: a control sent to every contact shard is answered by both."""


def stable_hash(routing_id: str) -> int:
    """A hash of `routing_id` that is the same in every process and run."""
    return crc32(routing_id.encode())


def shard_of(routing_id: str, shards: int) -> int:
    """The shard (0 … shards-1) that owns `routing_id`."""
    return stable_hash(routing_id) % shards


def shard_answer_field(stage: str, shard: str) -> str:
    """The hash field under which one contact shard of one stage answers a control (a preview, an erase)."""
    return f"{stage}:{shard}"
