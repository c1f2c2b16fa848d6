"""What a changed contact tells the world: profile, segment changes, decision push.

Runs once per changed contact per activation, after all of its events (and
once per due timer), so its cost is paid per change, not per event. It
changes the contact only in what it derives (stage, segments, the change
counter, the pushed digest, the next deadline); the caller commits the
contact afterwards and arms its timer.
"""

from __future__ import annotations

from typing import Final
from zlib import crc32

import msgspec

from dataflows.contact_state import ContactState
from dataflows.evaluation import evaluate
from dataflows.live_config import LiveConfig
from dataflows.outputs import DecisionPush, Output, ProfileWrite, SegmentChange
from state.profile import decisions_for, encode_profile

_json: Final = msgspec.json.Encoder()


def emit_contact(state: ContactState, live: LiveConfig, now: float, cart_idle_s: float,
                 anonymous: bool) -> list[Output]:
    """Evaluate the contact at `now`; its segment changes, profile write and decision push."""
    state.updated_at = now
    result = evaluate(state, live, now, cart_idle_s, anonymous)
    contact_id = state.contact_id
    out: list[Output] = []
    moves = [(s, True) for s in result.entered] + [(s, False) for s in result.exited]
    for segment_id, entered in moves:
        state.segment_changes += 1
        out.append(SegmentChange(change_id=f"{contact_id}:{state.segment_changes}", contact_id=contact_id,
                                 segment_id=segment_id, entered=entered, at=now))
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


def leave_segments(state: ContactState, at: float) -> list[Output]:
    """Exits from every segment a contact that ceases to exist (purged, merged) was in."""
    out: list[Output] = []
    for segment_id in state.segments:
        state.segment_changes += 1
        out.append(SegmentChange(change_id=f"{state.contact_id}:{state.segment_changes}",
                                 contact_id=state.contact_id, segment_id=segment_id, entered=False, at=at))
    state.segments = []
    return out
