"""The tracker's websocket frame format, as the load generators speak it.

Frames are `{"seq": n, "sentAt": iso, "batch": [...]}`; each is acked with
`{"ack": n, "accepted": k, "rejected": [...]}` once durably appended, and
the gateway pushes `{"decision": {...}}` frames. `sentAt` is stamped at send
time; the batch is encoded beforehand.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def frame_bytes(seq: int, batch: bytes) -> bytes:
    return b'{"seq":%d,"sentAt":"%s","batch":%s}' % (seq, iso_now().encode(), batch)
