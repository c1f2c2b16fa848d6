"""Segments and the journey stage of one contact, re-derived whenever it changes.

Membership is not stored per event: after a contact's events (or a
deadline), `evaluate` recomputes the stage and every segment from the live
state through the `ContactView`, in the order the compiled plan gives
(segments the stage rules need, the stage, the rest), and emits a
`SegmentChange` for each segment entered or left. `due` arms the contact's
timer at the next moment a time-driven condition may flip, so a contact
leaves "viewed shoes 3× in 7 d" the instant the oldest view falls out of
the window, with no new event and no cron rebuild.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from dataflows.capabilities.base import Capability
from dataflows.io.outputs import Output
from dataflows.rules.conditions import DEFAULT_STAGE, changes, evaluate_condition, next_flip, stage_of
from state.segment_changes import SegmentChange

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView


class SegmentState(msgspec.Struct, array_like=True, gc=False):
    """The segments the contact is in (sorted), its stage, and how many segment changes it had."""

    segments: list[str] = msgspec.field(default_factory=list)
    stage: str = DEFAULT_STAGE
    # Numbers the contact's changes, so change ids are the same under replay.
    changes: int = 0


def _change(part: SegmentState, contact_id: str, segment_id: str, entered: bool, at: float) -> SegmentChange:
    part.changes += 1
    return SegmentChange(change_id=f"{contact_id}:{part.changes}", contact_id=contact_id, segment_id=segment_id,
                         entered=entered, at=at)


class SegmentsCapability(Capability[SegmentState]):
    """Live segment membership and journey stage; the profile's `segments` and `stage`."""

    name = "segments"
    part = SegmentState

    def evaluate(self, part: SegmentState, view: StateView) -> Sequence[Output]:
        compiled = view.live.segments
        members: dict[str, bool] = {}
        view.members = members
        for segment in compiled.before_stage:
            members[segment.id] = evaluate_condition(segment.when, view, members)
        part.stage = stage_of(compiled.stages, view, members)
        for segment in compiled.after_stage:
            members[segment.id] = evaluate_condition(segment.when, view, members)
        entered, exited = changes(set(part.segments), {sid for sid, member in members.items() if member})
        if not entered and not exited:
            return ()
        part.segments = sorted({*part.segments, *entered} - set(exited))
        contact_id = view.state.contact_id
        return [*(_change(part, contact_id, s, True, view.now) for s in entered),
                *(_change(part, contact_id, s, False, view.now) for s in exited)]

    def due(self, part: SegmentState, view: StateView) -> float | None:
        return next_flip(view.live.segments, view)

    def render(self, part: SegmentState, view: StateView) -> Mapping[str, Any]:
        return {"segments": list(part.segments), "stage": part.stage}

    def retire(self, part: SegmentState, contact_id: str, at: float) -> Sequence[Output]:
        exits = [_change(part, contact_id, segment_id, False, at) for segment_id in part.segments]
        part.segments = []
        return exits
