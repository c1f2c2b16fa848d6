"""Delivering one outbox shard: each contact's actions in order, different contacts at once.

The shard's stream is read through the consumer group `dispatchers`,
always under the consumer name `owner` (the lease makes one dispatcher the
reader): a new owner first reads what its predecessor read but never acked
— in stream order, with each action's persisted delivery state — and then
new entries. Each contact has a queue; only its head is ever attempted, so a
later action of a contact waits while an earlier one is retrying. Heads
wait in a heap by their next attempt time; an attempt needs a slot of the
process-wide gate (`dispatcher_concurrency`) and a lease good for longer
than the attempt can take. At most `readahead` actions are held; reading
pauses while that many wait. An entry is acked only when its action is
delivered or dead-lettered. Acked entries are trimmed from the stream
behind the oldest one still pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from api.dispatcher import metrics
from api.dispatcher.errors import LeaseLostError
from api.dispatcher.leases import Lease
from api.dispatcher.ledger import CONSUMER, GROUP, Ledger
from api.dispatcher.records import DeadLetter, DeliveryState, decode_state, target_of
from api.dispatcher.schedule import RetrySchedule
from api.dispatcher.senders import AttemptResult, Senders
from api.logging import log
from state import keys
from state.actions import OUTBOX_FIELD, Action, decode_action
from state.erasure import is_erased

logger = logging.getLogger("attimo.dispatcher")

READ_BATCH: Final = 256
BLOCK_MS: Final = 500
TRIM_EVERY_S: Final = 5.0
# An attempt begins only while the lease is good for its timeout and this much more.
LEASE_MARGIN_S: Final = 0.5


@dataclass
class _Item:
    """One action waiting in its contact's queue."""

    entry_id: bytes
    action: Action
    target: str
    state: DeliveryState


@dataclass(frozen=True)
class ShardOptions:
    """How a shard is delivered (from the settings)."""

    timeout_s: float
    readahead: int
    state_ttl_s: float


class ShardWorker:
    """Delivers the actions of one outbox shard while its lease is held."""

    def __init__(self, client: aioredis.Redis, lease: Lease, ledger: Ledger, senders: Senders,
                 schedule: RetrySchedule, gate: asyncio.Semaphore, options: ShardOptions, *,
                 clock: Callable[[], float] = time.time,
                 uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.shard = lease.shard
        self.lease = lease
        self._client = client
        self._stream = keys.outbox(lease.shard)
        self._ledger = ledger
        self._senders = senders
        self._schedule = schedule
        self._gate = gate
        self._options = options
        self._clock = clock
        self._uniform = uniform
        self._queues: dict[str, deque[_Item]] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._held = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._stopping = asyncio.Event()
        self._error: BaseException | None = None

    # ---- life ----------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until `stop()` or a failure (lease lost, Redis gone), then let attempts in flight end."""
        await self._ensure_group()
        loops = [asyncio.create_task(self._read()), asyncio.create_task(self._dispatch()),
                 asyncio.create_task(self._trim_loop())]
        stopped = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait([*loops, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task in loops and task.exception() is not None:
                    raise cast("BaseException", task.exception())
        finally:
            self._stop_now()
            stopped.cancel()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Take no new attempt; `run` returns once those in flight have ended."""
        self._stop_now()

    def _stop_now(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._room.set()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._stop_now()

    @property
    def held(self) -> int:
        """Actions held in memory (due, waiting behind a retry, or in flight)."""
        return self._held

    async def _ensure_group(self) -> None:
        try:
            await self._client.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # ---- reading -------------------------------------------------------------

    async def _read(self) -> None:
        cursor: bytes | None = b"0"  # first the entries a previous owner read and never acked
        while not self._stopping.is_set():
            if self._held >= self._options.readahead:
                self._room.clear()
                await self._room.wait()
                continue
            count = min(READ_BATCH, self._options.readahead - self._held)
            reply: Any
            if cursor is not None:
                reply = await self._client.xreadgroup(GROUP, CONSUMER, {self._stream: cursor}, count=count)
            else:
                reply = await self._client.xreadgroup(GROUP, CONSUMER, {self._stream: ">"}, count=count,
                                                      block=BLOCK_MS)
            entries = cast("list[tuple[bytes, dict[bytes, bytes] | None]]", reply[0][1] if reply else [])
            recovered = cursor is not None
            if recovered:
                if not entries:
                    cursor = None
                    continue
                cursor = entries[-1][0]
            await self._take(entries, recovered)

    async def _take(self, entries: list[tuple[bytes, dict[bytes, bytes] | None]], recovered: bool) -> None:
        items: list[tuple[bytes, Action]] = []
        for entry_id, fields in entries:
            raw = (fields or {}).get(OUTBOX_FIELD)
            try:
                items.append((entry_id, decode_action(raw or b"")))
            except msgspec.DecodeError as exc:
                log(logger, logging.ERROR, "outbox entry holds no action; acked and counted",
                    shard=self.shard, entry=entry_id.decode(), error=str(exc), payload=(raw or b"")[:500].decode(
                        errors="replace"))
                await self._ledger.discard(entry_id)
        states: list[bytes | None] = [None] * len(items)
        if recovered and items:
            states = cast("list[bytes | None]",
                          await self._client.mget([keys.delivery_state(a.id) for _, a in items]))
        for (entry_id, action), raw_state in zip(items, states, strict=True):
            state = decode_state(raw_state) if raw_state is not None else DeliveryState()
            self._enqueue(_Item(entry_id, action, target_of(action), state))

    def _enqueue(self, item: _Item) -> None:
        self._held += 1
        contact = item.action.contact.contact_id
        queue = self._queues.get(contact)
        if queue is None:
            self._queues[contact] = deque([item])
            self._push(contact, item.state.next_at)
        else:
            queue.append(item)

    def _push(self, contact: str, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._order), contact))
        self._wake.set()

    # ---- attempting ----------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            wait = self._heap[0][0] - self._clock() if self._heap else None
            if wait is not None and wait <= 0:
                await self._gate.acquire()
                if self._stopping.is_set():
                    self._gate.release()
                    return
                _, _, contact = heapq.heappop(self._heap)
                task = asyncio.create_task(self._deliver(contact))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _deliver(self, contact: str) -> None:
        queue = self._queues[contact]
        item = queue[0]
        try:
            finished = await self._attempt(item)
        except (LeaseLostError, RedisError, OSError) as exc:
            self._fail(exc)
            return
        except Exception as exc:  # a bug must not leave the contact stuck silently
            log(logger, logging.ERROR, "delivery step failed", exc_info=True, shard=self.shard,
                action=item.action.id, error=repr(exc))
            self._fail(exc)
            return
        finally:
            self._gate.release()
        if finished:
            queue.popleft()
            self._held -= 1
            self._room.set()
            if queue:
                self._push(contact, queue[0].state.next_at)
            else:
                del self._queues[contact]
        else:
            self._push(contact, item.state.next_at)

    async def _attempt(self, item: _Item) -> bool:
        """One attempt at the head of a contact's queue; True once the action is delivered or dead."""
        state, action = item.state, item.action
        if await is_erased(self._client, action.contact.contact_id):  # erased since it was decided: never sent
            await self._ledger.erased(item.entry_id, action.id, item.target)
            log(logger, logging.INFO, "action of an erased contact dropped unsent", shard=self.shard,
                action=action.id, target=item.target)
            return True
        limit = self._schedule.max_attempts
        if state.attempts >= limit:  # the last attempt was cut short (the dispatcher died during it)
            await self._dead(item, f"gave up after {state.attempts} attempts; the last one was interrupted",
                             failed_now=False, status=state.last_status)
            return True
        timeout = self._options.timeout_s
        if not await self.lease.good_for(timeout + LEASE_MARGIN_S):
            raise LeaseLostError(f"lease on outbox shard {self.shard} ran out")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        now = self._clock()
        attempts = state.attempts + 1
        fallback = now + timeout + (self._delay(attempts) if attempts < limit else 0.0)
        begun = msgspec.structs.replace(state, attempts=attempts, next_at=fallback, last_attempt_at=now,
                                        first_attempt_at=state.first_attempt_at or now)
        await self._ledger.begin(action.id, item.target, begun)
        item.state = begun
        result = await self._send(action, deadline)
        metrics.ATTEMPT_SECONDS.observe(loop.time() - (deadline - timeout))
        was_failing = begun.failures > 0
        if result.outcome == "delivered":
            await self._ledger.delivered(item.entry_id, action.id, item.target, was_failing)
            metrics.DELIVERED.inc()
            metrics.DELIVERY_LATENCY_SECONDS.observe(max(0.0, time.time() - action.created_at))
            return True
        if result.outcome == "permanent":
            await self._dead(item, result.reason, failed_now=True, status=result.status)
            return True
        if attempts >= limit:
            await self._dead(item, f"gave up after {attempts} attempts; last: {result.reason}", failed_now=True,
                             status=result.status)
            return True
        delay = self._delay(attempts)
        if result.retry_after_s is not None:
            delay = max(delay, result.retry_after_s)
        failed = msgspec.structs.replace(begun, failures=begun.failures + 1, next_at=self._clock() + delay,
                                         last_status=result.status, last_error=result.reason)
        await self._ledger.failed(action.id, item.target, failed, newly_failing=not was_failing)
        item.state = failed
        metrics.RETRYING.inc()
        log(logger, logging.INFO, "attempt failed; will retry", shard=self.shard, action=action.id,
            contact=action.contact.contact_id, target=item.target, attempt=attempts, status=result.status,
            reason=result.reason, retry_in_s=round(delay, 3))
        return False

    async def _send(self, action: Action, deadline: float) -> AttemptResult:
        try:
            async with asyncio.timeout_at(deadline):
                return await self._senders.send(action)
        except TimeoutError:
            return AttemptResult("retry", f"no answer within {self._options.timeout_s:g} s")
        except (RedisError, OSError):
            raise
        except Exception as exc:  # a sender's bug counts as a failed attempt, so the schedule still ends
            log(logger, logging.ERROR, "sender raised", exc_info=True, shard=self.shard, action=action.id,
                error=repr(exc))
            return AttemptResult("retry", f"{type(exc).__name__}: {exc}")

    def _delay(self, attempts: int) -> float:
        return self._schedule.delay_after(attempts, self._uniform)

    async def _dead(self, item: _Item, reason: str, *, failed_now: bool, status: int | None) -> None:
        state = item.state
        letter = DeadLetter(id=item.action.id, target=item.target, reason=reason, attempts=state.attempts,
                            dead_at=self._clock(), action=item.action, first_attempt_at=state.first_attempt_at,
                            last_status=status if status is not None else state.last_status)
        await self._ledger.dead(item.entry_id, letter, was_failing=state.failures > 0, failed_now=failed_now)
        metrics.DEAD_LETTERED.inc()
        log(logger, logging.WARNING, "action dead-lettered", shard=self.shard, action=item.action.id,
            contact=item.action.contact.contact_id, target=item.target, attempts=state.attempts, reason=reason)

    # ---- trimming ------------------------------------------------------------

    async def _trim_loop(self) -> None:
        while True:
            await asyncio.sleep(TRIM_EVERY_S)
            await self.trim()

    async def trim(self) -> None:
        """Drop acked entries from the stream: all before the oldest pending one, or all read if none is pending."""
        # Group info before the pending summary: an entry read in between is then never trimmed.
        groups: list[dict[str, Any]] = await self._client.xinfo_groups(self._stream)
        last = next((g["last-delivered-id"] for g in groups if _text(g["name"]) == GROUP), None)
        if last is None:
            return
        pending: dict[str, Any] = await self._client.xpending(self._stream, GROUP)
        if pending["pending"]:
            floor = _text(pending["min"])
        else:
            ms, _, seq = _text(last).partition("-")
            floor = f"{ms}-{int(seq or 0) + 1}"
        await self._client.xtrim(self._stream, minid=floor, approximate=False)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
