"""One process's decisions reads: the script, and the products' documents it keeps for a moment.

Every answer needs the trending document and a few products' neighbour
documents (5–9 KB each with their cards): about 40 KB a page view, which
through a Lua script costs Redis ~2 µs a KB — more than the rest of the
request. They are shared by every visitor and rewritten at most every
`recs_refresh_s`, so a process keeps those it read for `hold_s` and tells
Redis so: a sorted set of its own (`keys.decisions_held(holder)`, member the
product id, score until when). The read script skips every document the set
says the process holds, so one round trip still answers, and moves only what
the process lacks. The set is updated by commands sent without waiting,
behind the read on the same connection, so the next read sees them.

A held document is kept decoded, cards included
(`state.recommendations.NeighbourView`, `TrendingView`): it is read by many
answers, and decoding it for each was most of an answer's CPU. When a hold
ends and Redis sends the same bytes again, the decoded document is kept.

A document can thus be up to `hold_s` older than Redis's (well inside the
5 s in which a new co-purchase must show). A document the script skipped
but the process no longer holds (dropped while the read was in flight)
is fetched with one more read; `refetches` counts them.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from typing import Final, cast

from redis.exceptions import NoScriptError

from api.decisions.read import HELD, SCRIPT, TRENDING, DecisionRead, Fetched, ScriptReply, parse_reply, script_args
from api.decisions.redis_wire import PipelinedRedis
from state import keys
from state.recommendations import NeighbourView, TrendingView, neighbour_view, trending_view

SCRIPT_SHA: Final = hashlib.sha1(SCRIPT.encode()).hexdigest()
# A held document stays usable this long past its time in Redis, so a read in flight when it
# expires still finds it; only a reply slower than this needs a refetch.
_GRACE_MS: Final = 5_000


def new_holder() -> str:
    """A name no other process uses for its held set."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DecisionReader:
    """Reads what decisions answers are composed from, one round trip each, on a pipelined connection."""

    def __init__(self, client: PipelinedRedis, hold_s: float = 1.0, max_held: int = 20_000,
                 holder: str | None = None) -> None:
        self.client = client
        self.hold_ms = int(hold_s * 1000)
        self.max_held = max_held
        self.held_key = keys.decisions_held(holder or new_holder()) if self.hold_ms > 0 else ""
        # product id ('' for trending) -> (document as `_held_form` keeps it, held until, ms)
        self._held: dict[str, tuple[Held, int]] = {}
        self._next_prune_ms = 0
        self.refetches = 0

    async def read(self, any_id: str, product: str | None = None) -> DecisionRead:
        """The contact's document and the products' documents its answer needs."""
        now = int(time.time() * 1000)
        reply = parse_reply(await self._run(script_args(any_id, product, self.held_key, now)))
        if not self.held_key:
            return DecisionRead(reply.doc, {p: v for p, v in zip(reply.products, reply.neighbours, strict=True)
                                            if isinstance(v, bytes)},
                                reply.trending if isinstance(reply.trending, bytes) else None)
        return await self._resolve(reply, now)

    async def _run(self, args: list[str]) -> list[object]:
        try:
            reply = await self.client.call("EVALSHA", SCRIPT_SHA, 0, *args)
        except NoScriptError:
            await self.client.call("SCRIPT", "LOAD", SCRIPT)
            reply = await self.client.call("EVALSHA", SCRIPT_SHA, 0, *args)
        return cast("list[object]", reply)

    async def _resolve(self, reply: ScriptReply, now: int) -> DecisionRead:
        members = [TRENDING, *reply.products]
        values: list[Fetched] = [reply.trending, *reply.neighbours]
        fresh: list[str] = []
        documents: dict[str, Held] = {}
        lost: list[str] = []
        held = self._held
        for member, value in zip(members, values, strict=True):
            if isinstance(value, int) and value == HELD:
                kept = held.get(member)
                if kept is None:
                    lost.append(member)
                else:
                    documents[member] = kept[0]
            else:
                # re-inserted last: the dict's order is the age order
                document = _held_form(member, value if isinstance(value, bytes) else None, held.pop(member, None))
                documents[member] = document
                held[member] = (document, now + self.hold_ms)
                fresh.append(member)
        if fresh:
            self._announce(fresh, now)
        if lost:
            documents.update(await self._refetch(lost))
        trending = documents.pop(TRENDING, None)
        return DecisionRead(reply.doc, {p: d for p, d in documents.items() if isinstance(d, bytes | NeighbourView)},
                            trending if isinstance(trending, bytes | TrendingView) else None)

    def _announce(self, members: list[str], now: int) -> None:
        """Tell Redis (without waiting) which documents this process now holds, and until when."""
        until = now + self.hold_ms
        args: list[str | int] = ["ZADD", self.held_key]
        for member in members:
            args += [until, member]
        send = self.client.send
        send(*args).add_done_callback(_ignore)
        if now >= self._next_prune_ms:
            self._prune(now)
            send("ZREMRANGEBYSCORE", self.held_key, "-inf", now).add_done_callback(_ignore)
            send("PEXPIRE", self.held_key, self.hold_ms + 60_000).add_done_callback(_ignore)
            self._next_prune_ms = now + max(self.hold_ms, 1000)

    def _prune(self, now: int) -> None:
        """Forget documents long expired, and the oldest ones past `max_held`."""
        expired = [m for m, (_, until) in self._held.items() if until + _GRACE_MS < now]
        for member in expired:
            del self._held[member]
        excess = len(self._held) - self.max_held
        if excess > 0:
            dropped = list(self._held)[:excess]
            for member in dropped:
                del self._held[member]
            # Redis must stop skipping them before the next read (sent ahead of it on the connection).
            self.client.send("ZREM", self.held_key, *dropped).add_done_callback(_ignore)

    async def _refetch(self, members: list[str]) -> dict[str, bytes | None]:
        self.refetches += 1
        names = [keys.trending() if m == TRENDING else keys.product_neighbours(m) for m in members]
        found = cast("list[bytes | None]", await self.client.call("MGET", *names))
        return dict(zip(members, found, strict=True))


Held = NeighbourView | TrendingView | bytes | None
"""A held document: decoded once (bytes only when it does not decode), None when absent."""


def _held_form(member: str, raw: bytes | None, previous: tuple[Held, int] | None) -> Held:
    """The document to hold for `member`: the one held before when Redis sent the same bytes again.

    A hold expiring makes Redis send the document again, most often
    unchanged; keeping the previous view keeps its decoded cards too.
    """
    if raw is None:
        return None
    if previous is not None:
        kept = previous[0]
        if isinstance(kept, NeighbourView | TrendingView):
            if kept.raw == raw:
                return kept
        elif kept == raw:
            return kept
    view = trending_view(raw) if member == TRENDING else neighbour_view(raw)
    return raw if view is None else view


def _ignore(future: object) -> None:
    """Retrieve a fire-and-forget command's outcome (a failure shows on the next awaited read)."""
    from asyncio import Future

    if isinstance(future, Future) and not future.cancelled():
        future.exception()
