"""The contacts of one contact shard, their timers, and what they emit.

Both stateful stages (anonymous visitors and known contacts) keep their
contacts in a `ContactBook`: recently used contacts as live objects (hot),
everyone else as their msgpack encoding (cold), plus one min-heap of
deadlines with at most one live entry per contact. A live Python object
costs several KB per contact and its encoding about 600 bytes, so a
dataflow holding 10⁶ contacts stays within memory; the price is a decode
(a few µs) when a cold contact has an event or a deadline.

Snapshots are the encodings (hot contacts are encoded then) and the
deadlines, so resuming decodes nobody until they are needed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Final
from zlib import crc32

import msgspec

from dataflows.contact_state import ContactState
from dataflows.evaluation import evaluate
from dataflows.live_config import LiveConfig
from dataflows.outputs import DecisionPush, Output, ProfileDelete, ProfileWrite, SegmentChange
from state.profile import decisions_for, encode_profile

_state_encoder: Final = msgspec.msgpack.Encoder()
_state_decoder: Final = msgspec.msgpack.Decoder(ContactState)
_states_decoder: Final = msgspec.msgpack.Decoder(list[ContactState])
_json: Final = msgspec.json.Encoder()


def encode_states(states: Iterable[ContactState]) -> bytes:
    """Contact states → msgpack (hand-offs between stages)."""
    return _state_encoder.encode(list(states))


def decode_states(raw: bytes) -> list[ContactState]:
    """msgpack → contact states."""
    return _states_decoder.decode(raw)


class ContactBook:
    """Contacts of one shard, hot or cold, with a heap of their next deadlines."""

    def __init__(self, cart_idle_s: float, anonymous: bool, hot_limit: int = 64) -> None:
        self.cart_idle_s = cart_idle_s
        self.anonymous = anonymous
        self.hot_limit = hot_limit
        self._hot: dict[str, ContactState] = {}  # least recently used first
        self._cold: dict[str, bytes] = {}
        self._timers: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._hot) + len(self._cold)

    def restore(self, encoded: dict[str, bytes], deadlines: dict[str, float]) -> None:
        """Load a snapshot: every contact cold, every deadline re-armed."""
        self._cold.update(encoded)
        for contact_id, due in deadlines.items():
            self._arm(contact_id, due)

    def encoded(self) -> dict[str, bytes]:
        """Every contact's encoding (for a snapshot)."""
        snapshot = dict(self._cold)
        for contact_id, state in self._hot.items():
            snapshot[contact_id] = _state_encoder.encode(state)
        return snapshot

    def deadlines(self) -> dict[str, float]:
        """Every contact's pending deadline (for a snapshot)."""
        return dict(self._scheduled)

    def get(self, contact_id: str) -> ContactState | None:
        """The contact, made hot (most recently used), or None."""
        state = self._hot.pop(contact_id, None)
        if state is None:
            raw = self._cold.pop(contact_id, None)
            if raw is None:
                return None
            state = _state_decoder.decode(raw)
        self._hot[contact_id] = state
        return state

    def get_or_create(self, contact_id: str) -> ContactState:
        state = self.get(contact_id)
        if state is None:
            state = self._hot[contact_id] = ContactState(contact_id=contact_id)
        return state

    def all_contacts(self) -> Iterator[ContactState]:
        """Every contact, each made hot in turn (a backfill); cool down afterwards."""
        for contact_id in list(self._hot) + list(self._cold):
            state = self.get(contact_id)
            if state is not None:
                yield state

    def pop(self, contact_id: str) -> ContactState | None:
        """Remove a contact (handed off or purged); its heap entry goes stale."""
        state = self.get(contact_id)
        self._hot.pop(contact_id, None)
        self._scheduled.pop(contact_id, None)
        return state

    def cool_down(self) -> None:
        """Encode the least recently used contacts until the hot set fits its limit.

        Only call between activations: a contact still referenced by the
        caller must not be encoded and then changed.
        """
        hot = self._hot
        while len(hot) > self.hot_limit:
            contact_id = next(iter(hot))
            self._cold[contact_id] = _state_encoder.encode(hot.pop(contact_id))

    def schedule(self, state: ContactState) -> None:
        """Keep at most one live heap entry per contact, at its earliest deadline."""
        if state.due_at is not None:
            self._arm(state.contact_id, state.due_at)

    def _arm(self, contact_id: str, due: float) -> None:
        current = self._scheduled.get(contact_id)
        if current is None or due < current:
            self._scheduled[contact_id] = due
            heapq.heappush(self._timers, (due, contact_id))

    def next_due(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def due_contacts(self, now: float) -> list[ContactState]:
        """Contacts whose deadline has passed (each once), removed from the heap."""
        due: list[ContactState] = []
        while self._timers and self._timers[0][0] <= now:
            at, contact_id = heapq.heappop(self._timers)
            if self._scheduled.get(contact_id) != at:
                continue  # superseded by an earlier deadline, or contact gone
            del self._scheduled[contact_id]
            state = self.get(contact_id)
            if state is not None:
                due.append(state)
        return due

    def emit(self, states: Iterable[ContactState], live: LiveConfig, now: float) -> list[Output]:
        """Evaluate each contact at `now`; its profile, segment changes and decision push."""
        out: list[Output] = []
        for state in states:
            state.updated_at = now
            result = evaluate(state, live, now, self.cart_idle_s, self.anonymous)
            self.schedule(state)
            contact_id = state.contact_id
            moves = [(s, True) for s in result.entered] + [(s, False) for s in result.exited]
            for segment_id, entered in moves:
                state.segment_changes += 1
                out.append(SegmentChange(f"{contact_id}:{state.segment_changes}", contact_id, segment_id,
                                         entered, now))
            out.append(ProfileWrite(contact_id, encode_profile(result.profile)))
            if state.anonymous_ids:
                decision = decisions_for(result.profile)
                digest = crc32(_json.encode((decision.temperature, decision.segments, decision.popups,
                                             decision.cart_value)))
                if digest != state.pushed_digest:
                    state.pushed_digest = digest
                    ids = (*state.anonymous_ids, *((state.user_id,) if state.user_id else ()))
                    out.append(DecisionPush(ids, _json.encode(decision)))
        return out

    def purge(self, state: ContactState) -> list[Output]:
        """Forget a contact: its profile and its segment memberships go too."""
        self.pop(state.contact_id)
        return [*leave_segments(state, state.updated_at), ProfileDelete(state.contact_id)]


def leave_segments(state: ContactState, at: float) -> list[Output]:
    """Exits from every segment a contact that ceases to exist (purged, merged) was in."""
    out: list[Output] = []
    for segment_id in state.segments:
        state.segment_changes += 1
        out.append(SegmentChange(f"{state.contact_id}:{state.segment_changes}", state.contact_id,
                                 segment_id, False, at))
    state.segments = []
    return out
