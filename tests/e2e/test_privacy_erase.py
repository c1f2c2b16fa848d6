"""Erase through the real stack: the dataflow, a dispatcher, a webhook receiver on 127.0.0.1, and the admin API.

One stack for the module (`workflow_stack`); each test has its own contacts.
The trace scan reads EVERY Redis key (names, string values, hash fields and
values, set and sorted-set members, list items, stream entry fields) and the
bytes of every file of the Bytewax recovery store (database, WAL, shared
memory), and looks for each id the contact was known by, and its e-mail.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from benchmarks.webhook_receiver import Reply
from state import keys
from state.erasure import id_hash
from state.events import Event, Identify, Page, Track
from state.shards import shard_of
from state.streams import compare_ids
from state.workflows import Delay, OnManual, SendWebhook, Workflow
from tests.e2e.workflow_stack import STREAM_SHARDS, WorkflowStack, wait_until, workflow_stack

pytestmark = pytest.mark.timeout(240)


# While set, the receiver answers 503: the dispatcher keeps a webhook in its retry loop.
FAILING = threading.Event()
# While set, the receiver answers 400: a permanent failure, dead-lettered at once.
REFUSING = threading.Event()


def _answer(_id: str, _nth: int) -> Reply:
    return Reply(400) if REFUSING.is_set() else Reply(503) if FAILING.is_set() else Reply(200)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkflowStack]:
    # Raw events are retained (10 min), so an erase must scrub them from the streams.
    with workflow_stack(tmp_path_factory.mktemp("privacy"), dataflow_settings={"event_retention_s": "600"},
                        dispatcher_settings={"webhook_retry_schedule": "1s,1s,1s,1s,1s,1s,1s,1s"},
                        answer=_answer) as running:
        # Every test's person is put on the newsletter list, so it enters this segment (member set, change log).
        running.request("PUT", "/v1/admin/segments/newsletter-readers",
                        {"when": {"kind": "list", "list": "newsletter"}}, expect=(200, 201))
        yield running


def _now() -> datetime:
    return datetime.now(UTC)


class Person:
    """A shopper with a device, a user id and an e-mail, unique to one test."""

    def __init__(self, tag: str) -> None:
        token = uuid.uuid4().hex[:10]
        self.anonymous_id = f"dev-{tag}-{token}"
        self.user_id = f"user-{tag}-{token}"
        self.email = f"Erase.Me.{tag}.{token}@Example.com"

    @property
    def marks(self) -> list[bytes]:
        return [m.encode() for m in (self.anonymous_id, self.user_id, self.email, self.email.lower())]

    def history(self) -> list[Event]:
        """A visit, a product view, then the sign-in that links the device to the user with an e-mail."""
        at = _now()
        common: dict[str, Any] = {"anonymous_id": self.anonymous_id, "timestamp": at, "received_at": at}
        return [
            Page(message_id=str(uuid.uuid4()), name="home", properties={"path": "/"}, **common),
            Track(message_id=str(uuid.uuid4()), event="Product Viewed",
                  properties={"product_id": "sku-1", "name": "Shoe", "price": 10}, **common),
            Track(message_id=str(uuid.uuid4()), event="Product Viewed",
                  properties={"product_id": "sku-2", "name": "Sock", "price": 3}, **common),
            Identify(message_id=str(uuid.uuid4()), user_id=self.user_id, traits={"email": self.email}, **common),
            Track(message_id=str(uuid.uuid4()), user_id=self.user_id, event="Product Added",
                  properties={"product_id": "sku-1", "price": 10, "quantity": 1}, **common),
        ]


def erase(stack: WorkflowStack, any_id: str) -> str:
    answer = stack.request("POST", f"/v1/admin/contacts/{any_id}/erase", expect=(202,))
    return str(answer["erase_id"])


def wait_state(stack: WorkflowStack, erase_id: str, state: str, timeout: float = 20) -> dict[str, Any]:
    order = ["pending", "erased", "scrubbed"]

    def reached() -> dict[str, Any] | None:
        status = stack.request("GET", f"/v1/admin/erasures/{erase_id}")
        return status if order.index(status["state"]) >= order.index(state) else None
    return wait_until(reached, timeout, f"erase {erase_id} {state}", interval=0.1)


def redis_traces(client: redis.Redis, marks: list[bytes]) -> list[str]:
    """Every place in Redis where one of `marks` appears."""
    found: list[str] = []

    def check(where: str, *values: Any) -> None:
        for value in values:
            data = value if isinstance(value, bytes) else str(value).encode()
            if any(mark in data for mark in marks):
                found.append(f"{where}: {data[:200]!r}")
    for key in client.scan_iter(count=1000):
        name = key.decode(errors="replace")
        check(f"key name {name}", key)
        kind = cast("bytes", client.type(key)).decode()
        if kind == "string":
            check(name, client.get(key))
        elif kind == "hash":
            for field, value in cast("dict[bytes, bytes]", client.hgetall(key)).items():
                check(f"{name} field", field, value)
        elif kind == "set":
            check(name, *cast("set[bytes]", client.smembers(key)))
        elif kind == "zset":
            check(name, *[m for m, _ in cast("list[tuple[bytes, float]]", client.zrange(key, 0, -1, withscores=True))])
        elif kind == "list":
            check(name, *cast("list[bytes]", client.lrange(key, 0, -1)))
        elif kind == "stream":
            for entry_id, fields in cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(key)):
                for field, value in fields.items():
                    check(f"{name} entry {entry_id.decode()}", field, value)
    return found


def recovery_traces(directory: Path, marks: list[bytes]) -> list[str]:
    """Every recovery store file (database, WAL, shared memory) holding one of `marks`, read as bytes."""
    files = sorted((directory / "dataflow" / "recovery").glob("part-*"))
    assert files, "no recovery store: is recovery on?"
    return [f"{path.name}: {mark!r}" for path in files for mark in marks if mark in path.read_bytes()]


def send_history(stack: WorkflowStack, person: Person) -> None:
    stack.send(*person.history())
    stack.wait_profile(person.user_id, lambda p: p.email == person.email and p.counters is not None,
                       "merged with its e-mail")
    stack.request("POST", "/v1/admin/lists/newsletter/members", {"add": [person.user_id]}, expect=(202,))
    stack.wait_profile(person.user_id, lambda p: "newsletter-readers" in p.segments, "in the readers' segment")


class TestExport:
    """The export holds the profile, the retained events, segment memberships and history, and messages sent."""

    def test_export_lists_profile_events_segments_and_messages(self, stack: WorkflowStack) -> None:
        person = Person("export")
        send_history(stack, person)
        stack.put_workflow(Workflow(id="export-hello", trigger=OnManual(), reentry="always",
                                    steps=[SendWebhook(id="hello", endpoint="export-hooks")]))
        stack.enter("export-hello", [person.user_id])
        stack.wait_deliveries(person.user_id, "export-hello", 1)
        stack.wait_profile(person.user_id, lambda p: any(a.workflow == "export-hello" for a in p.actions),
                           "the message in the action log")
        export = stack.request("GET", f"/v1/admin/contacts/{person.email.lower()}/export")
        assert export["contact_id"] == person.user_id
        assert export["profile"]["email"] == person.email
        assert person.anonymous_id in export["profile"]["anonymous_ids"]
        kinds = [(e["event"]["type"], e["event"].get("event")) for e in export["events"]]
        assert kinds.count(("track", "Product Viewed")) == 2 and ("identify", None) in kinds, kinds
        assert ("track", "Product Added") in kinds and ("page", None) in kinds, kinds
        assert all(e["stream_entry"] for e in export["events"])
        readers = [s for s in export["segments"] if s["segment"] == "newsletter-readers"]
        assert len(readers) == 1 and readers[0]["entered_at"] > time.time() - 120, export["segments"]
        assert any(c["segment_id"] == "newsletter-readers" and c["entered"] for c in export["segment_changes"]), \
            export["segment_changes"]
        assert [m["step"] for m in export["messages"] if m["workflow"] == "export-hello"] == ["hello"], \
            export["messages"]
        other = stack.request("GET", "/v1/admin/contacts/nobody-at-all/export", expect=(404,))
        assert "nobody-at-all" in other["error"]


class TestErase:
    """An erased contact leaves no trace in Redis or in the recovery store, and stays erased."""

    def test_erase_by_email_leaves_no_trace_and_a_pending_webhook_is_never_sent(self, stack: WorkflowStack) -> None:
        person = Person("full")
        stack.put_workflow(Workflow(id="erase-later", trigger=OnManual(), reentry="always", steps=[
            Delay(id="wait", seconds=3), SendWebhook(id="late", endpoint="erase-hooks")]))
        send_history(stack, person)
        stack.enter("erase-later", [person.user_id])
        stack.wait_position(person.user_id, "erase-later", lambda p: p.step == "wait", "waiting at the delay")
        assert redis_traces(stack.client, person.marks), "the contact left no trace before the erase?"
        started = time.monotonic()
        erase_id = erase(stack, person.email)
        status = wait_state(stack, erase_id, "erased")
        took = time.monotonic() - started
        assert status["contacts_erased"] >= 1 and status["links_erased"] >= 1, status
        assert took < 5, f"erase took {took:.1f} s"
        assert stack.profile(person.user_id) is None
        assert stack.request("GET", f"/v1/admin/contacts/{person.user_id}/export", expect=(404,)) is not None
        # The workflow's webhook was due 3 s after entry: it never comes.
        time.sleep(4)
        assert stack.deliveries(person.user_id) == []
        assert not [a for a in stack.receiver.attempts() if person.user_id.encode() in a.body]
        assert redis_traces(stack.client, person.marks) == []
        wait_state(stack, erase_id, "scrubbed")
        assert recovery_traces(stack.directory, person.marks) == []
        assert stack.client.exists(keys.tombstone(id_hash(person.user_id)))

    def test_an_action_already_with_the_dispatcher_is_never_delivered_once_erased(self, stack: WorkflowStack) -> None:
        person = Person("outbox")
        send_history(stack, person)
        stack.put_workflow(Workflow(id="erase-now", trigger=OnManual(), reentry="always",
                                    steps=[SendWebhook(id="now", endpoint="erase-hooks")]))
        mark = person.user_id.encode()
        FAILING.set()
        try:
            stack.enter("erase-now", [person.user_id])
            wait_until(lambda: [a for a in stack.receiver.attempts() if mark in a.body] or None, 10,
                       "a first (refused) attempt")
            erased_at = time.time()
            wait_state(stack, erase(stack, person.user_id), "erased")
        finally:
            FAILING.clear()  # from now on the receiver takes everything: a retry would be delivered
        time.sleep(3)  # three retry intervals
        attempts = [a for a in stack.receiver.attempts() if mark in a.body]
        assert not [a for a in attempts if a.ok], "an erased contact's webhook was delivered"
        assert len([a for a in attempts if a.received_at > erased_at]) <= 1  # at most one already under way
        stats = cast("dict[bytes, bytes]", stack.client.hgetall(keys.delivery_stats()))
        assert int(stats.get(b"erased:webhook:erase-hooks", b"0")) == 1, stats  # acked unsent, counted

    def test_an_anonymous_visitor_sharing_a_stream_entry_is_erased_and_the_other_visitor_kept(
            self, stack: WorkflowStack) -> None:
        token = uuid.uuid4().hex[:8]
        # Two visitors whose events land on the same stream shard, sent together: one entry holds both.
        names = [f"shared-{token}-{n}" for n in range(40)]
        gone = names[0]
        kept = next(n for n in names[1:] if shard_of(n, STREAM_SHARDS) == shard_of(gone, STREAM_SHARDS))
        at = _now()
        views = [Track(message_id=str(uuid.uuid4()), anonymous_id=visitor, event="Product Viewed",
                       properties={"product_id": "sku-9"}, timestamp=at, received_at=at)
                 for visitor in (gone, kept, gone, kept)]
        stack.send(*views)
        stack.wait_profile(gone, lambda p: p.counters is not None, "the erased visitor's profile")
        kept_before = stack.wait_profile(kept, lambda p: p.counters is not None, "the other visitor's profile")
        stream = keys.event_stream(shard_of(gone, STREAM_SHARDS))
        assert any(gone.encode() in f[b"e"] and kept.encode() in f[b"e"]
                   for _, f in cast("list[tuple[bytes, dict[bytes, bytes]]]", stack.client.xrange(stream))
                   if b"e" in f), "the two visitors do not share an entry"
        wait_state(stack, erase(stack, gone), "erased")
        assert redis_traces(stack.client, [gone.encode()]) == []
        export = stack.request("GET", f"/v1/admin/contacts/{kept}/export")
        assert len(export["events"]) == 2  # re-appended after the erase, once
        # The re-appended events are read again by the dataflow: resends, counted once.
        last = cast("list[tuple[bytes, dict[bytes, bytes]]]", stack.client.xrevrange(stream, count=1))[0][0]
        def progress() -> str:
            raw = cast("bytes | None", stack.client.hget(keys.dataflow_progress(), str(shard_of(gone, STREAM_SHARDS))))
            return (raw or b"0-0").decode()
        wait_until(lambda: compare_ids(progress(), last.decode()) >= 0 or None, 10, "the re-appended entry read")
        after = stack.profile(kept)
        assert after is not None and after.counters == kept_before.counters

    def test_dead_letters_and_quarantine_records_naming_the_contact_go(self, stack: WorkflowStack) -> None:
        person = Person("records")
        send_history(stack, person)
        stack.put_workflow(Workflow(id="erase-dead", trigger=OnManual(), reentry="always",
                                    steps=[SendWebhook(id="refused", endpoint="erase-hooks")]))
        REFUSING.set()
        try:
            stack.enter("erase-dead", [person.user_id])
            wait_until(lambda: [d for d in stack.dead_letters() if person.user_id in str(d)] or None, 10,
                       "the dead letter")
        finally:
            REFUSING.clear()
        # An entry the dataflow cannot read, naming the person, is quarantined with its payload.
        stack.client.xadd(keys.event_stream(0), {b"e": f'[{{"type":"page","anonymousId":"{person.anonymous_id}"'
                                                       .encode()})
        wait_until(lambda: [k for k in stack.client.scan_iter(match="attimo:quarantine:*")
                            if person.anonymous_id.encode() in (stack.client.get(k) or b"")] or None, 10,
                   "the quarantine record")
        wait_state(stack, erase(stack, person.user_id), "erased")
        assert not [d for d in stack.dead_letters() if person.user_id in str(d)]
        assert redis_traces(stack.client, person.marks) == []

    def test_kill_9_right_after_the_erase_and_a_restart_do_not_bring_it_back(self, stack: WorkflowStack) -> None:
        person = Person("kill")
        send_history(stack, person)
        time.sleep(1.5)  # a snapshot holding the contact is committed: the restart resumes from before the erase
        erase_id = erase(stack, person.user_id)
        before = wait_state(stack, erase_id, "erased")
        assert before["contacts_erased"] >= 1, before
        stack.dataflow.kill_hard()  # before the next snapshot: the restart replays the erase control
        stack.dataflow = stack.start_dataflow()
        probe = Person("probe")  # the restarted dataflow has caught up once a later contact's events are in
        stack.send(*probe.history())
        stack.wait_profile(probe.user_id, lambda p: p.email == probe.email, "the restarted dataflow caught up",
                           timeout=30)
        assert stack.profile(person.user_id) is None
        assert stack.profile(person.anonymous_id) is None
        assert redis_traces(stack.client, person.marks) == []
        # Snapshots after the replay are committed, then the store is vacuumed (by the new process).
        wait_state(stack, erase_id, "scrubbed")
        wait_until(lambda: recovery_traces(stack.directory, person.marks) == [] or None, 15,
                   "the recovery store without the contact", interval=0.5)

    def test_the_tombstone_stops_later_events_until_the_site_re_consents(self, stack: WorkflowStack) -> None:
        person = Person("tomb")
        send_history(stack, person)
        wait_state(stack, erase(stack, person.anonymous_id), "erased")
        at = _now()
        later: list[Event] = [Track(message_id=str(uuid.uuid4()), user_id=person.user_id, event="Product Viewed",
                       properties={"product_id": "sku-3"}, timestamp=at, received_at=at),
                 Page(message_id=str(uuid.uuid4()), anonymous_id=person.anonymous_id, timestamp=at, received_at=at),
                 Identify(message_id=str(uuid.uuid4()), anonymous_id=f"new-device-{uuid.uuid4().hex[:6]}",
                          user_id=person.user_id, timestamp=at, received_at=at, traits={"email": person.email})]
        def dropped() -> int:
            return int(cast("bytes | None", stack.client.hget(keys.metrics(), "erased_events_dropped")) or 0)
        before = dropped()
        stack.send(*later)
        probe = Person("tomb-probe")
        stack.send(*probe.history())
        stack.wait_profile(probe.user_id, lambda p: p.email == probe.email, "a later contact processed")
        assert stack.profile(person.user_id) is None
        assert stack.profile(person.anonymous_id) is None
        # At least one was stopped by a tombstone (the sink then drops the person's entries in every stream,
        # so the others may never be read at all).
        wait_until(lambda: dropped() > before or None, 10, "a later event stopped")
        # The stopped events' stream entries go too (retained raw events would otherwise keep the ids).
        wait_until(lambda: redis_traces(stack.client, person.marks) == [] or None, 10, "no trace of stopped events",
                   interval=0.2)
        consent = stack.request("POST", f"/v1/admin/contacts/{person.user_id}/consent", expect=(202,))
        assert consent["ids_hashed"] >= 3
        assert not stack.client.exists(keys.tombstone(id_hash(person.email.lower())))
        stack.send(Identify(message_id=str(uuid.uuid4()), user_id=person.user_id, timestamp=_now(),
                            received_at=_now(), traits={"email": person.email}))
        stack.wait_profile(person.user_id, lambda p: p.email == person.email, "taken again after re-consent")
