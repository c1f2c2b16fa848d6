"""The dispatcher process: takes its share of the outbox shards, delivers each, gives them back on stop.

Every quarter of the lease period it renews its membership and its leases,
restarts a shard whose worker failed (after giving its lease back, so the
new worker starts from what Redis holds), hands shards back when it holds
more than its share (after their attempts in flight end), and takes free
shards up to its share. While Redis is unreachable nothing is renewed:
each worker stops taking attempts once its lease may have run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from api.dispatcher.addresses import AddressPolicy
from api.dispatcher.endpoints import EndpointStore
from api.dispatcher.errors import DispatcherError
from api.dispatcher.leases import Lease, LeaseKeeper, fair_share
from api.dispatcher.ledger import Ledger
from api.dispatcher.schedule import RetrySchedule
from api.dispatcher.senders import EmailSender, Sender, Senders
from api.dispatcher.shard import LEASE_MARGIN_S, ShardOptions, ShardWorker
from api.dispatcher.webhook import WebhookSender, webhook_session
from api.logging import configure_logging, log
from api.resources import redis_client
from state.metrics_server import serve_metrics
from state.process_stats import start_process_reporter
from state.settings import Settings

logger = logging.getLogger("attimo.dispatcher")

# Delivery states outlive the longest schedule by this much (they are deleted when an action ends).
STATE_SLACK_S: Final = 7 * 86_400.0


@dataclass
class _Held:
    """A shard this dispatcher holds: its lease, its worker, and whether it is being handed back."""

    lease: Lease
    worker: ShardWorker
    task: asyncio.Task[None]
    leaving: bool = False


def check_timing(settings: Settings) -> None:
    """Refuse settings under which an attempt could outlive the lease that allowed it."""
    renewed_every = settings.dispatcher_lease_s / 4
    if settings.dispatcher_lease_s - renewed_every <= settings.webhook_timeout_s + LEASE_MARGIN_S:
        raise DispatcherError(
            f"ATTIMO_DISPATCHER_LEASE_S ({settings.dispatcher_lease_s:g}) must exceed 4/3 of "
            f"ATTIMO_WEBHOOK_TIMEOUT_S + {LEASE_MARGIN_S:g} ({settings.webhook_timeout_s:g} + {LEASE_MARGIN_S:g}): "
            "an attempt must end before the lease that allowed it can pass to another dispatcher")


def dispatcher_id() -> str:
    """A name for this process, unique among dispatchers (host, pid, random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Dispatcher:
    """Shares the outbox shards with the other dispatchers and delivers the ones it holds."""

    settings: Settings
    client: aioredis.Redis
    senders: Senders
    owner: str = field(default_factory=dispatcher_id)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        check_timing(self.settings)
        s = self.settings
        self.schedule = RetrySchedule.parse(s.webhook_retry_schedule, s.webhook_retry_jitter)
        self.keeper = LeaseKeeper(self.client, self.owner, s.dispatcher_lease_s, clock=self.clock)
        self.gate = asyncio.Semaphore(s.dispatcher_concurrency)
        self.options = ShardOptions(timeout_s=s.webhook_timeout_s, readahead=s.dispatcher_readahead,
                                    state_ttl_s=self.schedule.span * (1 + s.webhook_retry_jitter) + STATE_SLACK_S)
        self.held: dict[int, _Held] = {}
        self._handing_back: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish attempts in flight and give every shard back."""
        log(logger, logging.INFO, "dispatcher started", owner=self.owner, shards=self.settings.outbox_shards,
            schedule=list(self.schedule.delays), timeout_s=self.settings.webhook_timeout_s)
        interval = self.settings.dispatcher_lease_s / 4
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except (RedisError, OSError) as exc:
                    log(logger, logging.WARNING, "redis unavailable; leases not renewed", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
        finally:
            await self.shutdown()

    async def tick(self) -> None:
        """One round: membership, renewals, failed workers, then shards handed back or taken."""
        members = await self.keeper.members()
        for lease in await self.keeper.renew([h.lease for h in self.held.values()]):
            log(logger, logging.WARNING, "lease lost", shard=lease.shard)
            self.held[lease.shard].worker.stop()
        await self._reap()
        share = fair_share(self.settings.outbox_shards, members)
        staying = sorted(shard for shard, h in self.held.items() if not h.leaving)
        if len(staying) > share:
            for shard in staying[share:]:
                self._hand_back(shard)
        elif len(staying) < share:
            await self._take(share - len(staying))

    async def _reap(self) -> None:
        for shard, held in list(self.held.items()):
            if not held.task.done() or held.leaving:
                continue
            del self.held[shard]
            error = held.task.exception() if not held.task.cancelled() else None
            if error is not None:
                log(logger, logging.WARNING, "shard worker stopped; its shard is released", shard=shard,
                    error=f"{type(error).__name__}: {error}")
            with contextlib.suppress(RedisError, OSError):
                await self.keeper.release(held.lease)

    async def _take(self, wanted: int) -> None:
        shards = self.settings.outbox_shards
        start = hash(self.owner) % shards  # dispatchers start looking at different shards
        for offset in range(shards):
            if wanted <= 0:
                return
            shard = (start + offset) % shards
            if shard in self.held:
                continue
            lease = await self.keeper.acquire(shard)
            if lease is not None:
                self._start(lease)
                wanted -= 1

    def _start(self, lease: Lease) -> None:
        s = self.settings
        ledger = Ledger(self.client, self.owner, lease.shard, state_ttl_s=self.options.state_ttl_s,
                        dead_letter_retention_s=s.dead_letter_retention_s)
        worker = ShardWorker(self.client, lease, ledger, self.senders, self.schedule, self.gate, self.options)
        self.held[lease.shard] = _Held(lease, worker, asyncio.create_task(worker.run()))
        log(logger, logging.INFO, "shard taken", shard=lease.shard, owner=self.owner)

    def _hand_back(self, shard: int) -> None:
        held = self.held[shard]
        held.leaving = True
        held.worker.stop()

        async def finish() -> None:
            with contextlib.suppress(Exception):
                await held.task
            with contextlib.suppress(RedisError, OSError):
                await self.keeper.release(held.lease)
            self.held.pop(shard, None)
            log(logger, logging.INFO, "shard handed back", shard=shard, owner=self.owner)

        task = asyncio.create_task(finish())
        self._handing_back.add(task)
        task.add_done_callback(self._handing_back.discard)

    async def shutdown(self) -> None:
        """Let attempts in flight end, give every shard back, leave."""
        for held in self.held.values():
            held.worker.stop()
        await asyncio.gather(*(h.task for h in self.held.values()), *self._handing_back, return_exceptions=True)
        for held in list(self.held.values()):
            with contextlib.suppress(RedisError, OSError):
                await self.keeper.release(held.lease)
        self.held.clear()
        with contextlib.suppress(RedisError, OSError):
            await self.keeper.leave()
        log(logger, logging.INFO, "dispatcher stopped", owner=self.owner)


def build_senders(settings: Settings, session: aiohttp.ClientSession, policy: AddressPolicy,
                  client: aioredis.Redis, schedule: RetrySchedule) -> Senders:
    """The sender of each kind of action: signed webhooks, and e-mail through SMTP."""
    by_kind: dict[str, Sender] = {
        "webhook": WebhookSender(session, EndpointStore(client), policy, timeout_s=settings.webhook_timeout_s,
                                 disable_after_s=settings.webhook_disable_after_s, longest_delay_s=schedule.longest),
        "email": EmailSender(settings)}
    return Senders(by_kind)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run a dispatcher with these settings until `stop` is set."""
    schedule = RetrySchedule.parse(settings.webhook_retry_schedule, settings.webhook_retry_jitter)
    policy = AddressPolicy.from_setting(settings.webhook_allowed_networks)
    client = redis_client(settings)
    session = webhook_session(policy, settings.dispatcher_concurrency, settings.webhook_timeout_s)
    try:
        dispatcher = Dispatcher(settings, client, build_senders(settings, session, policy, client, schedule))
        await dispatcher.run(stop)
    finally:
        await session.close()
        await client.aclose()


def run_dispatcher(settings: Settings) -> None:
    """`attimo dispatcher`: deliver until SIGINT or SIGTERM, then stop cleanly."""
    configure_logging(process_name="dispatcher")
    serve_metrics("dispatcher", settings.host, settings.dispatcher_metrics_port)
    start_process_reporter("dispatcher", settings.redis_url)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
