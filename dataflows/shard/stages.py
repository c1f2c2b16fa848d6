"""The per-contact stateful operators: visitors, then known contacts.

State is keyed by *contact shard* (a stable hash of the id into a bounded
number of virtual shards), not by contact: each Bytewax key holds the
contacts of its shard and one heap of their deadlines (a `ContactShard`).
This keeps the two costs that grow with keys in Bytewax bounded at 10⁵–10⁶
contacts: the scan over keys with a pending timer on every activation, and
recovery resume time, which grows with the number of distinct keys ever
stored.

Two stages, so that identity can merge (see `identity`): the visitor stage
holds anonymous visitors and the links from anonymous ids to user ids; the
contact stage holds known contacts. Each touched contact is evaluated once
per activation and emits its profile once.

Configuration switches arrive as `ShardControl`s in stream order; a switch
re-evaluates every contact of the shard (the backfill of a new or edited
segment) and reports progress. Nothing a contact's data can do stops a
stage: every change goes through the shard's guard (`shard.ContactShard`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar, cast

from bytewax.operators import StatefulBatchLogic

from dataflows.capabilities.base import ContactSettings
from dataflows.capabilities.registry import CAPABILITIES
from dataflows.io.outputs import (
    AliasWrite,
    ContactsSeen,
    Handoff,
    HeartbeatSeen,
    Output,
    ProfileDelete,
    Routed,
    ShardControl,
    ShardErase,
)
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.contact import Registry
from dataflows.shard.dedup import DedupWindow
from dataflows.shard.emitter import retire
from dataflows.shard.erase import apply_erase, blocked, event_ids, stopped
from dataflows.shard.identity import (
    KnownUser,
    believed,
    device_id,
    is_known_user,
    known_user,
    learn_user,
    on_visitor,
    proved,
)
from dataflows.shard.preview import Previews, ShardPreview, answer_preview
from dataflows.shard.shard import ContactShard, ShardSettings
from state.events import Identify, StreamEvent
from state.heartbeat import ID_PREFIX, arrival_of
from state.shards import shard_of

DEFAULT_REGISTRY = Registry(CAPABILITIES)


@dataclass(frozen=True)
class ContactConfig:
    """Tunables of the contact operators (all from settings) and the capabilities they run."""

    contact_shards: int = 256
    cart_idle_s: float = 30 * 60
    event_log_size: int = 30
    # Tell the sink which contacts had events (the dashboard's active visitors); off when its window is 0.
    track_activity: bool = True
    # Contacts kept decoded per shard; the rest stay msgpack-encoded (memory).
    hot_contacts_per_shard: int = 64
    dedup: DedupWindow = field(default_factory=DedupWindow)
    registry: Registry = DEFAULT_REGISTRY

    def shard_settings(self) -> ShardSettings:
        """What each contact shard is built with."""
        contact = ContactSettings(cart_idle_s=self.cart_idle_s, event_log_size=self.event_log_size)
        return ShardSettings(self.registry, contact, self.contact_shards, self.hot_contacts_per_shard, self.dedup)


def wall_clock() -> float:
    """Now, in epoch seconds (UTC)."""
    return datetime.now(UTC).timestamp()


def shard_key(contact_id: str, shards: int) -> str:
    """The Bytewax key of the contact shard owning `contact_id`."""
    return str(shard_of(contact_id, shards))


VisitorItem = KnownUser | StreamEvent | ShardControl | ShardPreview | ShardErase
ContactItem = Routed | Handoff | ShardControl | ShardPreview | ShardErase
VisitorOutput = Output | Routed | Handoff | ShardControl | ShardPreview | ShardErase

In = TypeVar("In")
Out = TypeVar("Out")


class _StageLogic(StatefulBatchLogic[In, Out, bytes], Generic[In, Out]):
    """What Bytewax calls on either stage besides `on_batch`: timers and snapshots."""

    def __init__(self, shard: ContactShard, contact_shards: int, track_activity: bool) -> None:
        self.s = shard
        self.contact_shards = contact_shards
        self.track_activity = track_activity
        self.previews = Previews()

    def on_notify(self) -> tuple[Iterable[Out], bool]:
        return cast("list[Out]", self.s.on_time()), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return self.s.due()

    def snapshot(self) -> bytes:
        return self.s.encode()

    def _preview(self, item: ShardPreview, touched: dict[str, None], now: float) -> list[Output] | None:
        """Answer a segment count preview once (None for a repeated or expired copy); changes no contact.

        The contacts changed so far in this batch are finished first, so the
        count includes the events that came before the preview.
        """
        if not self.previews.first_live_copy(item.control, now):
            return None
        out = self.s.emit(touched, now)
        touched.clear()
        self.s.settle()
        out.append(answer_preview(self.s, item, now))
        return out

    def _switch(self, control: ShardControl, touched: dict[str, None], now: float) -> list[Output]:
        """Finish the contacts changed so far under the old version, then switch."""
        out = self.s.emit(touched, now)
        touched.clear()
        self.s.settle()
        return out + self.s.switch_config(control, now)

    def _erase(self, item: ShardErase, touched: dict[str, None], now: float) -> list[Output]:
        """Finish the contacts changed so far (their events came first), then forget the erased ones."""
        out = self.s.emit(touched, now)
        touched.clear()
        self.s.settle()
        self.s.shard = item.shard
        return out + apply_erase(self.s, item.control, self.s.stage)


class _VisitorShardLogic(_StageLogic[VisitorItem, VisitorOutput]):
    """Anonymous visitors of one shard; resolves identity and forwards known contacts' events."""

    def on_batch(self, values: list[VisitorItem]) -> tuple[Iterable[VisitorOutput], bool]:
        out: list[VisitorOutput] = []
        touched: dict[str, None] = {}
        s = self.s
        now = s.now()
        for item in values:
            if isinstance(item, ShardPreview):
                answered = self._preview(item, touched, now)
                if answered is not None:  # and on to the contact shard of the same number
                    out += answered
                    out.append(item)
                continue
            if isinstance(item, ShardErase):
                out += self._erase(item, touched, now)
                out.append(item)  # on to the contact shard of the same number
                continue
            if isinstance(item, ShardControl):
                before = s.version
                out += self._switch(item, touched, now)
                if s.version != before:  # tell the contact shard of the same number, in order with what follows
                    out.append(item)
                continue
            if isinstance(item, KnownUser):
                if not (s.tombstones and blocked(s.tombstones, (item.user_id,))):  # an erased user stays unknown
                    learn_user(s.links, s.book, touched, item.user_id)
                continue
            if s.tombstones and blocked(s.tombstones, ids := event_ids(item)):
                s.ctx.count("erased_events_dropped")  # an erased contact's later event: touches no state
                out.append(stopped(item, ids, now))
                continue
            taken = believed(item)  # a browser's unproved userId stays off (identity module docstring)
            if taken is None:
                s.ctx.count("unverified_dropped")
                continue
            item = taken
            anonymous_id = device_id(item)
            user_id = known_user(item)
            if user_id is None and anonymous_id is not None:
                if anonymous_id.startswith(ID_PREFIX):  # the heartbeat: never a visitor (state.heartbeat)
                    arrival = arrival_of(item, now)
                    if arrival is not None:
                        out.append(HeartbeatSeen(arrival))
                        continue
                if anonymous_id not in s.links and is_known_user(s.links, anonymous_id):
                    # A device id that is a user's id: never a visitor (it would overwrite the user's
                    # profile); a trusted sender means the user, a browser gets nothing.
                    if proved(item):
                        out.append(Routed(anonymous_id, item, s.version))
                    else:
                        s.ctx.count("user_id_as_anonymous_id_dropped")
                    continue
                owner = s.links.get(anonymous_id)
                if owner is not None:
                    s.use_link(anonymous_id, now)
                    out.append(Routed(owner, item, s.version))
                elif s.change(anonymous_id, on_visitor(item), now):
                    touched[anonymous_id] = None
                continue
            if user_id is None:
                continue  # validation guarantees an id; a blocked user id alone identifies nobody
            if anonymous_id is None:  # routed by its user id: this is the user's own shard
                learn_user(s.links, s.book, touched, user_id)
            if anonymous_id is not None:
                if s.links.get(anonymous_id) != user_id:
                    out += self._identify(anonymous_id, user_id, touched, now)
                s.use_link(anonymous_id, now)
            out.append(Routed(user_id, item, s.version))
        if touched and self.track_activity:
            out.append(ContactsSeen(tuple(touched), now))
        out += s.emit(touched, now)
        s.settle()
        out += s.drain()
        return out, StatefulBatchLogic.RETAIN

    def _identify(self, anonymous_id: str, user_id: str, touched: dict[str, None],
                  now: float) -> list[VisitorOutput]:
        """Link the visitor to the user and hand its history over."""
        s = self.s
        s.links[anonymous_id] = user_id
        out: list[VisitorOutput] = []
        if anonymous_id in touched:  # its events of this batch go along: commit them, and keep their effects
            touched.pop(anonymous_id)  # (actions, segment entries, pushes), as any other batch would
            out += s.emit([anonymous_id], now)
        visitor = s.book.get(anonymous_id)
        committed = s.book.committed(anonymous_id)
        s.book.pop(anonymous_id)
        out.append(AliasWrite(anonymous_id, user_id))
        if visitor is not None:
            # The anonymous contact ceases to exist: it leaves its segments (the
            # known contact re-enters them on its own evaluation) and its profile.
            out += retire(visitor, s.registry, now)
            out.append(ProfileDelete(anonymous_id))
        out.append(Handoff(user_id, anonymous_id, committed, s.version))
        return out


class _ContactShardLogic(_StageLogic[ContactItem, Output]):
    """Known contacts of one shard: merges hand-offs and applies routed events."""

    def on_batch(self, values: list[ContactItem]) -> tuple[Iterable[Output], bool]:
        out: list[Output] = []
        touched: dict[str, None] = {}
        s = self.s
        now = s.now()
        for item in values:
            if isinstance(item, ShardPreview):
                out += self._preview(item, touched, now) or []
                continue
            if isinstance(item, ShardControl):
                out += self._switch(item, touched, now)
                continue
            if isinstance(item, ShardErase):
                out += self._erase(item, touched, now)
                continue
            # An item routed by another visitor shard may overtake the erase: the tombstone stops it here too.
            if s.tombstones and blocked(s.tombstones, (item.contact_id,) if isinstance(item, Handoff)
                                        else (item.contact_id, *event_ids(item.event))):
                s.ctx.count("erased_events_dropped")
                if isinstance(item, Routed):
                    out.append(stopped(item.event, event_ids(item.event), now))
                continue
            if item.version > s.version:
                shard = s.shard or shard_key(item.contact_id, self.contact_shards)
                out += self._switch(ShardControl(item.version, shard), touched, now)
            contact_id = item.contact_id
            if isinstance(item, Handoff):
                if s.change(contact_id, item, now):
                    touched[contact_id] = None
                continue
            if s.change(contact_id, item.event, now):
                touched[contact_id] = None
                event = item.event
                email = event.traits.get("email") if isinstance(event, Identify) else None
                if isinstance(email, str) and email and email != contact_id and proved(event):
                    out.append(AliasWrite(email.lower(), contact_id))
        if touched and self.track_activity:
            out.append(ContactsSeen(tuple(touched), now))
        out += s.emit(touched, now)
        s.settle()
        out += s.drain()
        return out, StatefulBatchLogic.RETAIN


def visitor_logic(config: ContactConfig, loader: ConfigLoader, now: Callable[[], float] = wall_clock,
                  ) -> Callable[[bytes | None], _VisitorShardLogic]:
    """Builder of the visitor stage's logic (one per contact shard)."""
    settings = config.shard_settings()
    return lambda resume: _VisitorShardLogic(ContactShard(settings, loader, now, resume, anonymous=True),
                                             config.contact_shards, config.track_activity)


def contact_logic(config: ContactConfig, loader: ConfigLoader, now: Callable[[], float] = wall_clock,
                  ) -> Callable[[bytes | None], _ContactShardLogic]:
    """Builder of the contact stage's logic (one per contact shard)."""
    settings = config.shard_settings()
    return lambda resume: _ContactShardLogic(ContactShard(settings, loader, now, resume, anonymous=False),
                                             config.contact_shards, config.track_activity)
