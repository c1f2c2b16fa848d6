"""A contact shard's answer to a segment count preview (`state.segment_preview`).

The tree is evaluated by `evaluate_condition`, the function saved segments
run, through the same `StateView`, over every contact the shard holds as
committed: so a preview counts what saving the segment would make members
(after its backfill), without changing anything. `InSegment` reads the
contact's stored memberships, as a saved segment evaluated after the
segments it depends on would.

Every stream carries a copy of the control, and the visitor stage copies it
to every shard: `Previews` makes a shard answer once per preview id and
ignores copies met after the preview expired (a replay after a crash).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dataflows.capabilities.view import StateView
from dataflows.io.outputs import PreviewCount
from dataflows.io.outputs import ShardPreview as ShardPreview
from dataflows.rules.conditions import evaluate_condition
from state.config import Condition
from state.segment_preview import PreviewAnswer, PreviewControl
from state.shards import shard_answer_field

if TYPE_CHECKING:
    from dataflows.shard.shard import ContactShard

log = logging.getLogger(__name__)


class Previews:
    """The preview ids a shard has answered (until they expire), so each is answered once."""

    def __init__(self) -> None:
        self._answered: dict[str, float] = {}

    def first_live_copy(self, control: PreviewControl, now: float) -> bool:
        """Whether this copy should be answered: not expired and not answered yet."""
        if self._answered:
            self._answered = {pid: exp for pid, exp in self._answered.items() if exp > now}
        if control.expires_at <= now or control.id in self._answered:
            return False
        self._answered[control.id] = control.expires_at
        return True


def count_matching(shard: ContactShard, when: Condition, now: float) -> PreviewAnswer:
    """How many of the shard's contacts `when` holds for at `now`; reads committed state, changes none."""
    live = shard.ctx.live
    settings = shard.ctx.settings
    matching = evaluated = failed = 0
    for contact_id in shard.book.all_ids():
        state: Any = shard.book.peek(contact_id)
        if state is None:
            continue
        evaluated += 1
        view = StateView(state, live, now, settings)
        segments = getattr(state, "segments", None)
        view.members = dict.fromkeys(getattr(segments, "segments", ()), True)
        try:
            matching += evaluate_condition(when, view, view.members)
        except Exception as exc:  # a contact the tree cannot be evaluated on counts as not matching
            failed += 1
            log.warning("segment preview could not evaluate a contact",
                        extra={"contact_id": contact_id, "error": repr(exc)})
    return PreviewAnswer(matching, evaluated, failed)


def answer_preview(shard: ContactShard, item: ShardPreview, now: float) -> PreviewCount:
    """The shard's answer to `item` (the caller checked `Previews.first_live_copy`)."""
    answer = count_matching(shard, item.control.when, now)
    return PreviewCount(item.control.id, shard_answer_field(shard.stage, item.shard), answer)
