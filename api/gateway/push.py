"""Forwarding decisions published by the dataflow to visitors' open sockets.

One pub/sub subscription per gateway process: the dataflow publishes a
`state.frames.DecisionPush` and every gateway forwards a `DecisionFrame`
to the sockets it holds for any of its ids. Pub/sub is
fire-and-forget by design: a visitor who is not connected reads the same
decision from `GET /v1/decisions` when the page loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection, broadcast

from api.gateway.connections import Connections
from api.logging import log
from state import keys
from state.frames import DecisionFrame, decode_push, encode_reply

logger = logging.getLogger("attimo.gateway.push")


def decision_frame(message: bytes) -> tuple[list[str], str] | None:
    """The target ids and the frame to send for one published message (None if malformed)."""
    try:
        push = decode_push(message)
    except msgspec.DecodeError:
        return None
    return push.ids, encode_reply(DecisionFrame(push.decision))


def forward(connections: Connections[ServerConnection], message: bytes) -> int:
    """Send one published decision to its visitors' sockets; returns how many got it."""
    parsed = decision_frame(message)
    if parsed is None:
        log(logger, logging.WARNING, "malformed decision message", size=len(message))
        return 0
    ids, frame = parsed
    sockets = connections.sockets_for(ids)
    if sockets:
        # broadcast() never waits on a slow socket: one stalled browser must
        # not delay every other visitor's decisions.
        broadcast(sockets, frame)
    return len(sockets)


async def listen_for_decisions(
    client: aioredis.Redis,
    connections: Connections[ServerConnection],
    subscribed: asyncio.Event | None = None,
    retry_s: float = 1.0,
) -> None:
    """Subscribe to the push channel and forward messages until cancelled; resubscribes after Redis errors."""
    channel = keys.decision_push_channel()
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            if subscribed is not None:
                subscribed.set()
            log(logger, logging.INFO, "subscribed", channel=channel)
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    forward(connections, message["data"])
        except (RedisError, OSError) as exc:
            log(logger, logging.WARNING, "push subscription lost; retrying", error=str(exc))
            await asyncio.sleep(retry_s)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
