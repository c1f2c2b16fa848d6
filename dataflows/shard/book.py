"""The contacts of one contact shard and their timers: a store with commit and rollback.

Both stateful stages (anonymous visitors and known contacts) keep their
contacts in a `ContactBook`. Every contact has a *committed* form, its
msgpack encoding as of the end of the last activation that changed it;
recently used contacts are also kept decoded (hot), everyone else only
encoded (a live object costs several KB per contact, its encoding about
600 bytes, so 10⁶ contacts fit in memory).

An activation changes hot objects in place and then commits each changed
contact (encodes it). If a step fails half-way, `rollback` puts the
committed form back, so a failure can never leave a contact half-changed,
and a contact that cannot be encoded is caught at the step that made it so
— never later, in a snapshot that would then fail at every epoch. Snapshots
and cooling down copy committed encodings and encode nothing.

Timers: one min-heap of deadlines with at most one live entry per contact.
"""

from __future__ import annotations

import heapq

from dataflows.shard.contact import ContactCore, Registry


class ContactBook:
    """Contacts of one shard: committed encodings, a hot decoded subset, and a deadline heap."""

    def __init__(self, registry: Registry, anonymous: bool, hot_limit: int = 64) -> None:
        self.registry = registry
        self.anonymous = anonymous
        self.hot_limit = hot_limit
        self._hot: dict[str, ContactCore] = {}  # least recently used first
        self._encoded: dict[str, bytes] = {}  # committed form of every contact
        self._dirty: dict[str, None] = {}  # fetched since their last commit, in order
        self._timers: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._encoded) + sum(1 for c in self._hot if c not in self._encoded)

    # ---- snapshots -------------------------------------------------------------

    def restore(self, encoded: dict[str, bytes], deadlines: dict[str, float]) -> None:
        """Load a snapshot: every contact committed and cold, every deadline re-armed."""
        self._encoded.update(encoded)
        for contact_id, due in deadlines.items():
            self._arm(contact_id, due)

    def encoded(self) -> dict[str, bytes]:
        """Every contact's committed form (for a snapshot, between activations)."""
        return dict(self._encoded)

    def deadlines(self) -> dict[str, float]:
        """Every contact's pending deadline (for a snapshot)."""
        return dict(self._scheduled)

    # ---- reading and changing ----------------------------------------------------

    def get(self, contact_id: str) -> ContactCore | None:
        """The contact, made hot (most recently used) and marked as possibly changing, or None."""
        state = self._hot.pop(contact_id, None)
        if state is None:
            raw = self._encoded.get(contact_id)
            if raw is None:
                return None
            state = self.registry.decode(raw)
        self._hot[contact_id] = state
        self._dirty[contact_id] = None
        return state

    def peek(self, contact_id: str) -> ContactCore | None:
        """The contact for reading only: neither made hot nor marked as changed (a segment preview)."""
        state = self._hot.get(contact_id)
        if state is not None:
            return state
        raw = self._encoded.get(contact_id)
        return None if raw is None else self.registry.decode(raw)

    def get_or_create(self, contact_id: str) -> ContactCore:
        """The contact, or a new one (known contacts are their own user id)."""
        state = self.get(contact_id)
        if state is None:
            state = self.registry.new(contact_id, None if self.anonymous else contact_id)
            self._hot[contact_id] = state
            self._dirty[contact_id] = None
        return state

    def commit(self, state: ContactCore) -> None:
        """Make the contact's current state its committed form; raises when it cannot be encoded."""
        self._encoded[state.contact_id] = self.registry.encode(state)
        self._dirty.pop(state.contact_id, None)

    def committed_count(self) -> int:
        """How many contacts the book holds once an activation has settled (each is committed then)."""
        return len(self._encoded)

    def committed(self, contact_id: str) -> bytes | None:
        """The contact's committed form, or None for a contact created since."""
        return self._encoded.get(contact_id)

    def rollback(self, contact_id: str) -> ContactCore | None:
        """Undo every change since the contact's last commit; None (and gone) if it was new."""
        self._hot.pop(contact_id, None)
        self._dirty.pop(contact_id, None)
        raw = self._encoded.get(contact_id)
        if raw is None:
            self._scheduled.pop(contact_id, None)
            return None
        state = self._hot[contact_id] = self.registry.decode(raw)
        return state

    def replace(self, state: ContactCore) -> None:
        """Put `state` in place of the contact's current one (it counts as changed)."""
        self._hot.pop(state.contact_id, None)
        self._hot[state.contact_id] = state
        self._dirty[state.contact_id] = None

    def uncommitted(self) -> list[str]:
        """Contacts fetched since their last commit."""
        return list(self._dirty)

    def all_ids(self) -> list[str]:
        """Every contact id (hot ones first)."""
        return list(dict.fromkeys([*self._hot, *self._encoded]))

    def pop(self, contact_id: str) -> ContactCore | None:
        """Remove a contact (handed off or purged) and return it; its heap entry goes stale."""
        state = self.get(contact_id)
        self._hot.pop(contact_id, None)
        self._encoded.pop(contact_id, None)
        self._dirty.pop(contact_id, None)
        self._scheduled.pop(contact_id, None)
        return state

    def cool_down(self) -> None:
        """Drop the least recently used decoded contacts until the hot set fits its limit.

        Only between activations: their committed form is current then.
        """
        hot = self._hot
        excess = len(hot) - self.hot_limit
        if excess <= 0:
            return
        # An uncommitted change is never dropped (there are none between activations).
        for contact_id in [c for c in list(hot)[:excess + len(self._dirty)] if c not in self._dirty][:excess]:
            del hot[contact_id]

    # ---- timers ----------------------------------------------------------------

    def schedule(self, state: ContactCore) -> None:
        """Keep at most one live heap entry per contact, at its earliest deadline."""
        if state.due_at is not None:
            self._arm(state.contact_id, state.due_at)

    def _arm(self, contact_id: str, due: float) -> None:
        current = self._scheduled.get(contact_id)
        if current is None or due < current:
            self._scheduled[contact_id] = due
            heapq.heappush(self._timers, (due, contact_id))

    def next_due(self) -> float | None:
        """The earliest deadline (possibly stale: it may fire for nothing)."""
        return self._timers[0][0] if self._timers else None

    def due_ids(self, now: float) -> list[str]:
        """Contacts whose deadline has passed (each once), removed from the heap."""
        due: list[str] = []
        while self._timers and self._timers[0][0] <= now:
            at, contact_id = heapq.heappop(self._timers)
            if self._scheduled.get(contact_id) != at:
                continue  # superseded by an earlier deadline, or contact gone
            del self._scheduled[contact_id]
            due.append(contact_id)
        return due

