"""One contact shard: its contacts, the configuration in force, and the guard around every change.

Both stages (visitors and known contacts) hold their contacts in
`ContactShard`s — one per Bytewax key — and change them only through it:

* `change` applies one step (an event, or a visitor merged in) to one
  contact by running every registered capability's hook on its part;
* `emit` evaluates each changed contact once per activation, commits it
  and arms its timer; `on_time` does the same for contacts whose deadline
  passed, after letting the capabilities' `tick` hooks run;
* `switch_config` adopts a newer configuration and re-evaluates every
  contact (the backfill of a new or edited segment).

The guard: every change and every evaluation runs under try/except. A step
that raises is quarantined with its error, the contact is rolled back to its
last commit and the steps that succeeded before it are applied again; an
evaluation that raises is salvaged step by step; then the activation goes on.
So no event, deadline or configuration can stop the dataflow, and none is
retried forever.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from dataflows.capabilities.base import ContactSettings, Context
from dataflows.io.outputs import (
    AliasDelete,
    BackfillProgress,
    Handoff,
    MetricAdd,
    Output,
    ProfileDelete,
    Quarantined,
    ShardControl,
    Tally,
    TallyWrite,
)
from dataflows.rules.live_config import ConfigLoader, ConfigUnavailableError
from dataflows.shard.book import ContactBook
from dataflows.shard.contact import ContactCore, Registry
from dataflows.shard.dedup import DedupWindow, first_time
from dataflows.shard.emitter import emit_contact, retire
from dataflows.shard.identity import USER_MARK, merge_contacts
from state import keys
from state.events import ListChanged, StreamEvent, TagsChanged, WorkflowEntry, event_time
from state.quarantine import QuarantineRecord, Stage, clip, describe
from state.shards import shard_of

log = logging.getLogger(__name__)

Step = StreamEvent | Handoff
"""One change applied to a contact in an activation: an event, or a visitor merged in."""


@dataclass(frozen=True)
class ShardSettings:
    """Tunables of a contact shard (all from settings) and the capabilities it runs."""

    registry: Registry
    contact: ContactSettings = field(default_factory=ContactSettings)
    contact_shards: int = 256
    # Contacts kept decoded per shard; the rest stay msgpack-encoded (memory).
    hot_contacts: int = 64
    dedup: DedupWindow = field(default_factory=DedupWindow)


class _Snapshot(msgspec.Struct, array_like=True):
    version: int
    shard: str
    states: dict[str, bytes]
    deadlines: dict[str, float]
    links: dict[str, str] = msgspec.field(default_factory=dict)
    # Exact counters (`Tally` outputs) summed over this shard's contacts: key → field → total.
    tallies: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    # Erased ids' hashes → when erased (`dataflows.shard.erase`): their later events are dropped.
    tombstones: dict[str, float] = msgspec.field(default_factory=dict)
    # Visitor → user links: when each was last used; a link unused for the anonymous TTL is purged.
    link_seen: dict[str, float] = msgspec.field(default_factory=dict)


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(_Snapshot)
_json = msgspec.json.Encoder()


class ContactShard:
    """The contacts of one shard in one stage, changed only through the guard."""

    def __init__(self, settings: ShardSettings, loader: ConfigLoader, now: Callable[[], float],
                 resume: bytes | None, anonymous: bool) -> None:
        self.stage: Stage = "visitors" if anonymous else "contacts"
        self.settings = settings
        self.registry = settings.registry
        self.now = now
        self._loader = loader
        self.book = ContactBook(self.registry, anonymous, settings.hot_contacts)
        self.shard = ""
        self.links: dict[str, str] = {}
        self.link_seen: dict[str, float] = {}
        self.tombstones: dict[str, float] = {}
        self._links_swept_at = 0.0
        self.ctx = Context(loader.get(0), settings.contact)
        self._steps: dict[str, list[Step]] = {}
        self._quarantined: list[Output] = []
        # What evaluates contacts without steps to blame: a timer, or a configuration switch.
        self._cause: Stage = "timers"
        self.tallies: dict[str, dict[str, int]] = {}
        self._tallied: set[tuple[str, str]] = set()
        # The shard's size as last reported (`keys.population()`); -1: never. A snapshot is taken after
        # a batch's outputs, whose last report was the size it holds, so a resumed shard starts from that.
        self._population = -1
        if resume is not None:
            snapshot = _snapshot_decoder.decode(resume)
            self.ctx.live = loader.get(snapshot.version)
            self.shard = snapshot.shard
            self.links = dict(snapshot.links)
            self.link_seen = dict(snapshot.link_seen)
            self.tombstones = dict(snapshot.tombstones)
            self.tallies = {key: dict(fields) for key, fields in snapshot.tallies.items()}
            self.book.restore(snapshot.states, snapshot.deadlines)
            if self.shard:
                self._population = self.book.committed_count()

    @property
    def version(self) -> int:
        """The configuration version in force."""
        return self.ctx.live.version

    # ---- changing contacts, guarded ---------------------------------------------

    def change(self, contact_id: str, step: Step, now: float) -> bool:
        """Apply one step to a contact; on failure roll it back and quarantine the step."""
        if not self.shard:
            self.shard = str(shard_of(contact_id, self.settings.contact_shards))
        state = self.book.get_or_create(contact_id)
        try:
            applied = self._apply(state, step, now)
        except Exception as exc:
            self._undo(contact_id, step, exc, now)
            return False
        if applied:
            self._steps.setdefault(contact_id, []).append(step)
        return applied

    def _apply(self, state: ContactCore, step: Step, now: float) -> bool:
        """Run the capabilities' hooks for one step; False for a resend (nothing changed)."""
        ctx = self.ctx
        registry = self.registry
        if isinstance(step, Handoff):
            if step.state_msgpack is not None:
                ctx.now = now
                merged = merge_contacts(state, registry.decode(step.state_msgpack), registry, ctx,
                                        self.settings.dedup)
                ctx.count("identity_merges" if merged else "identity_merge_cap_reached")
            return True
        received = step.received_at.timestamp() if step.received_at else now
        if step.message_id and not first_time(state.seen, step.message_id, received, self.settings.dedup):
            return False
        if isinstance(step, TagsChanged | ListChanged | WorkflowEntry):  # admin changes are not activity
            for name, admin in registry.admins:
                admin(getattr(state, name), step, ctx)
            return True
        at = event_time(step).timestamp()
        if not state.first_seen or at < state.first_seen:
            state.first_seen = at
        state.last_seen = max(state.last_seen, at)
        anonymous_id = step.anonymous_id
        if (anonymous_id and anonymous_id not in state.anonymous_ids
                and len(state.anonymous_ids) < ctx.live.config.identity.max_anonymous_ids):
            state.anonymous_ids.append(anonymous_id)
        ctx.at, ctx.received = at, received
        for name, apply in registry.appliers:
            apply(getattr(state, name), step, ctx)
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
                produced = emit_contact(state, self.registry, self.ctx, now, self.book.anonymous)
                self.book.commit(state)
            except Exception as exc:
                produced = self._salvage(contact_id, exc, now)
            else:
                self.book.schedule(state)
            out += self._count(produced)
        return out

    def _count(self, produced: list[Output]) -> list[Output]:
        """Add a committed contact's `Tally`s to the shard's totals; pass the other outputs on."""
        if not any(isinstance(o, Tally) for o in produced):
            return produced
        rest: list[Output] = []
        for item in produced:
            if isinstance(item, Tally):
                fields = self.tallies.setdefault(item.key, {})
                fields[item.field] = fields.get(item.field, 0) + item.amount
                self._tallied.add((item.key, item.field))
            else:
                rest.append(item)
        return rest

    def _salvage(self, contact_id: str, exc: BaseException, now: float) -> list[Output]:
        """Emitting failed: replay this activation's steps one by one, quarantining those that break it.

        Each step is tried on a copy of the last good state, which must then
        encode and evaluate; a step that fails either way is quarantined and
        skipped. With no steps to blame (a timer, a configuration switch) the
        contact stays as committed and its timer is dropped until its next
        event, so it cannot fail again and again.
        """
        registry = self.registry
        steps = self._steps.pop(contact_id, [])
        committed = self.book.committed(contact_id)
        self.book.rollback(contact_id)
        if not steps:
            self.quarantine(self._record(contact_id, None, exc, now, self._cause))
            return []
        good = committed
        for step in steps:
            trial = registry.decode(good) if good is not None else self._fresh(contact_id)
            try:
                self._apply(trial, step, now)
                candidate = registry.encode(trial)
                check = registry.decode(candidate)
                emit_contact(check, registry, self.ctx, now, self.book.anonymous)
                registry.encode(check)
            except Exception as step_exc:
                self.quarantine(self._record(contact_id, step, step_exc, now))
                continue
            good = candidate
        if good is None:
            return []
        state = registry.decode(good)
        self.book.replace(state)
        try:
            produced = emit_contact(state, registry, self.ctx, now, self.book.anonymous)
            self.book.commit(state)
        except Exception as final:  # pragma: no cover - every step was just checked
            self.book.rollback(contact_id)
            self.quarantine(self._record(contact_id, None, final, now))
            return []
        self.book.schedule(state)
        return produced

    def _fresh(self, contact_id: str) -> ContactCore:
        return self.registry.new(contact_id, None if self.book.anonymous else contact_id)

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
                self.quarantine(self._record(contact_id, None, exc, self.now()))
        self._steps.clear()
        self.book.cool_down()

    # ---- quarantine and metrics --------------------------------------------------

    def quarantine(self, record: QuarantineRecord) -> None:
        """Keep `record` for operators (written by the sink with this activation's outputs)."""
        log.error("quarantined", extra={"id": record.id, "stage": record.stage, "error": record.error,
                                        "contact_id": record.contact_id})
        self._quarantined.append(Quarantined(record))

    def _record(self, contact_id: str, step: Step | None, exc: BaseException, now: float,
                stage: Stage | None = None) -> QuarantineRecord:
        """The record of what failed; ids are derived from the state, so a replay overwrites it."""
        if isinstance(step, Handoff):
            return QuarantineRecord(id=f"handoff:{step.anonymous_id}:{contact_id}", at=now, stage="handoff",
                                    error=describe(exc), contact_id=contact_id,
                                    payload=clip(repr(step.state_msgpack)))
        if step is None:
            committed = self.book.committed(contact_id)
            # Identify the failure by the contact's committed state (the same after a replay).
            digest = f"{zlib.crc32(committed):08x}" if committed is not None else "new"
            where = stage or self.stage
            return QuarantineRecord(id=f"{where}:{contact_id}:{digest}", at=now, stage=where,
                                    error=describe(exc), contact_id=contact_id)
        return QuarantineRecord(id=f"{self.stage}:{step.message_id or contact_id}", at=now, stage=self.stage,
                                error=describe(exc), contact_id=contact_id,
                                payload=clip(_json.encode(step).decode()), replayable=True)

    def drain(self) -> list[Output]:
        """The quarantine records and counters gathered during this activation, and the shard's size if it changed."""
        out: list[Output] = self._quarantined
        self._quarantined = []
        out += [MetricAdd(name, amount) for name, amount in self.ctx.counts.items()]
        self.ctx.counts.clear()
        label = f"{self.stage}:{self.shard}"
        out += [TallyWrite(key, f"{label}:{name}", self.tallies[key][name]) for key, name in self._tallied]
        self._tallied.clear()
        size = self.book.committed_count()
        if size != self._population and self.shard:  # the dashboard's contact counts: only when it changed
            self._population = size
            out.append(TallyWrite(keys.population(), f"{label}:contacts", size))  # a tally field's shape
        return out

    # ---- configuration and time ----------------------------------------------------

    def switch_config(self, control: ShardControl, now: float) -> list[Output]:
        """Adopt a newer configuration and re-evaluate every contact (the backfill)."""
        self.shard = control.shard
        if control.version <= self.version:
            return []
        try:
            live = self._loader.get(control.version)
        except ConfigUnavailableError as exc:
            self.quarantine(QuarantineRecord(
                id=f"config:{control.version}:{self.stage}:{control.shard}", at=now, stage="config",
                error=describe(exc)))
            return []
        self.ctx.live = live
        out: list[Output] = []
        ids = self.book.all_ids()
        self._cause = "config"
        for contact_id in ids:
            if self.book.get(contact_id) is not None:
                out += self.emit([contact_id], now)
            self.settle()
        self._cause = "timers"
        out.append(BackfillProgress(control.version, f"{self.stage}:{self.shard}", len(ids)))
        return out

    def on_time(self) -> list[Output]:
        """Contacts whose deadline passed: purge expired visitors, tick, evaluate."""
        now = self.now()
        ctx = self.ctx
        purged: list[Output] = []
        alive: list[str] = []
        ttl = ctx.live.config.identity.anonymous_ttl_s
        for contact_id in self.book.due_ids(now):
            state = self.book.get(contact_id)
            if state is None:
                continue
            if self.book.anonymous and now >= state.last_seen + ttl:
                purged += self.purge(state)
                continue
            try:
                ctx.now = now
                for name, tick in self.registry.tickers:
                    tick(getattr(state, name), ctx)
            except Exception as exc:
                self.book.rollback(contact_id)  # and no re-arming: it would fail again at once
                self.quarantine(self._record(contact_id, None, exc, now, "timers"))
                continue
            alive.append(contact_id)
        if purged:
            ctx.count("anonymous_purged", sum(isinstance(o, ProfileDelete) for o in purged))
        purged += self.purge_links(now, ttl)
        out = purged + self.emit(alive, now)
        self.settle()
        return out + self.drain()

    def purge(self, state: ContactCore) -> list[Output]:
        """Forget a contact: its profile goes, and what its capabilities owe (segment exits)."""
        self.book.pop(state.contact_id)
        return [*retire(state, self.registry, state.updated_at), ProfileDelete(state.contact_id)]

    def use_link(self, anonymous_id: str, now: float) -> None:
        """A device's events went through its link to a user: it stays until unused for the anonymous TTL."""
        self.link_seen[anonymous_id] = now

    def purge_links(self, now: float, ttl: float) -> list[Output]:
        """Forget visitor → user links unused for `ttl` (at most once per tenth of it), and their aliases.

        Links used to grow forever (~100 B per device ever linked); a device
        silent that long is forgotten as an anonymous visitor would be, and a
        later event of it starts a new visitor until it identifies again.
        """
        if not self.links or now - self._links_swept_at < min(ttl / 10, 60.0):
            return []
        self._links_swept_at = now
        # A user marker (`identity.USER_MARK`) is no device link: it guards the user's id for good.
        stale = [a for a in self.links
                 if not a.startswith(USER_MARK) and self.link_seen.setdefault(a, now) + ttl <= now]
        for anonymous_id in stale:
            del self.links[anonymous_id]
            del self.link_seen[anonymous_id]
        if not stale:
            return []
        self.ctx.count("links_purged", len(stale))
        return [AliasDelete(tuple(stale))]

    def due(self) -> datetime | None:
        """When Bytewax should wake this shard next (a contact's deadline, or the next sweep of links)."""
        at = self.book.next_due()
        if self.links:
            sweep = self._links_swept_at + min(self.ctx.live.config.identity.anonymous_ttl_s / 10, 60.0)
            at = sweep if at is None else min(at, sweep)
        return None if at is None else datetime.fromtimestamp(at, UTC)

    def encode(self) -> bytes:
        """The shard's snapshot: committed contacts, deadlines, links and the version in force."""
        return _snapshot_encoder.encode(_Snapshot(self.version, self.shard, self.book.encoded(),
                                                  self.book.deadlines(), self.links, self.tallies,
                                                  self.tombstones, self.link_seen))
