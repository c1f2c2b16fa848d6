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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar, cast
from zlib import crc32

import msgspec
from bytewax.operators import StatefulBatchLogic

from dataflows.contact_book import ContactBook, decode_states, encode_states, leave_segments
from dataflows.contact_state import ContactState
from dataflows.contact_update import apply_event, apply_time
from dataflows.identity import device_id, known_user, merge_contacts
from dataflows.live_config import ConfigLoader, LiveConfig
from dataflows.outputs import (
    AliasWrite,
    BackfillProgress,
    Handoff,
    MetricAdd,
    Output,
    ProfileDelete,
    Routed,
    ShardControl,
)
from state.events import Event, Identify
from state.shards import shard_of


@dataclass(frozen=True)
class ContactConfig:
    """Tunables of the contact operators (all from settings)."""

    contact_shards: int = 256
    cart_idle_s: float = 30 * 60
    # Contacts kept decoded per shard; the rest stay msgpack-encoded (memory).
    hot_contacts_per_shard: int = 64


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


class _ShardLogic:
    """What both stages share: a contact book, a config version, timers, backfill."""

    def __init__(self, config: ContactConfig, loader: ConfigLoader, now: Callable[[], float],
                 resume: bytes | None, anonymous: bool) -> None:
        self.stage = "visitors" if anonymous else "contacts"
        self.contact_shards = config.contact_shards
        self.late_in_batch = 0
        self._config = config
        self._loader = loader
        self._now = now
        self.book = ContactBook(config.cart_idle_s, anonymous, config.hot_contacts_per_shard)
        self.shard = ""
        self.links: dict[str, str] = {}
        self.live: LiveConfig = loader.get(0)
        if resume is not None:
            snapshot = _snapshot_decoder.decode(resume)
            self.live = loader.get(snapshot.version)
            self.shard = snapshot.shard
            self.links = dict(snapshot.links)
            self.book.restore(snapshot.states, snapshot.deadlines)

    def switch_config(self, control: ShardControl, now: float) -> list[Output]:
        """Adopt a newer configuration and re-evaluate every contact (the backfill)."""
        self.shard = control.shard
        if control.version <= self.live.version:
            return []
        self.live = self._loader.get(control.version)
        out: list[Output] = []
        for state in self.book.all_contacts():
            out += self.book.emit([state], self.live, now)
            self.book.cool_down()
        out.append(BackfillProgress(control.version, f"{self.stage}:{self.shard}", len(self.book)))
        return out

    def accept(self, state: ContactState, event: Event) -> bool:
        """Apply an event unless it is a resend of one already applied."""
        if not state.remember(crc32((event.message_id or "").encode())):
            return False
        late_before = state.late_events
        apply_event(state, event, self.live, self._config.cart_idle_s)
        self.late_in_batch += state.late_events - late_before
        return True

    def metrics(self) -> list[Output]:
        """Counters gathered during this activation (events too late for the windows)."""
        if not self.late_in_batch:
            return []
        late, self.late_in_batch = self.late_in_batch, 0
        return [MetricAdd("late_events", late)]

    def on_time(self) -> list[Output]:
        now = self._now()
        due = self.book.due_contacts(now)
        purged: list[Output] = []
        alive: list[ContactState] = []
        ttl = self.live.config.identity.anonymous_ttl_s
        for state in due:
            if self.book.anonymous and now >= state.last_seen + ttl:
                purged += self.book.purge(state)
            else:
                apply_time(state, now, self.live, self._config.cart_idle_s)
                alive.append(state)
        if purged:
            purged.append(MetricAdd("anonymous_purged", sum(isinstance(o, ProfileDelete) for o in purged)))
        out = purged + self.book.emit(alive, self.live, now)
        self.book.cool_down()
        return out

    def due(self) -> datetime | None:
        at = self.book.next_due()
        return None if at is None else datetime.fromtimestamp(at, UTC)

    def encode(self) -> bytes:
        return _snapshot_encoder.encode(_Snapshot(self.live.version, self.shard, self.book.encoded(),
                                                  self.book.deadlines(), self.links))


VisitorItem = Event | ShardControl
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
        touched: dict[str, ContactState] = {}
        s = self.s
        for item in values:
            if isinstance(item, ShardControl):
                switched = s.switch_config(item, s._now())
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
                    continue
                state = s.book.get_or_create(anonymous_id)
                if s.accept(state, item):
                    touched[anonymous_id] = state
                continue
            if user_id is None:
                continue  # validation guarantees an id; a blocked user id alone identifies nobody
            if anonymous_id is not None and s.links.get(anonymous_id) != user_id:
                out += self._identify(anonymous_id, user_id, touched)
            out.append(Routed(user_id, item, s.live.version))
        out += s.book.emit(touched.values(), s.live, s._now())
        out += s.metrics()
        s.book.cool_down()
        return out, StatefulBatchLogic.RETAIN

    def _identify(self, anonymous_id: str, user_id: str,
                  touched: dict[str, ContactState]) -> list[VisitorOutput]:
        """Link the visitor to the user and hand its history over."""
        s = self.s
        s.links[anonymous_id] = user_id
        touched.pop(anonymous_id, None)
        visitor = s.book.pop(anonymous_id)
        out: list[VisitorOutput] = [AliasWrite(anonymous_id, user_id)]
        if visitor is not None:
            # The anonymous contact ceases to exist: it leaves its segments (the
            # known contact re-enters them on its own evaluation) and its profile.
            out += leave_segments(visitor, s._now())
            out.append(ProfileDelete(anonymous_id))
        out.append(Handoff(user_id, anonymous_id, encode_states([visitor]) if visitor else None,
                           s.live.version))
        return out



class _ContactShardLogic(_StageLogic[ContactItem, Output]):
    """Known contacts of one shard: merges hand-offs and applies routed events."""

    def on_batch(self, values: list[ContactItem]) -> tuple[Iterable[Output], bool]:
        out: list[Output] = []
        touched: dict[str, ContactState] = {}
        s = self.s
        now = s._now()
        for item in values:
            if isinstance(item, ShardControl):
                out += s.switch_config(item, now)
                continue
            if item.version > s.live.version:
                shard = s.shard or shard_key(item.contact_id, s.contact_shards)
                out += s.switch_config(ShardControl(item.version, shard), now)
            state = s.book.get_or_create(item.contact_id)
            if state.user_id is None:
                state.user_id = item.contact_id
            if isinstance(item, Handoff):
                if item.state_msgpack is not None:
                    visitor = decode_states(item.state_msgpack)[0]
                    if merge_contacts(state, visitor, now, s.live.config):
                        out.append(MetricAdd("identity_merges", 1))
                    else:
                        out.append(MetricAdd("identity_merge_cap_reached", 1))
                touched[state.contact_id] = state
                continue
            if s.accept(state, item.event):
                touched[state.contact_id] = state
                email = state.traits.get("email") if isinstance(item.event, Identify) else None
                if isinstance(email, str) and email and email != state.contact_id:
                    out.append(AliasWrite(email.lower(), state.contact_id))
        out += s.book.emit(touched.values(), s.live, now)
        out += s.metrics()
        s.book.cool_down()
        return out, StatefulBatchLogic.RETAIN



def visitor_logic(config: ContactConfig, loader: ConfigLoader, now: Callable[[], float] = wall_clock,
                  ) -> Callable[[bytes | None], _VisitorShardLogic]:
    """Builder of the visitor stage's logic (one per contact shard)."""
    return lambda resume: _VisitorShardLogic(_ShardLogic(config, loader, now, resume, anonymous=True))


def contact_logic(config: ContactConfig, loader: ConfigLoader, now: Callable[[], float] = wall_clock,
                  ) -> Callable[[bytes | None], _ContactShardLogic]:
    """Builder of the contact stage's logic (one per contact shard)."""
    return lambda resume: _ContactShardLogic(_ShardLogic(config, loader, now, resume, anonymous=False))
