"""Pushing a visitor's new decisions to its open pages, exactly as `GET /v1/decisions` would answer.

One pub/sub subscription per gateway process: the dataflow publishes a
`state.frames.DecisionPush` when a contact's `DecisionDoc` changes. If this
gateway holds a socket for any of the push's ids, it reads the contact's
answer with the decisions route's own read and composition
(`api.decisions.answer`: one Redis round trip for the document and the
products' lists) and sends `DecisionFrame(decision, id)` — the same
`PublicDecisions` the route would answer, so a page never sees two shapes.
Composing here rather than in the dataflow keeps the products' lists, which
the contact stage never holds, out of the dataflow, and costs nothing for
the many contacts with no open page.

A signed-in user's decisions go only to sockets that proved that user id at
the handshake (`uid` + `sig`), as the route asks for `sig`: a page that
merely claims a user id in its events learns nothing.

Pub/sub is fire-and-forget by design: a visitor who is not connected reads
the same decision from `GET /v1/decisions` when the page loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection, broadcast

from api.decisions.answer import DecisionService, public_decisions
from api.decisions.read import DocView
from api.gateway.connections import Connections
from api.gateway.metrics import DECISION_FRAMES
from api.logging import log
from state import keys
from state.frames import DecisionFrame, DecisionPush, decode_push, encode_reply

logger = logging.getLogger("attimo.gateway.push")

# Pushes being composed at once; past this a push waits for a slot (Redis answers in
# microseconds, so only a burst or a slow Redis reaches it).
MAX_IN_FLIGHT: Final = 256


class _ContactOnly(msgspec.Struct):
    contact_id: str | None = None


_contact_of: Final = msgspec.json.Decoder(_ContactOnly)


def push_target(push: DecisionPush) -> str:
    """The id to read the contact's decisions by: the contact id the push names, else its first id."""
    try:
        contact_id = _contact_of.decode(push.decision).contact_id
    except msgspec.DecodeError:
        contact_id = None
    return contact_id or push.ids[0]


def allowed_sockets(connections: Connections[ServerConnection], ids: list[str],
                    doc: DocView | None) -> set[ServerConnection]:
    """The sockets that may receive this contact's decisions: known by its ids, and verified for its user."""
    sockets = connections.sockets_for(ids)
    if doc is not None and doc.user_id is not None:
        sockets &= connections.verified_for(doc.user_id)
    return sockets


class DecisionPusher:
    """Composes and sends decision frames for published pushes (one per gateway)."""

    def __init__(self, connections: Connections[ServerConnection], service: DecisionService) -> None:
        self.connections = connections
        self.service = service
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._tasks: set[asyncio.Task[int]] = set()
        # Pushes whose read has not started yet, by contact: a newer push for the same contact
        # replaces the waiting one (the read takes the latest document anyway), so a busy gateway
        # composes once per contact however many changes queued up meanwhile.
        self._waiting: dict[str, DecisionPush] = {}
        self.sent = 0
        self.coalesced = 0

    def on_message(self, message: bytes) -> None:
        """Handle one published message: start composing it if one of its visitors is connected here."""
        try:
            push = decode_push(message)
        except msgspec.DecodeError:
            log(logger, logging.WARNING, "malformed decision message", size=len(message))
            return
        if not push.ids or not self.connections.sockets_for(push.ids):
            return
        target = push_target(push)
        if target in self._waiting:
            self._waiting[target] = push
            self.coalesced += 1
            return
        self._waiting[target] = push
        task = asyncio.create_task(self._push_latest(target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push_latest(self, target: str) -> int:
        async with self._slots:
            return await self.push(self._waiting.pop(target))

    async def push(self, push: DecisionPush) -> int:
        """Read, compose and send one push; returns how many sockets got it."""
        try:
            read = await self.service.read(push_target(push))
        except (RedisError, OSError) as exc:
            log(logger, logging.WARNING, "decision push dropped: read failed", error=str(exc))
            return 0
        # Known by the push's ids now (a socket may have closed meanwhile), and allowed to see them.
        sockets = allowed_sockets(self.connections, push.ids, read.doc)
        if not sockets:
            return 0
        decision = msgspec.Raw(public_decisions(read))
        # Each page is told the id it knows the contact by (the first of the push's ids it sent events for).
        by_id: dict[str, list[ServerConnection]] = {}
        for socket in sockets:
            known = self.connections.ids_of(socket)
            by_id.setdefault(next((i for i in push.ids if i in known), push.ids[0]), []).append(socket)
        for visitor_id, group in by_id.items():
            # broadcast() never waits on a slow socket: one stalled browser must
            # not delay every other visitor's decisions.
            broadcast(group, encode_reply(DecisionFrame(decision, visitor_id)))
        self.sent += len(sockets)
        DECISION_FRAMES.inc(len(sockets))
        return len(sockets)

    async def drain(self) -> None:
        """Wait for the pushes being composed (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def listen_for_decisions(
    client: aioredis.Redis,
    pusher: DecisionPusher,
    subscribed: asyncio.Event | None = None,
    retry_s: float = 1.0,
) -> None:
    """Subscribe to the push channel and push until cancelled; resubscribes after Redis errors."""
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
                    pusher.on_message(message["data"])
        except (RedisError, OSError) as exc:
            log(logger, logging.WARNING, "push subscription lost; retrying", error=str(exc))
            await asyncio.sleep(retry_s)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
