"""The per-contact stateful operators: visitors, then known contacts.

State is keyed by *contact shard* (a stable hash of the id into a bounded
number of virtual shards), not by contact: each Bytewax key holds the
contacts of its shard and one heap of their deadlines. This keeps the two
costs that grow with keys in Bytewax bounded at 10⁵–10⁶ contacts: the scan
over keys with a pending timer on every activation, and recovery resume
time, which grows with the number of distinct keys ever stored.

Two stages, so that identity can merge (see `identity`): the visitor stage
holds anonymous visitors and the links from anonymous ids to user ids; the
contact stage holds known contacts. Each touched contact is evaluated once
per activation and emits its profile once.

Configuration switches arrive as `ShardControl`s in stream order; a switch
re-evaluates every contact of the shard (the backfill of a new or edited
segment) and reports progress.

Nothing a contact's data can do stops a stage: each change and each
evaluation is guarded, and what fails is rolled back and quarantined (see
`_ShardLogic`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar, cast

import msgspec
from bytewax.operators import StatefulBatchLogic

from dataflows.contact_book import ContactBook, decode_state, encode_state
from dataflows.contact_state import ContactState
from dataflows.contact_update import apply_event, apply_time
from dataflows.dedup import DedupWindow, first_time
from dataflows.emitter import emit_contact, leave_segments
from dataflows.identity import device_id, known_user, merge_contacts
from dataflows.live_config import ConfigLoader, ConfigUnavailableError, LiveConfig
from dataflows.outputs import (
    AliasWrite,
    BackfillProgress,
    Handoff,
    MetricAdd,
    Output,
    ProfileDelete,
    Quarantined,
    Routed,
    ShardControl,
)
from state.events import Identify, StreamEvent
from state.quarantine import QuarantineRecord, Stage, clip, describe
from state.shards import shard_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContactConfig:
    """Tunables of the contact operators (all from settings)."""

    contact_shards: int = 256
    cart_idle_s: float = 30 * 60
    # Contacts kept decoded per shard; the rest stay msgpack-encoded (memory).
    hot_contacts_per_shard: int = 64
    dedup: DedupWindow = field(default_factory=DedupWindow)


def wall_clock() -> float:
    """Now, in epoch seconds (UTC)."""
    return datetime.now(UTC).timestamp()


def shard_key(contact_id: str, shards: int) -> str:
    """The Bytewax key of the contact shard owning `contact_id`."""
    return str(shard_of(contact_id, shards))


class _Snapshot(msgspec.Struct, array_like=True):
    version: int
    shard: str
    states: dict[str, bytes]
    deadlines: dict[str, float]
    links: dict[str, str] = msgspec.field(default_factory=dict)


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(_Snapshot)
_json = msgspec.json.Encoder()

Step = StreamEvent | Handoff
"""One change applied to a contact in an activation: an event, or a visitor merged in."""


class _ShardLogic:
    """What both stages share: a contact book, a config version, timers, backfill, and the guard.

    The guard: every change to a contact (`change`) and every evaluation
    (`emit`) runs under try/except. A step that raises is quarantined with
    its error, the contact is rolled back to its last commit and the steps
    that succeeded before it are applied again; then the activation goes
    on. So no event, deadline or configuration can stop the dataflow, and
    none is retried forever.
    """

    def __init__(self, config: ContactConfig, loader: ConfigLoader, now: Callable[[], float],
                 resume: bytes | None, anonymous: bool) -> None:
        self.stage: Stage = "visitors" if anonymous else "contacts"
        self.contact_shards = config.contact_shards
        self.late_in_batch = 0
        self._config = config
        self._loader = loader
        self._now = now
        self.book = ContactBook(anonymous, config.hot_contacts_per_shard)
        self.shard = ""
        self.links: dict[str, str] = {}
        self.live: LiveConfig = loader.get(0)
        self._steps: dict[str, list[Step]] = {}
        self._quarantined: list[Output] = []
        self._counts: dict[str, int] = {}
        if resume is not None:
            snapshot = _snapshot_decoder.decode(resume)
            self.live = loader.get(snapshot.version)
            self.shard = snapshot.shard
            self.links = dict(snapshot.links)
            self.book.restore(snapshot.states, snapshot.deadlines)

    # ---- changing contacts, guarded ---------------------------------------------

    def change(self, contact_id: str, step: Step, now: float) -> bool:
        """Apply one step to a contact; on failure roll it back and quarantine the step."""
        state = self.book.get_or_create(contact_id)
        try:
            applied = self._apply(state, step, now)
        except Exception as exc:
            self._undo(contact_id, step, exc, now)
            return False
        if applied:
            self._steps.setdefault(contact_id, []).append(step)
        return applied

    def _apply(self, state: ContactState, step: Step, now: float) -> bool:
        if isinstance(step, Handoff):
            if step.state_msgpack is None:
                return True
            merged = merge_contacts(state, decode_state(step.state_msgpack), now, self.live.config,
                                    self._config.dedup)
            self.count("identity_merges" if merged else "identity_merge_cap_reached")
            return True
        received = step.received_at.timestamp() if step.received_at else now
        if step.message_id and not first_time(state.seen, step.message_id, received, self._config.dedup):
            return False
        late_before = state.late_events
        apply_event(state, step, self.live, self._config.cart_idle_s)
        self.late_in_batch += state.late_events - late_before
        return True

    def _undo(self, contact_id: str, failed: Step, exc: BaseException, now: float) -> None:
        """Roll the contact back to its commit, re-apply what succeeded, quarantine `failed`."""
        self.book.rollback(contact_id)
        steps = self._steps.get(contact_id)
        if steps:
            state = self.book.get_or_create(contact_id)
            for step in steps:
                self._apply(state, step, now)  # succeeded a moment ago on the same state: deterministic
        self.quarantine(self._record(contact_id, failed, exc, now))

    def emit(self, contact_ids: Iterable[str], now: float) -> list[Output]:
        """Evaluate, commit and schedule each changed contact; a failure is salvaged step by step."""
        out: list[Output] = []
        for contact_id in contact_ids:
            state = self.book.get(contact_id)
            if state is None:
                continue
            try:
                produced = emit_contact(state, self.live, now, self._config.cart_idle_s, self.book.anonymous)
                self.book.commit(state)
            except Exception as exc:
                produced = self._salvage(contact_id, exc, now)
            else:
                self.book.schedule(state)
            out += produced
        return out

    def _salvage(self, contact_id: str, exc: BaseException, now: float) -> list[Output]:
        """Emitting failed: replay this activation's steps one by one, quarantining those that break it.

        Each step is tried on a copy of the last good state, which must then
        encode and evaluate; a step that fails either way is quarantined and
        skipped. With no steps to blame (a timer, a configuration switch) the
        contact stays as committed and its timer is dropped until its next
        event, so it cannot fail again and again.
        """
        steps = self._steps.pop(contact_id, [])
        committed = self.book.committed(contact_id)
        self.book.rollback(contact_id)
        if not steps:
            self.quarantine(self._record(contact_id, None, exc, now))
            return []
        good = committed
        for step in steps:
            trial = decode_state(good) if good is not None else self._fresh(contact_id)
            try:
                self._apply(trial, step, now)
                candidate = encode_state(trial)
                check = decode_state(candidate)
                emit_contact(check, self.live, now, self._config.cart_idle_s, self.book.anonymous)
                encode_state(check)
            except Exception as step_exc:
                self.quarantine(self._record(contact_id, step, step_exc, now))
                continue
            good = candidate
        if good is None:
            return []
        state = decode_state(good)
        self.book.replace(state)
        try:
            produced = emit_contact(state, self.live, now, self._config.cart_idle_s, self.book.anonymous)
            self.book.commit(state)
        except Exception as final:  # pragma: no cover - every step was just checked
            self.book.rollback(contact_id)
            self.quarantine(self._record(contact_id, None, final, now))
            return []
        self.book.schedule(state)
        return produced

    def _fresh(self, contact_id: str) -> ContactState:
        return ContactState(contact_id=contact_id, user_id=None if self.book.anonymous else contact_id)

    def settle(self) -> None:
        """End an activation: nothing uncommitted stays, the hot set shrinks to its limit."""
        for contact_id in self.book.uncommitted():
            state = self.book.get(contact_id)
            if state is None:
                continue
            try:
                self.book.commit(state)
            except Exception as exc:
                self.book.rollback(contact_id)
                self.quarantine(self._record(contact_id, None, exc, self._now()))
        self._steps.clear()
        self.book.cool_down()

    # ---- quarantine and metrics --------------------------------------------------

    def quarantine(self, record: QuarantineRecord) -> None:
        """Keep `record` for operators (written by the sink with this activation's outputs)."""
        log.error("quarantined", extra={"id": record.id, "stage": record.stage, "error": record.error,
                                        "contact_id": record.contact_id})
        self._quarantined.append(Quarantined(record))

    def _record(self, contact_id: str, step: Step | None, exc: BaseException, now: float) -> QuarantineRecord:
        if isinstance(step, Handoff):
            return QuarantineRecord(id=f"handoff:{step.anonymous_id}:{contact_id}", at=now, stage="handoff",
                                    error=describe(exc), contact_id=contact_id,
                                    payload=clip(repr(step.state_msgpack)))
        if step is None:
            return QuarantineRecord(id=f"{self.stage}:{contact_id}:{now!r}", at=now,
                                    stage="timers" if not self._steps else self.stage,
                                    error=describe(exc), contact_id=contact_id)
        return QuarantineRecord(id=f"{self.stage}:{step.message_id or contact_id}", at=now, stage=self.stage,
                                error=describe(exc), contact_id=contact_id,
                                payload=clip(_json.encode(step).decode()), replayable=True)

    def count(self, metric: str, amount: int = 1) -> None:
        """Add to a dataflow counter, written with this activation's outputs."""
        self._counts[metric] = self._counts.get(metric, 0) + amount

    def drain(self) -> list[Output]:
        """The quarantine records and counters gathered during this activation."""
        out: list[Output] = self._quarantined
        self._quarantined = []
        if self.late_in_batch:
            self.count("late_events", self.late_in_batch)
            self.late_in_batch = 0
        out += [MetricAdd(name, amount) for name, amount in self._counts.items()]
        self._counts = {}
        return out

    # ---- configuration and time ----------------------------------------------------

    def switch_config(self, control: ShardControl, now: float) -> list[Output]:
        """Adopt a newer configuration and re-evaluate every contact (the backfill)."""
        self.shard = control.shard
        if control.version <= self.live.version:
            return []
        try:
            live = self._loader.get(control.version)
        except ConfigUnavailableError as exc:
            self.quarantine(QuarantineRecord(
                id=f"config:{control.version}:{self.stage}:{control.shard}", at=now, stage="config",
                error=describe(exc)))
            return []
        self.live = live
        out: list[Output] = []
        ids = self.book.all_ids()
        for contact_id in ids:
            if self.book.get(contact_id) is not None:
                out += self.emit([contact_id], now)
            self.settle()
        out.append(BackfillProgress(control.version, f"{self.stage}:{self.shard}", len(ids)))
        return out

    def on_time(self) -> list[Output]:
        now = self._now()
        purged: list[Output] = []
        alive: list[str] = []
        ttl = self.live.config.identity.anonymous_ttl_s
        for contact_id in self.book.due_ids(now):
            state = self.book.get(contact_id)
            if state is None:
                continue
            if self.book.anonymous and now >= state.last_seen + ttl:
                purged += self.purge(state)
                continue
            try:
                apply_time(state, now, self.live, self._config.cart_idle_s)
            except Exception as exc:
                self.book.rollback(contact_id)  # and no re-arming: it would fail again at once
                self.quarantine(self._record(contact_id, None, exc, now))
                continue
            alive.append(contact_id)
        if purged:
            self.count("anonymous_purged", sum(isinstance(o, ProfileDelete) for o in purged))
        out = purged + self.emit(alive, now)
        self.settle()
        return out + self.drain()

    def purge(self, state: ContactState) -> list[Output]:
        """Forget a contact: its profile and its segment memberships go too."""
        self.book.pop(state.contact_id)
        return [*leave_segments(state, state.updated_at), ProfileDelete(state.contact_id)]

    def due(self) -> datetime | None:
        at = self.book.next_due()
        return None if at is None else datetime.fromtimestamp(at, UTC)

    def encode(self) -> bytes:
        return _snapshot_encoder.encode(_Snapshot(self.live.version, self.shard, self.book.encoded(),
                                                  self.book.deadlines(), self.links))


VisitorItem = StreamEvent | ShardControl
ContactItem = Routed | Handoff | ShardControl
VisitorOutput = Output | Routed | Handoff | ShardControl


In = TypeVar("In")
Out = TypeVar("Out")


class _StageLogic(StatefulBatchLogic[In, Out, bytes], Generic[In, Out]):
    """What Bytewax calls on either stage besides `on_batch`: timers and snapshots."""

    def __init__(self, shared: _ShardLogic) -> None:
        self.s = shared

    def on_notify(self) -> tuple[Iterable[Out], bool]:
        return cast("list[Out]", self.s.on_time()), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return self.s.due()

    def snapshot(self) -> bytes:
        return self.s.encode()


class _VisitorShardLogic(_StageLogic[VisitorItem, VisitorOutput]):
    """Anonymous visitors of one shard; resolves identity and forwards known contacts' events."""

    def on_batch(self, values: list[VisitorItem]) -> tuple[Iterable[VisitorOutput], bool]:
        out: list[VisitorOutput] = []
        touched: dict[str, None] = {}
        s = self.s
        now = s._now()
        for item in values:
            if isinstance(item, ShardControl):
                out += s.emit(touched, now)
                touched.clear()
                s.settle()
                switched = s.switch_config(item, now)
                if switched:  # tell the contact shard of the same number, in order with what follows
                    out += switched
                    out.append(item)
                continue
            anonymous_id = device_id(item)
            user_id = known_user(item)
            if user_id is None and anonymous_id is not None:
                owner = s.links.get(anonymous_id)
                if owner is not None:
                    out.append(Routed(owner, item, s.live.version))
                elif s.change(anonymous_id, item, now):
                    touched[anonymous_id] = None
                continue
            if user_id is None:
                continue  # validation guarantees an id; a blocked user id alone identifies nobody
            if anonymous_id is not None and s.links.get(anonymous_id) != user_id:
                out += self._identify(anonymous_id, user_id, touched, now)
            out.append(Routed(user_id, item, s.live.version))
        out += s.emit(touched, now)
        s.settle()
        out += s.drain()
        return out, StatefulBatchLogic.RETAIN

    def _identify(self, anonymous_id: str, user_id: str, touched: dict[str, None],
                  now: float) -> list[VisitorOutput]:
        """Link the visitor to the user and hand its history over."""
        s = self.s
        s.links[anonymous_id] = user_id
        if anonymous_id in touched:  # its events of this batch go along: commit them first
            touched.pop(anonymous_id)
            s.emit([anonymous_id], now)
        visitor = s.book.get(anonymous_id)
        committed = s.book.committed(anonymous_id)
        s.book.pop(anonymous_id)
        out: list[VisitorOutput] = [AliasWrite(anonymous_id, user_id)]
        if visitor is not None:
            # The anonymous contact ceases to exist: it leaves its segments (the
            # known contact re-enters them on its own evaluation) and its profile.
            out += leave_segments(visitor, now)
            out.append(ProfileDelete(anonymous_id))
        out.append(Handoff(user_id, anonymous_id, committed, s.live.version))
        return out


class _ContactShardLogic(_StageLogic[ContactItem, Output]):
    """Known contacts of one shard: merges hand-offs and applies routed events."""

    def on_batch(self, values: list[ContactItem]) -> tuple[Iterable[Output], bool]:
        out: list[Output] = []
        touched: dict[str, None] = {}
        s = self.s
        now = s._now()
        for item in values:
            if isinstance(item, ShardControl):
                out += s.emit(touched, now)
                touched.clear()
                s.settle()
                out += s.switch_config(item, now)
                continue
            if item.version > s.live.version:
                out += s.emit(touched, now)
                touched.clear()
                s.settle()
                shard = s.shard or shard_key(item.contact_id, s.contact_shards)
                out += s.switch_config(ShardControl(item.version, shard), now)
            contact_id = item.contact_id
            if isinstance(item, Handoff):
                if s.change(contact_id, item, now):
                    touched[contact_id] = None
                continue
            if s.change(contact_id, item.event, now):
                touched[contact_id] = None
                event = item.event
                email = event.traits.get("email") if isinstance(event, Identify) else None
                if isinstance(email, str) and email and email != contact_id:
                    out.append(AliasWrite(email.lower(), contact_id))
        out += s.emit(touched, now)
        s.settle()
        out += s.drain()
        return out, StatefulBatchLogic.RETAIN


def visitor_logic(config: ContactConfig, loader: ConfigLoader, now: Callable[[], float] = wall_clock,
                  ) -> Callable[[bytes | None], _VisitorShardLogic]:
    """Builder of the visitor stage's logic (one per contact shard)."""
    return lambda resume: _VisitorShardLogic(_ShardLogic(config, loader, now, resume, anonymous=True))


def contact_logic(config: ContactConfig, loader: ConfigLoader, now: Callable[[], float] = wall_clock,
                  ) -> Callable[[bytes | None], _ContactShardLogic]:
    """Builder of the contact stage's logic (one per contact shard)."""
    return lambda resume: _ContactShardLogic(_ShardLogic(config, loader, now, resume, anonymous=False))
