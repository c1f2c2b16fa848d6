"""Evaluating a contact at an instant: stage, segments, profile, next deadline.

Runs once per touched contact per activation (after all of its events in the
batch) and once per due timer, so its cost is paid per change, not per
event. The next deadline is the earliest moment at which anything the
contact shows could change with no new event: a window count dropping, a
segment leaf flipping, an absence rule firing, decay carrying the score
across a temperature edge or a `Score` condition, the cart going idle, or an
anonymous visitor's retention running out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from dataflows.cart import cart_due
from dataflows.contact_state import ContactState
from dataflows.live_config import LiveConfig
from dataflows.live_view import StateView
from dataflows.orders import order_summary
from dataflows.scoring import next_score_crossing, score_history, scoring_due
from dataflows.segments import changes, evaluate_condition, next_flip, stage_of
from dataflows.sessions import session_summary
from dataflows.windows import next_expiry, prune, window_summary
from state.profile import Flags, Profile


@dataclass(slots=True)
class Evaluation:
    """What changed for a contact, for the operator to emit."""

    profile: Profile
    entered: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)


def _moment(epoch_s: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_s, UTC) if epoch_s else None


def evaluate(state: ContactState, live: LiveConfig, now: float, cart_idle_s: float,
             anonymous: bool) -> Evaluation:
    """Re-derive stage and segments at `now`, schedule the next deadline, render the profile."""
    windows = live.config.windows
    prune(state.activity, now, live.retention_s, windows.max_log_entries)
    view = StateView(state, live, now)
    state.stage = stage_of(live.segments.stages, view)
    members: dict[str, bool] = {}
    for segment in live.segments.order:
        members[segment.id] = evaluate_condition(segment.when, view, members)
    now_in = {sid for sid, member in members.items() if member}
    entered, exited = changes(set(state.segments), now_in)
    if entered or exited:
        state.segments = sorted(now_in)
    view.members = members
    deadlines = [
        cart_due(state, cart_idle_s),
        scoring_due(state.scoring),
        next_score_crossing(state.scoring, live.score_thresholds, now, live.config),
        next_expiry(state.activity, windows.windows_s, now),
        next_flip(live.segments, view),
        state.last_seen + live.config.identity.anonymous_ttl_s if anonymous else None,
    ]
    state.due_at = min((d for d in deadlines if d is not None), default=None)
    return Evaluation(render_profile(state, view), entered, exited)


def render_profile(state: ContactState, view: StateView) -> Profile:
    """The public view of a contact, as the API serves it."""
    cart = list(state.cart.values())
    email = state.traits.get("email")
    config = view.live.config
    return Profile(
        contact_id=state.contact_id,
        anonymous_ids=list(state.anonymous_ids),
        user_id=state.user_id,
        email=email if isinstance(email, str) else None,
        traits=dict(state.traits),
        first_seen=_moment(state.first_seen),
        last_seen=_moment(state.last_seen),
        counters=state.counters.public(),
        cart=cart,
        cart_value=round(view.cart_value(), 2),
        cart_updated_at=_moment(state.cart_updated_at),
        score=round(view.score(), 3),
        temperature=view.temperature(),
        stage=state.stage,
        tags=list(state.tags),
        lists=list(state.lists),
        segments=list(state.segments),
        windows=_windows_for_profile(state, view),
        sessions=session_summary(state.session, view.now, config.windows),
        orders=order_summary(state.orders),
        rfm=view.rfm(),
        score_history=score_history(state.scoring)[-5:],
        late_events=state.late_events,
        config_version=config.version,
        extra=Flags(cart_abandoned=True) if state.cart_abandoned else None,
        updated_at=_moment(state.updated_at),
    )


def _windows_for_profile(state: ContactState, view: StateView) -> dict[str, dict[str, dict[str, int]]]:
    """Counts per window; top products only for the longest window, to keep profiles small."""
    windows_s = view.live.config.windows.windows_s
    return window_summary(state.activity, windows_s, view.now, top_products=5,
                          products_only_in=max(windows_s, default=None))
