"""Erasing a contact (GDPR art. 17): the control message, hashed ids, tombstones and the erase record.

Why through the dataflow: the contact's state lives in the dataflow's
contact shards (and so in its Bytewax recovery snapshots); anything written
around it would come back at the next profile write or the replay after a
crash. So the admin API appends one `EraseControl` to an ingest stream
(under `ERASE_FIELD`, beside events `e`, configuration controls `c` and
previews `p`); the dataflow hands a copy to every contact shard of both
stages, in stream order with the events around it. Each shard

* installs the control's hashes as *tombstones* (kept in its snapshot):
  later events carrying one of those ids are dropped before they touch any
  state, unless the site lifts the tombstone (`lift=True`, the admin's
  re-consent call);
* forgets every contact and visitor → user link whose id hashes to one of
  them, and tells the sink, which deletes what Redis holds about them;
* answers into `keys.erasure(id)` under `<stage>:<shard>`.

Nothing here carries a raw id: the control, the tombstones and the erase
record hold SHA-256 hashes of the ids only, so none of them is a trace of
the person. (An unkeyed hash of an e-mail can be confirmed by someone who
already knows the e-mail; it cannot be read back.) The dispatcher checks
`keys.tombstone(hash)` before each delivery, so an action already in the
outbox is never sent once the erase is requested.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from typing import Final, Literal, cast

import msgspec
import redis
import redis.asyncio as aioredis

from state import keys
from state.shards import CONTACT_STAGES

ERASE_FIELD: Final = b"x"
"""Stream entry field of an erase control (events use `e`, configuration controls `c`, previews `p`)."""
_HASH_DOMAIN: Final = b"attimo-id:"


def id_hash(any_id: str) -> str:
    """The hash an id is erased and tombstoned under (SHA-256, domain-separated, first 128 bits in hex)."""
    return hashlib.sha256(_HASH_DOMAIN + any_id.encode()).hexdigest()[:32]


def hashes_of(ids: Iterable[str]) -> list[str]:
    """The hashes of a contact's ids; an e-mail (an id with `@`) also in lower case, as its alias is stored."""
    found: dict[str, None] = {}
    for any_id in ids:
        found[id_hash(any_id)] = None
        if "@" in any_id:
            found[id_hash(any_id.lower())] = None
    return list(found)


class EraseControl(msgspec.Struct, frozen=True, tag="erase", tag_field="control"):
    """Forget every contact and link with one of `hashes`, and tombstone them (or, `lift`, lift the tombstones)."""

    id: str
    hashes: list[str]
    requested_at: float
    lift: bool = False


class EraseAnswer(msgspec.Struct, frozen=True):
    """One contact shard's part of an erase: contacts and visitor → user links it forgot."""

    contacts: int
    links: int


EraseState = Literal["pending", "erased", "scrubbed"]


class EraseStatus(msgspec.Struct, frozen=True):
    """Where an erase stands.

    `pending`: not every contact shard has applied it yet. `erased`: every
    shard forgot the contact and Redis holds no trace of it. `scrubbed`: in
    addition the dataflow's recovery store no longer holds it (only with
    recovery on: a snapshot after the erase was committed, older ones
    deleted and the store vacuumed).
    """

    id: str
    state: EraseState
    requested_at: float
    shards_answered: int
    shards_expected: int
    contacts_erased: int
    links_erased: int
    erased_at: float | None = None
    recovery_scrubbed_at: float | None = None


_encoder: Final = msgspec.json.Encoder()
_control_decoder: Final = msgspec.json.Decoder(EraseControl)
_answer_decoder: Final = msgspec.json.Decoder(EraseAnswer)


def encode_control(control: EraseControl) -> bytes:
    """The stream payload of an erase control."""
    return _encoder.encode(control)


def decode_control(payload: bytes) -> EraseControl:
    """An erase entry's payload → EraseControl (raises msgspec.DecodeError)."""
    return _control_decoder.decode(payload)



def queue_answer(pipe: redis.client.Pipeline, erase_id: str, field: str, answer: EraseAnswer, now: float) -> None:
    """Queue a shard's answer on the sink's pipeline (an overwrite: a replay writes the same)."""
    key = keys.erasure(erase_id)
    pipe.hset(key, field, _encoder.encode(answer))
    pipe.zadd(keys.erasures_to_scrub(), {erase_id: now})  # the last shard's answer counts


async def send_erase(client: aioredis.Redis, control: EraseControl, stream_shard: int) -> None:
    """Record the request and its tombstones, then append the control to one ingest stream.

    Tombstones are set first, so the dispatcher skips the contact's actions
    from this moment, before the dataflow has even read the control.
    """
    async with client.pipeline(transaction=True) as pipe:
        if control.lift:
            for digest in control.hashes:
                pipe.delete(keys.tombstone(digest))
        else:
            pipe.hset(keys.erasure(control.id), mapping={
                "requested_at": repr(control.requested_at), "hashes": json.dumps(control.hashes)})
            for digest in control.hashes:
                pipe.set(keys.tombstone(digest), control.id)
        pipe.xadd(keys.event_stream(stream_shard), {ERASE_FIELD: encode_control(control)})
        await pipe.execute()


def is_erased_sync(client: redis.Redis, any_id: str) -> bool:
    """Whether `any_id` is tombstoned now (blocking client)."""
    return bool(client.exists(keys.tombstone(id_hash(any_id))))


async def is_erased(client: aioredis.Redis, any_id: str) -> bool:
    """Whether `any_id` is tombstoned now."""
    return bool(await client.exists(keys.tombstone(id_hash(any_id))))


def mark_scrubbed(client: redis.Redis, erase_id: str, at: float) -> None:
    """The recovery store was vacuumed after this erase's snapshot: record it, stop tracking it."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(keys.erasure(erase_id), "recovery_scrubbed_at", repr(at))
        pipe.zrem(keys.erasures_to_scrub(), erase_id)
        pipe.execute()


async def read_status(client: aioredis.Redis, erase_id: str, contact_shards: int,
                      recovery: bool) -> EraseStatus | None:
    """The erase's status, or None for an unknown id."""
    raw = cast("dict[bytes, bytes]", await client.hgetall(keys.erasure(erase_id)))
    if b"requested_at" not in raw:
        return None
    answers: list[EraseAnswer] = []
    for field, value in raw.items():
        if b":" in field:
            try:
                answers.append(_answer_decoder.decode(value))
            except msgspec.DecodeError:
                continue
    expected = len(CONTACT_STAGES) * contact_shards
    scrubbed = raw.get(b"recovery_scrubbed_at")
    erased_at = raw.get(b"erased_at")
    state: EraseState = "pending"
    if len(answers) >= expected:
        state = "scrubbed" if scrubbed is not None or not recovery else "erased"
        if erased_at is None:
            erased_at = repr(time.time()).encode()
            await client.hsetnx(keys.erasure(erase_id), "erased_at", erased_at)
    return EraseStatus(
        id=erase_id, state=state, requested_at=float(raw[b"requested_at"]), shards_answered=len(answers),
        shards_expected=expected, contacts_erased=sum(a.contacts for a in answers),
        links_erased=sum(a.links for a in answers),
        erased_at=float(erased_at) if erased_at is not None else None,
        recovery_scrubbed_at=float(scrubbed) if scrubbed is not None else None)


def status_json(status: EraseStatus) -> bytes:
    """The status as the API answers it."""
    return _encoder.encode(status)
