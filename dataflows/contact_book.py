"""The contacts of one contact shard, their timers, and what they emit.

Both stateful stages (anonymous visitors and known contacts) keep their
contacts in a `ContactBook`: a dict of states plus one min-heap of their
deadlines, with at most one live heap entry per contact. Snapshots are the
states encoded to msgpack in one call; the heap is rebuilt from them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Final
from zlib import crc32

import msgspec

from dataflows.contact_state import ContactState
from dataflows.evaluation import evaluate
from dataflows.live_config import LiveConfig
from dataflows.outputs import DecisionPush, Output, ProfileDelete, ProfileWrite, SegmentChange
from state.profile import decisions_for, encode_profile

_states_encoder: Final = msgspec.msgpack.Encoder()
_states_decoder: Final = msgspec.msgpack.Decoder(list[ContactState])
_json: Final = msgspec.json.Encoder()


def encode_states(states: Iterable[ContactState]) -> bytes:
    """Contact states → msgpack (snapshots and hand-offs)."""
    return _states_encoder.encode(list(states))


def decode_states(raw: bytes) -> list[ContactState]:
    """msgpack → contact states."""
    return _states_decoder.decode(raw)


class ContactBook:
    """Contacts of one shard with a heap of their next deadlines."""

    def __init__(self, cart_idle_s: float, anonymous: bool) -> None:
        self.cart_idle_s = cart_idle_s
        self.anonymous = anonymous
        self.contacts: dict[str, ContactState] = {}
        self._timers: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}

    def restore(self, states: Iterable[ContactState]) -> None:
        """Load states from a snapshot and re-arm their deadlines."""
        for state in states:
            self.contacts[state.contact_id] = state
            self.schedule(state)

    def get_or_create(self, contact_id: str) -> ContactState:
        state = self.contacts.get(contact_id)
        if state is None:
            state = self.contacts[contact_id] = ContactState(contact_id=contact_id)
        return state

    def pop(self, contact_id: str) -> ContactState | None:
        """Remove a contact (handed off or purged); its heap entry goes stale."""
        self._scheduled.pop(contact_id, None)
        return self.contacts.pop(contact_id, None)

    def schedule(self, state: ContactState) -> None:
        """Keep at most one live heap entry per contact, at its earliest deadline."""
        due = state.due_at
        if due is None:
            return
        current = self._scheduled.get(state.contact_id)
        if current is None or due < current:
            self._scheduled[state.contact_id] = due
            heapq.heappush(self._timers, (due, state.contact_id))

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
            state = self.contacts.get(contact_id)
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
                digest = crc32(_json.encode((decision.temperature, decision.segments, decision.popups)))
                if digest != state.pushed_digest:
                    state.pushed_digest = digest
                    ids = (*state.anonymous_ids, *((state.user_id,) if state.user_id else ()))
                    out.append(DecisionPush(ids, _json.encode(decision)))
        return out

    def purge(self, state: ContactState) -> list[Output]:
        """Forget a contact: its profile and its segment memberships go too."""
        self.pop(state.contact_id)
        out: list[Output] = []
        for segment_id in state.segments:
            state.segment_changes += 1
            out.append(SegmentChange(f"{state.contact_id}:{state.segment_changes}", state.contact_id,
                                     segment_id, False, state.updated_at))
        out.append(ProfileDelete(state.contact_id))
        return out
