"""A contact's part of the workflows: its runs, its entries, what it was last seen as, what it was sent.

Kept small and flat (it is in every snapshot): one `Run` per workflow the
contact is inside, one `Entries` per workflow it ever entered (for re-entry
rules and for numbering occurrences, which action ids derive from), the last
message time per channel (the frequency cap), and the values change
triggers compare against.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

MAX_LOG: Final = 20
MAX_TRIGGER_BYTES: Final = 4096
"""The most of an entering event's properties a run keeps for its actions (JSON bytes)."""


def trigger_data(properties: dict[str, Any]) -> dict[str, Any]:
    """What a run keeps of the event that entered it: all its properties, or, past
    `MAX_TRIGGER_BYTES`, only the short top-level ones (ids, amounts, names) — so
    100 000 waiting contacts cost kilobytes each at most, whatever events carry."""
    if len(msgspec.json.encode(properties)) <= MAX_TRIGGER_BYTES:
        return properties
    return {k: v for k, v in properties.items()
            if isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) <= 200)}


class Run(msgspec.Struct, array_like=True, gc=False):
    """The contact inside one workflow version: at `step`, ready to go on or waiting until `due`."""

    workflow: str
    version: int
    occurrence: int
    step: str
    entered_at: float
    step_since: float
    hops: int = 0
    ready: bool = True
    due: float | None = None
    waiting: bool = False
    branch: str | None = None
    # The properties of the event that entered the contact (bounded: `trigger_data`), for its actions.
    trigger: dict[str, Any] | None = None


class Entries(msgspec.Struct, array_like=True, gc=False):
    """How often, and when last, the contact entered a workflow; `marker` names what entered it last."""

    count: int = 0
    last_at: float = 0.0
    marker: str = ""


class LogEntry(msgspec.Struct, array_like=True, gc=False):
    """One recent action and what became of it (queued, held, skipped)."""

    at: float
    workflow: str
    step: str
    outcome: str
    action_id: str | None = None
    reason: str | None = None


class Flows(msgspec.Struct, array_like=True):
    """The workflows part of a contact."""

    runs: dict[str, Run] = msgspec.field(default_factory=dict)
    entries: dict[str, Entries] = msgspec.field(default_factory=dict)
    sent: dict[str, float] = msgspec.field(default_factory=dict)
    # Entries asked for since the last evaluation: (workflow id, marker, the entering event's data,
    # how many of `later` came before it).
    pending: list[tuple[str, str, dict[str, Any] | None, int]] = msgspec.field(default_factory=list)
    # Events applied after an entry was asked for in this activation: the new run meets them, in
    # order, once it exists (a goal, an unsubscribe, an awaited event in the same batch). Emptied by
    # every evaluation, so never in a snapshot.
    later: list[Any] = msgspec.field(default_factory=list)
    # Stats to count at the next evaluation (goals met by an event): (workflow id, counter, amount).
    notes: list[tuple[str, str, int]] = msgspec.field(default_factory=list)
    observed: bool = False
    seen_score: float = 0.0
    seen_temperature: str = ""
    seen_stage: str = ""
    seen_segments: list[str] = msgspec.field(default_factory=list)
    unsubscribed: bool = False
    log: list[LogEntry] = msgspec.field(default_factory=list)
    # A step changed the contact itself: evaluate again at once, so segments see the change.
    recheck: bool = False

    def note(self, workflow_id: str, counter: str, amount: int = 1) -> None:
        """Count `counter` at the next evaluation (where no runner is at hand)."""
        self.notes.append((workflow_id, counter, amount))

    def unpark(self, run: Run) -> None:
        """`run` stops waiting at its step: the `waiting:<step>` gauge goes down (see `Runner.advance`)."""
        if not run.ready:
            self.note(run.workflow, f"waiting:{run.step}", -1)
            run.ready = True

    def remember(self, entry: LogEntry) -> None:
        """Keep `entry` among the last `MAX_LOG`."""
        self.log.append(entry)
        if len(self.log) > MAX_LOG:
            del self.log[:-MAX_LOG]
