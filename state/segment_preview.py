"""Segment count preview: how many contacts a condition tree matches now, asked of the dataflow.

Why the dataflow: only the contact shards hold every contact's live state
(windows, score, cart, stored segment memberships) and the code that
evaluates saved segments. So the admin API validates the tree exactly as a
segment PUT would, appends one `PreviewControl` to every ingest stream (under
`PREVIEW_FIELD`, beside events and configuration controls), and waits.

Each contact shard of both stages (anonymous visitors and known contacts)
acts on the first copy it meets: it evaluates the tree over every contact it
holds, changing nothing, and writes a `PreviewAnswer` into the hash
`keys.segment_preview(id)` under the field `<stage>:<shard>` (`visitors:7`,
`contacts:7`), which expires after `ANSWER_TTL_S`. The API sums the answers
once every field is there (`expected_fields`), or reports the missing ones.

A preview is no event: it is counted by no rate, changes no contact, and a
copy met after `expires_at` (a replay after a crash) is ignored.
"""

from __future__ import annotations

from typing import Final, cast

import msgspec
import redis
import redis.asyncio as aioredis

from state import keys
from state.config import Condition
from state.shards import CONTACT_STAGES, shard_answer_field

PREVIEW_FIELD: Final = b"p"
"""Stream entry field of a preview control (events use `e`, configuration controls `c`)."""
ANSWER_TTL_S: Final = 60
"""How long the shards' answers stay in Redis: long enough for the API to read them, no longer."""


class PreviewControl(msgspec.Struct, frozen=True, tag="preview", tag_field="control"):
    """Count the contacts matching `when`; answer into `keys.segment_preview(id)` before `expires_at`."""

    id: str
    when: Condition
    # Epoch seconds; a shard meeting the control later (a replay) ignores it.
    expires_at: float


class PreviewAnswer(msgspec.Struct, frozen=True):
    """One contact shard's answer: contacts matching, contacts evaluated, evaluations that failed."""

    matching: int
    evaluated: int
    # Contacts whose evaluation raised (counted as evaluated, not as matching); normally 0.
    failed: int = 0


_control_encoder: Final = msgspec.json.Encoder()
_control_decoder: Final = msgspec.json.Decoder(PreviewControl)
_answer_decoder: Final = msgspec.json.Decoder(PreviewAnswer)


def encode_control(control: PreviewControl) -> bytes:
    """The stream payload of a preview control."""
    return _control_encoder.encode(control)


def decode_control(payload: bytes) -> PreviewControl:
    """A preview entry's payload → PreviewControl (raises msgspec.DecodeError)."""
    return _control_decoder.decode(payload)



def expected_fields(contact_shards: int) -> list[str]:
    """Every field that must be present before the preview is complete (both stages, every shard)."""
    return [shard_answer_field(stage, str(shard)) for stage in CONTACT_STAGES for shard in range(contact_shards)]


def queue_answer(pipe: redis.client.Pipeline, preview_id: str, field: str, answer: PreviewAnswer) -> None:
    """Queue a shard's answer on the dataflow sink's pipeline (an overwrite: replays are harmless)."""
    key = keys.segment_preview(preview_id)
    pipe.hset(key, field, _control_encoder.encode(answer))
    pipe.expire(key, ANSWER_TTL_S)


async def send_preview(client: aioredis.Redis, control: PreviewControl, stream_shards: int) -> None:
    """Append the control to every ingest stream (the first copy a shard meets is the one it answers)."""
    async with client.pipeline(transaction=False) as pipe:
        for shard in range(stream_shards):
            pipe.xadd(keys.event_stream(shard), {PREVIEW_FIELD: encode_control(control)})
        await pipe.execute()


async def read_answers(client: aioredis.Redis, preview_id: str) -> dict[str, PreviewAnswer]:
    """The answers written so far, by field; an answer that does not decode is left out."""
    raw = cast("dict[bytes, bytes]", await client.hgetall(keys.segment_preview(preview_id)))
    answers: dict[str, PreviewAnswer] = {}
    for field, value in raw.items():
        try:
            answers[field.decode()] = _answer_decoder.decode(value)
        except msgspec.DecodeError:
            continue
    return answers
