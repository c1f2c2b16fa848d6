"""Delay lateness: many contacts wait in a delay at once; how late does each one's next action leave?

A stack of Redis and the dataflow (1 worker, recovery on) runs the ten shop
workflows plus `delay_workflow(D)`: a `Trial Started` event enters a fresh
contact, which waits D seconds and then sends one webhook. `contacts`
trial starts are appended open loop, evenly over `window_s` (validated and
appended as the gateway appends them), so the due times are spread over
that window; D is longer than the window plus a margin, so every contact is
waiting at once before the first delay ends.

While they are loaded, a reader takes each contact's due time from its
profile (`workflows[].due_at`, what the dataflow scheduled). Lateness is the
moment Redis appended the delayed action to the outbox (its entry id, ms)
minus that due time. No dispatcher runs: the outbox append is what the
dataflow owes (the dispatcher's own latency is `benchmarks.dispatch`'s).

Correct: every contact's due time was read, every contact's delayed action
is in the outbox exactly once and no other contact's, and the workflow's
own gauge saw all of them waiting at once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson
import redis

from benchmarks import workflow_checks as checks
from benchmarks.livestate_config import publish
from benchmarks.progress import note
from benchmarks.stack import SHARDS, CpuMeter, Stack, wait_until
from benchmarks.stats import percentiles
from benchmarks.workflow_config import DELAY_TRIGGER, DELAYED, DELAYED_STEP, config, delay_workflow, shop_workflows
from state import keys
from state.profile import WorkflowPosition
from state.streams import append_events_sync
from state.validation import EventValidator, Limits

FRAME = 50
READ_CHUNK = 1_000


class _Positions(msgspec.Struct):
    """The part of a profile this benchmark reads: where the contact is in each workflow."""

    workflows: list[WorkflowPosition] = msgspec.field(default_factory=list)


_positions = msgspec.json.Decoder(_Positions)


def trial_event(n: int) -> bytes:
    who = f"trial-{n:06d}"
    return orjson.dumps({"type": "track", "event": DELAY_TRIGGER, "messageId": f"{who}-start", "anonymousId": who,
                         "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                         "properties": {"plan": "pro", "trial_days": 14}})


class DueReader:
    """Reads each loaded contact's due time from its profile while it waits (a thread of its own)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.due: dict[str, float] = {}
        self._todo: list[str] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="due-reader", daemon=True)

    def add(self, contact_ids: list[str]) -> None:
        with self._lock:
            self._todo.extend(contact_ids)

    def start(self) -> DueReader:
        self._thread.start()
        return self

    def finish(self, timeout_s: float) -> int:
        """Stop once every added contact was read or `timeout_s` passes; how many are left unread."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._todo:
                    break
            time.sleep(0.05)
        self._done.set()
        self._thread.join(timeout=10)
        with self._lock:
            return len(self._todo)

    def _run(self) -> None:
        while not self._done.is_set():
            with self._lock:
                batch, self._todo = self._todo[:READ_CHUNK], self._todo[READ_CHUNK:]
            if not batch:
                time.sleep(0.05)
                continue
            raws: list[bytes | None] = self.client.mget([keys.contact_profile(c) for c in batch])  # type: ignore[assignment]
            again = []
            for who, raw in zip(batch, raws, strict=True):
                due = None
                if raw is not None:
                    due = next((p.due_at for p in _positions.decode(raw).workflows if p.workflow == DELAYED), None)
                if due is None:
                    again.append(who)
                else:
                    self.due[who] = due
            if again:
                with self._lock:
                    self._todo.extend(again)
                time.sleep(0.02)


def load(client: redis.Redis, contacts: int, window_s: float, reader: DueReader) -> float:
    """Append the trial starts open loop, evenly over `window_s`; how far behind schedule it fell at most (s)."""
    validator = EventValidator(Limits())
    rate = contacts / window_s
    start = time.monotonic()
    behind = 0.0
    for first in range(0, contacts, FRAME):
        due = start + first / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        behind = max(behind, -delay)
        numbers = range(first, min(contacts, first + FRAME))
        batch = validator.validate_all([trial_event(n) for n in numbers], datetime.now(UTC))
        append_events_sync(client, batch.accepted, SHARDS)
        reader.add([f"trial-{n:06d}" for n in numbers])
    return behind


def waiting_now(client: redis.Redis) -> int:
    return checks.stats(client, DELAYED).get("waiting:hold", 0)


def measure(directory: Path, contacts: int, window_s: float, delay_s: float) -> dict[str, Any]:
    """Load `contacts` into the delay over `window_s`; lateness of each delayed action, after the checks."""
    workflows = [*shop_workflows(), delay_workflow(delay_s)]
    with Stack(directory) as stack:
        stack.start_redis()
        client = stack.client()
        publish(stack.redis_url, config(workflows), SHARDS)
        stack.start_dataflow(1, 1)
        note(f"delays: {contacts:,} contacts enter a {delay_s:g} s delay over {window_s:g} s …")
        reader = DueReader(redis.Redis(port=stack.redis_port)).start()
        meter = CpuMeter(stack).start()
        waits = checks.WaitMeter(stack.pids).start()
        window_start = time.monotonic()
        busy = checks.machine_busy_s()
        behind = load(client, contacts, window_s, reader)
        unread = reader.finish(timeout_s=max(5.0, delay_s - window_s - 1.0))
        waiting_max = 0
        first_due = min(reader.due.values(), default=time.time())
        while time.time() < first_due - 0.3:  # every contact should be waiting now
            waiting_max = max(waiting_max, waiting_now(client))
            time.sleep(0.2)
        waiting_max = max(waiting_max, waiting_now(client))
        last_due = max(reader.due.values(), default=time.time())
        note(f"delays: {waiting_max:,} waiting; their delays end over the next {last_due - first_due:.1f} s …")
        ids = {f"trial-{n:06d}" for n in range(contacts)}

        def all_appended() -> bool:
            return checks.stats(client, DELAYED).get(f"queued:{DELAYED_STEP}", 0) >= contacts

        try:
            wait_until(all_appended, last_due - time.time() + 30.0, "every delayed action", interval=0.2)
        except TimeoutError as exc:
            note(str(exc))
        cpu = meter.stop()
        runqueue = waits.stop()
        machine = {**checks.others(busy, cpu), "runqueue_wait_s": runqueue,
                   "window_s": round(time.monotonic() - window_start, 2)}
        checks.settle(client, [DELAYED], quiet_s=1.0, timeout_s=10.0)
        delayed = [a for a in checks.outbox(client) if a.action.workflow_id == DELAYED]
        stack.check_alive()
    per_contact = Counter(a.action.contact.contact_id for a in delayed)
    late_ms = [(a.at - reader.due[a.action.contact.contact_id]) * 1000 for a in delayed
               if a.action.contact.contact_id in reader.due and a.action.step_id == DELAYED_STEP]
    check = {
        "contacts": contacts,
        "due_times_read": len(reader.due),
        "due_times_unread": unread,
        "waiting_at_once": waiting_max,
        "delayed_actions": len(delayed),
        "contacts_without_action": len(ids - set(per_contact)),
        "contacts_with_two_or_more": sum(1 for n in per_contact.values() if n > 1),
        "unexpected_contacts": len(set(per_contact) - ids),
        "wrong_step": sum(1 for a in delayed if a.action.step_id != DELAYED_STEP),
    }
    check["correct"] = (len(reader.due) == contacts and waiting_max == contacts and len(delayed) == contacts
                        and not check["contacts_without_action"] and not check["contacts_with_two_or_more"]
                        and not check["unexpected_contacts"] and not check["wrong_step"])
    return {
        "contacts": contacts,
        "window_s": window_s,
        "delay_s": delay_s,
        "load_rate_per_s": round(contacts / window_s, 1),
        "due_spread_s": round(last_due - first_due, 2),
        "client_behind_schedule_max_ms": round(behind * 1000, 1),
        "lateness_ms": percentiles(late_ms, (50, 90, 99)),
        "early": sum(1 for v in late_ms if v < -1.0),
        "cpu_s": cpu,
        "machine": machine,
        "check": check,
    }
