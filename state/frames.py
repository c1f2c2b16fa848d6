"""What travels on the tracker websocket, and the decision pushes behind it.

Every client frame gets exactly one reply. An ack is sent only after the
accepted events are durably appended, and lists the rejected ones by index
with their reason; a frame that could not be used at all gets an error
reply naming its `seq` when it could be read. Encoded by msgspec from these
Structs, so the reply is valid JSON whatever an error message quotes.
"""

from __future__ import annotations

from typing import Final

import msgspec


class RejectedEvent(msgspec.Struct, frozen=True):
    """One event of a frame that was not stored: its index in the batch and why."""

    index: int
    error: str


class Ack(msgspec.Struct, frozen=True):
    """Frame `ack` was handled: `accepted` events are stored, `rejected` are not (and never will be)."""

    ack: int
    accepted: int
    rejected: list[RejectedEvent] = msgspec.field(default_factory=list)


class FrameError(msgspec.Struct, frozen=True):
    """Frame `ack` (None when its seq could not be read) was not used at all; nothing of it is stored."""

    ack: int | None
    error: str


class RateLimited(msgspec.Struct, frozen=True, rename="camel"):
    """Frame `limited` was over a rate limit and NOT stored, nor acked: resend it after `retry_after` seconds.

    Deliberately not an ack (no `ack` key): a client that does not know this
    reply keeps the frame unacked and resends it after its next reconnect.
    `limit` names the limit (`write key`, `client IP`); `error` says it in words.
    """

    limited: int
    limit: str
    error: str
    retry_after: int


class DecisionFrame(msgspec.Struct, frozen=True):
    """Pushed to a visitor's open page when its decisions change.

    `decision` is a `state.decisions.PublicDecisions` in JSON, exactly what
    `GET /v1/decisions/{id}` answers (composed by the gateway from the
    contact's `DecisionDoc`); `id` names the contact the page addressed it
    by, so a page that has since changed identity can ignore a late push.
    """

    decision: msgspec.Raw
    id: str | None = None


class DecisionPush(msgspec.Struct, frozen=True):
    """Published by the dataflow on `keys.decision_push_channel()` for every gateway.

    Each gateway holding a socket for any of `ids` (the contact's anonymous
    ids and user id) reads the contact's decisions and sends them as a
    `DecisionFrame`. `decision` is the contact's `DecisionDoc` (or any JSON
    object with its `contact_id`): it names the contact to read, and is not
    forwarded as is, so nothing internal in it reaches a page.
    """

    ids: list[str]
    decision: msgspec.Raw


_encoder: Final = msgspec.json.Encoder()
_push_decoder: Final = msgspec.json.Decoder(DecisionPush)


def encode_reply(reply: Ack | FrameError | RateLimited | DecisionFrame) -> str:
    """The text frame to send."""
    return _encoder.encode(reply).decode()


def encode_push(push: DecisionPush) -> bytes:
    """A decision push as published."""
    return _encoder.encode(push)


def decode_push(message: bytes) -> DecisionPush:
    """A published decision push (raises msgspec.DecodeError when malformed)."""
    return _push_decoder.decode(message)
