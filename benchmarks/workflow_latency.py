"""Event → webhook received, under background shop traffic through the real stack.

The whole stack runs (Redis, gateway, dataflow, API, one `attimo dispatcher`)
with the ten shop workflows, the two probe workflows and the live-state
benchmark's everything-on configuration; a real webhook receiver on
127.0.0.1 (`benchmarks.webhook_receiver`, answering 200 at once) is the
endpoint every workflow sends to. Background shoppers are sent open loop
over websockets (5 events per frame, as the latency phase of the suite
does; orders and e-mail opens over HTTP), so the dispatcher delivers their
workflows' webhooks too.

Probes, also open loop over websockets to the gateway, are fresh visitors
whose one event enters a probe workflow, which sends one webhook at once:

- event trigger: `Coupon Applied` with the probe coupon;
- segment-entry trigger: a `Product Viewed` of the probe-only category puts
  the visitor in the `probe-entry` segment, whose entry is the trigger.

Latency is from the probe's scheduled send time to the receiver's arrival
timestamp (same clock); the outbox append (its entry id) splits it into the
dataflow's part and the dispatcher's.

Correct: every probe's webhook arrived exactly once, every action in the
outbox (background ones too) was answered 2xx exactly once with a signature
that verifies (`standardwebhooks`), nothing else arrived, every entry was
acked, and every contact's counters equal what was acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.dispatcher.records import EndpointSecret, WebhookEndpoint, encode
from api.dispatcher.signing import new_secret
from api.processes import attimo_command
from benchmarks import workflow_checks as checks
from benchmarks.correctness import wait_exact
from benchmarks.livestate_config import publish
from benchmarks.load_plan import build_plan
from benchmarks.progress import note
from benchmarks.shoppers import ShopperModel, Tally
from benchmarks.shoppers import encode as encode_event
from benchmarks.stack import SHARDS, CpuMeter, Stack, wait_until
from benchmarks.stats import percentiles
from benchmarks.webhook_receiver import Attempt, WebhookReceiver
from benchmarks.workflow_config import (
    ENDPOINT,
    PROBE_CATEGORY,
    PROBE_COUPON,
    PROBE_EVENT,
    PROBE_SEGMENT,
    config,
    probe_workflows,
    shop_workflows,
)
from benchmarks.ws_client import LoadResult, LoadRunner
from benchmarks.ws_protocol import frame_bytes, iso_now
from state import keys
from state.actions import WebhookBody

T = TypeVar("T")
EVENTS_PER_VISITOR = 11.5
DISPATCHER_SETTINGS = {"webhook_allowed_networks": "127.0.0.1/32"}
KINDS = {PROBE_EVENT: "wfp-e", PROBE_SEGMENT: "wfp-s"}
PROBE_MARK = b'"template":"probe"'  # the probe workflows' payload, in the webhook body


def probe_event(workflow: str, who: str) -> dict[str, Any]:
    """The one event that enters `who` into a probe workflow."""
    base = {"type": "track", "messageId": f"{who}-m", "anonymousId": who, "timestamp": iso_now()}
    if workflow == PROBE_EVENT:
        return {**base, "event": "Coupon Applied", "properties": {"coupon": PROBE_COUPON, "cart_id": who}}
    return {**base, "event": "Product Viewed",
            "properties": {"product_id": "probe-1", "category": PROBE_CATEGORY, "price": 1.0}}


@dataclass
class ProbeRun:
    """Probes as sent: contact → (workflow, scheduled send time, wall clock); and what the gateway acked."""

    sent: dict[str, tuple[str, float]] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    failed: int = 0


class WebhookProbes:
    """Fresh visitors, alternating between the two probe triggers, at a fixed rate over websockets."""

    PER_SOCKET = 16  # the gateway learns a socket under at most 16 visitor ids

    def __init__(self, gateway_url: str, write_key: str, rate: float) -> None:
        self.url = f"{gateway_url}/v1/stream?key={write_key}"
        self.rate = rate
        self.run_ = ProbeRun()
        self._unacked: dict[int, dict[str, Any]] = {}

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                reply = msgspec.json.decode(message)
                event = self._unacked.pop(reply.get("ack", -1), None) if isinstance(reply, dict) else None
                if event is not None and reply.get("accepted") == 1:
                    self.run_.tally.add(event)

    async def run(self, probes: int, start_in_s: float = 0.5) -> ProbeRun:
        sockets: list[ClientConnection] = []
        readers: list[asyncio.Task[None]] = []
        ws: ClientConnection | None = None
        origin, wall = time.monotonic() + start_in_s, time.time() + start_in_s
        try:
            for n in range(probes):
                if n % self.PER_SOCKET == 0 or ws is None or ws.state.name != "OPEN":
                    ws = await connect(self.url, compression=None, ping_interval=None)
                    sockets.append(ws)
                    readers.append(asyncio.create_task(self._read(ws)))
                due = n / self.rate
                await asyncio.sleep(max(0.0, origin + due - time.monotonic()))
                workflow = PROBE_EVENT if n % 2 == 0 else PROBE_SEGMENT
                who = f"{KINDS[workflow]}-{n:05d}"
                event = probe_event(workflow, who)
                self._unacked[n + 1] = event
                try:
                    await ws.send(frame_bytes(n + 1, b"[" + encode_event(event) + b"]").decode())
                except ConnectionClosed:
                    self.run_.failed += 1
                    continue
                self.run_.sent[who] = (workflow, wall + due)
            settle = time.monotonic() + 5.0
            while self._unacked and time.monotonic() < settle:
                await asyncio.sleep(0.02)
        finally:
            for task in readers:
                task.cancel()
            for sock in sockets:
                with contextlib.suppress(Exception):
                    await sock.close()
        return self.run_


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def start_dispatcher(stack: Stack, receiver: WebhookReceiver) -> str:
    """The endpoint every workflow sends to (the receiver), and one dispatcher process; the endpoint's secret."""
    secret = new_secret()
    now = time.time()
    endpoint = WebhookEndpoint(id=ENDPOINT, url=receiver.url, created_at=now, updated_at=now,
                               secrets=[EndpointSecret(secret=secret, created_at=now)])
    client = stack.client()
    client.hset(keys.webhook_endpoints(), ENDPOINT, encode(endpoint))
    stack._spawn("dispatcher", attimo_command("api.cli", "dispatcher"), stack.env(**DISPATCHER_SETTINGS))
    leases = [keys.dispatcher_lease(s) for s in range(checks.OUTBOX_SHARDS)]
    wait_until(lambda: None not in client.mget(leases), 60, "the dispatcher to lease every outbox shard")
    return secret


_body = msgspec.json.Decoder(WebhookBody)


def measure(directory: Path, seed: int, rate: int, seconds: float, probe_rate: float,
            shop: bool = True) -> dict[str, Any]:
    """Probe latencies at `rate` background events/s, after the correctness checks.

    `shop=False` runs the probe workflows alone (a control: what the ten shop workflows add).
    """
    probes = int(seconds * probe_rate)
    events = int(rate * seconds)
    connections = max(20, min(80, rate // 50))
    model = ShopperModel(seed, prefix=f"wl{rate}")
    plan = build_plan(model, int(events / EVENTS_PER_VISITOR) + 20, connections, frame_size=5, max_events=events)
    with Stack(directory) as stack, WebhookReceiver() as receiver:
        stack.start_redis()
        workflows = [*(shop_workflows() if shop else []), *probe_workflows()]
        publish(stack.redis_url, config(workflows, probes=True), SHARDS)
        stack.start_gateway()
        stack.start_dataflow(1, 1)
        stack.start_api()
        client = stack.client()
        watcher = checks.OutboxWatcher(redis.Redis(port=stack.redis_port))
        with watcher:
            secret = start_dispatcher(stack, receiver)
            note(f"workflow latency: {probes} probes at {probe_rate:g}/s over {rate:,} background events/s …")
            runner = LoadRunner(stack.gateway_url, stack.api_url, stack.write_key, plan, rate=rate,
                                time_limit_s=seconds * 3 + 10, label=f"background {rate:,}/s")
            prober = WebhookProbes(stack.gateway_url, stack.write_key, probe_rate)
            meter = CpuMeter(stack).start()
            waits = checks.WaitMeter(stack.pids).start()
            window_start = time.monotonic()
            busy = checks.machine_busy_s()

            async def both() -> Any:
                load = asyncio.create_task(runner.run())
                sent = await prober.run(probes)
                return await load, sent

            load, sent = _run(both())
            probe_ids = set(sent.sent)

            def probes_in() -> bool:
                got = {_body.decode(a.body).data.contact.contact_id for a in receiver.attempts()
                       if a.ok and PROBE_MARK in a.body}
                return probe_ids <= got

            try:
                wait_until(probes_in, 30, "every probe's webhook", interval=0.1)
            except TimeoutError as exc:
                note(str(exc))
            cpu = meter.stop()
            runqueue = waits.stop()
            machine = {**checks.others(busy, cpu), "runqueue_wait_s": runqueue,
                       "window_s": round(time.monotonic() - window_start, 2)}
            tally = runner.acked_tally()
            tally.merge(sent.tally)
            counters = wait_exact(client, tally, 60)
            ids = [w.id for w in workflows]
            checks.settle(client, ids, quiet_s=1.0, timeout_s=30.0, appended=lambda: len(watcher.seen))

            def delivered() -> bool:
                return len(set(receiver.delivered())) >= checks.entries_added(client) \
                    and checks.pending(client) == 0

            try:
                wait_until(delivered, 120, "every action delivered and acked", interval=0.2)
            except TimeoutError as exc:
                note(str(exc))
        attempts = receiver.attempts()
        want = checks.appended_ids(client)
        delivery = checks.delivery_check(attempts, want, secret, checks.pending(client))
        delivery["entries_added"] = added = checks.entries_added(client)
        delivery["correct"] = delivery["correct"] and added == len(want)
        delivery["append_times_seen"] = len(watcher.seen)
        stack.check_alive()
    figures = summarise(sent, watcher.seen, attempts, load, rate, probes, probe_rate, cpu, counters.as_dict(),
                        delivery)
    return {**figures, "shop_workflows": shop, "machine": machine}


def summarise(sent: ProbeRun, appended: list[checks.Appended], attempts: list[Attempt], load: LoadResult,
              rate: int, probes: int, probe_rate: float, cpu: dict[str, float], counters: dict[str, Any],
              delivery: dict[str, Any]) -> dict[str, Any]:
    """Per probe kind: scheduled send → outbox append → received; the background's actions; the checks."""
    outbox_at = {(a.action.contact.contact_id, a.action.workflow_id): a.at for a in appended}
    actions: dict[str, tuple[str, str]] = {}  # action id → (contact, workflow), from what was delivered
    received: dict[tuple[str, str], list[float]] = {}
    for attempt in attempts:
        if attempt.ok:
            data = _body.decode(attempt.body).data
            actions[data.id] = (data.contact.contact_id, data.workflow_id)
            received.setdefault((data.contact.contact_id, data.workflow_id), []).append(attempt.received_at)
    per_run = Counter(actions.values())
    kinds: dict[str, Any] = {}
    first = min((at for _, at in sent.sent.values()), default=0.0)
    for workflow in KINDS:
        mine = {who: at for who, (w, at) in sent.sent.items() if w == workflow}
        to_outbox = [(outbox_at[(w, workflow)] - at) * 1000 for w, at in mine.items() if (w, workflow) in outbox_at]
        to_receiver = [(received[(w, workflow)][0] - at) * 1000 for w, at in mine.items()
                       if (w, workflow) in received]
        kinds[workflow] = {
            "probes": len(mine),
            "not_received": sum(1 for w in mine if (w, workflow) not in received),
            "received_twice": sum(1 for w in mine if len(received.get((w, workflow), ())) > 1),
            "actions_not_one": sum(1 for w in mine if per_run.get((w, workflow), 0) != 1),
            "event_to_outbox_ms": percentiles(to_outbox),
            "event_to_received_ms": percentiles(to_receiver),
            # (seconds since the first probe was due, ms until received): queueing shows as a trend
            "timeline": sorted((round(at - first, 2), round((received[(w, workflow)][0] - at) * 1000, 1))
                               for w, at in mine.items() if (w, workflow) in received),
        }
    probes_ok = all(k["not_received"] == 0 and k["received_twice"] == 0 and k["actions_not_one"] == 0
                    for k in kinds.values()) and len(sent.sent) == probes and sent.failed == 0
    by_workflow = Counter(workflow for _, workflow in actions.values())
    background = sum(n for w, n in by_workflow.items() if w not in KINDS)
    return {
        "background_events_per_s": rate,
        "achieved_events_per_s": round((load.events_acked + load.http_events_acked) / max(1e-9, load.elapsed_s)),
        "background_events_acked": load.events_acked + load.http_events_acked,
        "background_complete": load.complete,
        "client_behind_schedule_max_ms": round(load.behind_schedule_ms, 1),
        "probe_rate_per_s": probe_rate,
        "probes": kinds,
        "background_actions": background,
        "background_actions_per_s": round(background / max(1e-9, load.elapsed_s), 1),
        "actions_by_workflow": dict(by_workflow),
        "cpu_s": cpu,
        "check": {"counters": counters, "delivery": delivery, "probes": probes_ok,
                  "correct": counters["correct"] and delivery["correct"] and probes_ok and load.complete},
    }
