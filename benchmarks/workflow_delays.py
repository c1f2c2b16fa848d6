"""Delay lateness: many contacts wait in a delay at once; how late does each one's next action leave?

A stack of Redis and the dataflow (1 worker, recovery on) runs the ten shop
workflows plus `delay_workflow(D)`: a `Trial Started` event enters a fresh
contact, which gets a webhook at once, waits D seconds, then gets a
follow-up. `contacts` trial starts are appended open loop, evenly over
`window_s` (validated and appended as the gateway appends them), so the
due times are spread over that window; D is longer than the window plus a
margin, so every contact is waiting at once before the first delay ends.

The delay starts at the instant the first webhook is decided, so each
contact's due time is that action's `created_at` + D, read back from the
outbox afterwards (nothing is read while the contacts wait). Lateness is
the moment Redis appended the follow-up (its entry id, ms) minus the due
time. No dispatcher runs: the outbox append is what the dataflow owes (the
dispatcher's own latency is `benchmarks.dispatch`'s).

Correct: every contact has exactly one first webhook and one follow-up in
the outbox and no other contact has either, and the workflow's own gauge
saw all of them waiting at once.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis

from benchmarks import workflow_checks as checks
from benchmarks.livestate_config import publish
from benchmarks.progress import note
from benchmarks.stack import SHARDS, CpuMeter, Stack, wait_until
from benchmarks.stats import percentiles
from benchmarks.workflow_config import (
    DELAY_TRIGGER,
    DELAYED,
    DELAYED_FIRST,
    DELAYED_STEP,
    config,
    delay_workflow,
    shop_workflows,
)
from state.streams import append_events_sync
from state.validation import EventValidator, Limits

FRAME = 50


def contact(n: int) -> str:
    return f"trial-{n:06d}"


def trial_event(n: int) -> bytes:
    who = contact(n)
    return orjson.dumps({"type": "track", "event": DELAY_TRIGGER, "messageId": f"{who}-start", "anonymousId": who,
                         "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                         "properties": {"plan": "pro", "trial_days": 14}})


def load(client: redis.Redis, contacts: int, window_s: float) -> float:
    """Append the trial starts open loop, evenly over `window_s`; how far behind schedule it fell at most (s)."""
    validator = EventValidator(Limits())
    rate = contacts / window_s
    start = time.monotonic()
    behind = 0.0
    for first in range(0, contacts, FRAME):
        delay = start + first / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        behind = max(behind, -delay)
        batch = validator.validate_all([trial_event(n) for n in range(first, min(contacts, first + FRAME))],
                                       datetime.now(UTC))
        append_events_sync(client, batch.accepted, SHARDS)
    return behind


def counted(client: redis.Redis, counter: str) -> int:
    """One of the delay workflow's exact counters (summed over stages and shards)."""
    return checks.stats(client, DELAYED).get(counter, 0)


def watch_waiting(client: redis.Redis, contacts: int, delay_s: float, started: float) -> int:
    """The most contacts the workflow's gauge showed waiting at once, until every first webhook is out and
    the first delay is about to end (or it is clear that it has)."""
    most = 0
    deadline = started + delay_s - 0.5
    while time.time() < deadline:
        most = max(most, counted(client, "waiting:hold"))
        if most >= contacts or counted(client, f"queued:{DELAYED_STEP}"):
            break
        time.sleep(0.2)
    return max(most, counted(client, "waiting:hold"))


def measure(directory: Path, contacts: int, window_s: float, delay_s: float) -> dict[str, Any]:
    """Load `contacts` into the delay over `window_s`; lateness of each follow-up, after the checks."""
    with Stack(directory) as stack:
        stack.start_redis()
        client = stack.client()
        publish(stack.redis_url, config([*shop_workflows(), delay_workflow(delay_s)]), SHARDS)
        stack.start_dataflow(1, 1)
        note(f"delays: {contacts:,} contacts enter a {delay_s:g} s delay over {window_s:g} s …")
        meter = CpuMeter(stack).start()
        waits = checks.WaitMeter(stack.pids).start()
        window_start, busy, started = time.monotonic(), checks.machine_busy_s(), time.time()
        behind = load(client, contacts, window_s)
        waiting = watch_waiting(client, contacts, delay_s, started)
        note(f"delays: {waiting:,} waited at once; their delays end over the next ~{window_s:g} s …")
        try:
            wait_until(lambda: counted(client, f"queued:{DELAYED_STEP}") >= contacts,
                       started + window_s + delay_s + 60 - time.time(), "every follow-up", interval=0.2)
        except TimeoutError as exc:
            note(str(exc))
        cpu = meter.stop()
        machine = {**checks.others(busy, cpu), "runqueue_wait_s": waits.stop(),
                   "window_s": round(time.monotonic() - window_start, 2)}
        checks.settle(client, [DELAYED], quiet_s=1.0, timeout_s=10.0)
        mine = [a for a in checks.outbox(client) if a.action.workflow_id == DELAYED]
        stack.check_alive()
    return summarise(mine, contacts, window_s, delay_s, waiting, behind, cpu, machine)


def summarise(mine: list[checks.Appended], contacts: int, window_s: float, delay_s: float, waiting: int,
              behind: float, cpu: dict[str, float], machine: dict[str, Any]) -> dict[str, Any]:
    """Lateness per contact (follow-up appended − first webhook's decision − the delay), and the checks."""
    ids = {contact(n) for n in range(contacts)}
    first = {a.action.contact.contact_id: a.action.created_at for a in mine if a.action.step_id == DELAYED_FIRST}
    per_step = {step: Counter(a.action.contact.contact_id for a in mine if a.action.step_id == step)
                for step in (DELAYED_FIRST, DELAYED_STEP)}
    due = {who: at + delay_s for who, at in first.items()}
    late_ms = [(a.at - due[a.action.contact.contact_id]) * 1000 for a in mine
               if a.action.step_id == DELAYED_STEP and a.action.contact.contact_id in due]
    check: dict[str, Any] = {"contacts": contacts, "waiting_at_once": waiting}
    for step, seen in per_step.items():
        check[step] = {"actions": sum(seen.values()), "contacts_without": len(ids - set(seen)),
                       "contacts_with_two_or_more": sum(1 for n in seen.values() if n > 1),
                       "unexpected_contacts": len(set(seen) - ids)}
    check["other_steps"] = sum(1 for a in mine if a.action.step_id not in per_step)
    check["correct"] = waiting == contacts and check["other_steps"] == 0 and all(
        c["actions"] == contacts and not c["contacts_without"] and not c["contacts_with_two_or_more"]
        and not c["unexpected_contacts"] for c in (check[DELAYED_FIRST], check[DELAYED_STEP]))
    dues = sorted(due.values())
    return {
        "contacts": contacts,
        "window_s": window_s,
        "delay_s": delay_s,
        "load_rate_per_s": round(contacts / window_s, 1),
        "due_spread_s": round(dues[-1] - dues[0], 2) if dues else None,
        "client_behind_schedule_max_ms": round(behind * 1000, 1),
        "lateness_ms": percentiles(late_ms, (50, 90, 99)),
        "early": sum(1 for v in late_ms if v < -1.0),
        "cpu_s": cpu,
        "machine": machine,
        "check": check,
    }
