"""The per-contact stateful operator: every event updates its contact's state.

State is keyed by *contact shard* (a stable hash of the contact id into a
bounded number of virtual shards), not by contact: each Bytewax key holds the
contacts of its shard and one min-heap of their deadlines. This keeps the two
costs that grow with keys in Bytewax bounded at 10⁵–10⁶ contacts: the scan
over keys with a pending timer on every activation, and recovery resume
time, which grows with the number of distinct keys ever stored. A shard's
snapshot is its contacts encoded to msgpack in one call.

Per activation each touched contact emits its profile once (coalesced), and
a decision push only when what a widget would show changed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zlib import crc32

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from dataflows.cart import apply_cart, check_cart_idle
from dataflows.contact_state import ContactState, to_profile
from dataflows.counters import apply_counters
from dataflows.outputs import DecisionPush, Output, ProfileWrite
from dataflows.scoring import points_for
from state.events import Event, Identify, event_time, routing_id
from state.profile import decisions_for, encode_profile
from state.shards import shard_of

MAX_ANONYMOUS_IDS: Final = 50
_snapshot_encoder: Final = msgspec.msgpack.Encoder()
_snapshot_decoder: Final = msgspec.msgpack.Decoder(list[ContactState])
_json: Final = msgspec.json.Encoder()


@dataclass(frozen=True)
class ContactConfig:
    """Tunables of the contact operator (all from settings)."""

    contact_shards: int = 256
    cart_idle_s: float = 30 * 60


def contact_id_of(event: Event) -> str:
    """Which contact an event belongs to (identity merge refines this later)."""
    return routing_id(event)


def _wall_clock() -> float:
    return datetime.now(UTC).timestamp()


class _ContactShardLogic(StatefulBatchLogic[Event, Output, bytes]):
    """The contacts of one contact shard, with their timers."""

    def __init__(self, config: ContactConfig, now: Callable[[], float], resume: bytes | None) -> None:
        self._config = config
        self._now = now
        self._contacts: dict[str, ContactState] = {}
        self._timers: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}
        if resume is not None:
            for state in _snapshot_decoder.decode(resume):
                self._contacts[state.contact_id] = state
                self._schedule(state)

    def on_batch(self, values: list[Event]) -> tuple[Iterable[Output], bool]:
        touched: dict[str, ContactState] = {}
        for event in values:
            contact_id = contact_id_of(event)
            state = self._contacts.get(contact_id)
            if state is None:
                state = self._contacts[contact_id] = ContactState(contact_id=contact_id)
            if not state.remember(crc32((event.message_id or "").encode())):
                continue
            self._apply(state, event)
            touched[contact_id] = state
        return self._emit(touched.values()), StatefulBatchLogic.RETAIN

    def _apply(self, state: ContactState, event: Event) -> None:
        at = event_time(event).timestamp()
        if not state.first_seen or at < state.first_seen:
            state.first_seen = at
        state.last_seen = max(state.last_seen, at)
        anonymous_id = event.anonymous_id
        if anonymous_id and anonymous_id not in state.anonymous_ids and (
                len(state.anonymous_ids) < MAX_ANONYMOUS_IDS):
            state.anonymous_ids.append(anonymous_id)
        if isinstance(event, Identify):
            state.user_id = event.user_id or state.user_id
            state.traits.update(event.traits)
        apply_counters(state, event)
        apply_cart(state, event, at, self._config.cart_idle_s)
        state.score += points_for(event)
        state.updated_at = self._now()
        self._schedule(state)

    def on_notify(self) -> tuple[Iterable[Output], bool]:
        now = self._now()
        touched: list[ContactState] = []
        while self._timers and self._timers[0][0] <= now:
            due, contact_id = heapq.heappop(self._timers)
            if self._scheduled.get(contact_id) != due:
                continue  # superseded by an earlier deadline
            del self._scheduled[contact_id]
            state = self._contacts.get(contact_id)
            if state is None:
                continue
            if check_cart_idle(state, now, self._config.cart_idle_s):
                state.updated_at = now
                touched.append(state)
            self._schedule(state)
        return self._emit(touched), StatefulBatchLogic.RETAIN

    def _schedule(self, state: ContactState) -> None:
        """Keep at most one live heap entry per contact, at its earliest deadline."""
        due = state.due_at
        if due is None:
            return
        current = self._scheduled.get(state.contact_id)
        if current is None or due < current:
            self._scheduled[state.contact_id] = due
            heapq.heappush(self._timers, (due, state.contact_id))

    def notify_at(self) -> datetime | None:
        if not self._timers:
            return None
        return datetime.fromtimestamp(self._timers[0][0], UTC)

    def snapshot(self) -> bytes:
        return _snapshot_encoder.encode(list(self._contacts.values()))

    def _emit(self, states: Iterable[ContactState]) -> list[Output]:
        out: list[Output] = []
        for state in states:
            profile = to_profile(state)
            out.append(ProfileWrite(state.contact_id, encode_profile(profile)))
            if state.anonymous_ids:
                decision = decisions_for(profile)
                digest = crc32(_json.encode((decision.temperature, decision.segments, decision.popups)))
                if digest != state.pushed_digest:
                    state.pushed_digest = digest
                    ids = (*state.anonymous_ids, *((state.user_id,) if state.user_id else ()))
                    out.append(DecisionPush(ids, _json.encode(decision)))
        return out


@operator
def contact_state(
    step_id: str,
    up: Stream[Event],
    config: ContactConfig,
    now: Callable[[], float] = _wall_clock,
) -> Stream[Output]:
    """Apply each event to its contact's state; emit what must be written."""
    keyed = op.key_on("by_contact_shard", up,
                      lambda event: str(shard_of(contact_id_of(event), config.contact_shards)))

    def build(resume: bytes | None) -> _ContactShardLogic:
        return _ContactShardLogic(config, now, resume)

    outputs = op.stateful_batch("contacts", keyed, build)
    return op.map("unkey", outputs, lambda key_output: key_output[1])
