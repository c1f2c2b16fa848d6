"""The live page's feed: the dashboard snapshot as server-sent events, once a second.

SSE rather than a websocket: the feed flows one way, the browser reconnects
by itself (`EventSource`), and the session cookie rides along like on any
request. Each message is the JSON of `api.dashboard.snapshot.DashboardSnapshot`;
a snapshot that cannot be read (Redis away) is sent as `event: error` so
the page says so, and the stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Final

import msgspec
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from api.dashboard.snapshot import live_snapshot
from api.deps import AdminDep, RedisDep, SettingsDep

router = APIRouter(prefix="/dashboard", include_in_schema=False)
log = logging.getLogger(__name__)

INTERVAL_S: Final = 1.0
RETRY_MS: Final = 2000
"""How long a browser waits before reconnecting a dropped feed."""
_encoder: Final = msgspec.json.Encoder()


@router.get("/stream")
async def stream(request: Request, _admin: AdminDep, settings: SettingsDep, client: RedisDep) -> Response:
    """`data: <snapshot JSON>` every second until the browser goes away."""

    async def messages() -> AsyncIterator[bytes]:
        yield f"retry: {RETRY_MS}\n\n".encode()
        while not await request.is_disconnected():
            started = time.monotonic()
            try:
                yield b"data: " + _encoder.encode(await live_snapshot(client, settings)) + b"\n\n"
            except (RedisError, OSError) as exc:
                log.warning("dashboard snapshot failed", extra={"fields": {"error": str(exc)}})
                yield b"event: error\ndata: " + _encoder.encode({"error": str(exc)}) + b"\n\n"
            await asyncio.sleep(max(0.0, INTERVAL_S - (time.monotonic() - started)))

    return StreamingResponse(messages(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
