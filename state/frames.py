"""The gateway's replies on the tracker websocket: acks and frame errors.

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


_encoder: Final = msgspec.json.Encoder()


def encode_reply(reply: Ack | FrameError) -> str:
    """The text frame to send."""
    return _encoder.encode(reply).decode()
