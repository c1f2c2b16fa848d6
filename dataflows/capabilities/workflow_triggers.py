"""Triggers read from the live state: segment changes, score crossings, temperature or stage changes,
an idle cart, inactivity, an anniversary, a loyalty milestone.

Event triggers are matched per event (`WorkflowsCapability.apply`); these
are checked at each evaluation against what the contact was last seen as
(`Flows.seen_*`), so a change fires once, when it happens. Time-driven ones
also name their next deadline (`deadline`), so they fire on time with no
event. Each entry carries a *marker* naming what caused it (the cart's last
change, the last activity, the year), so one cause enters once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dataflows.capabilities.cart import CartState
from dataflows.capabilities.messaging import contact_zone
from dataflows.capabilities.orders import OrderStats
from dataflows.capabilities.scoring import temperature_of
from dataflows.capabilities.windows import last_event_at
from dataflows.capabilities.workflow_state import Flows
from dataflows.rules.conditions import DEFAULT_STAGE, parse_date, recurrence
from state import events as ev
from state.workflows import (
    OnAnniversary,
    OnCartIdle,
    OnChange,
    OnInactivity,
    OnLoyalty,
    OnScore,
    OnSegment,
    Trigger,
    Workflow,
)

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView

ANNIVERSARY_GRACE_S = 86_400.0
"""An anniversary seen later than this after its moment (the contact came later) does not enter."""


def _marker(part: Flows, workflow: Workflow) -> str:
    entries = part.entries.get(workflow.id)
    return entries.marker if entries is not None else ""


def _cart_waiting(view: StateView) -> float | None:
    """When the idle cart last changed, if it is non-empty and no checkout came after."""
    cart: CartState = view.part("cart")
    if not cart.lines or cart.updated_at is None:
        return None
    checkout = last_event_at(view.part("windows"), ev.CHECKOUT_STARTED)
    return None if checkout is not None and checkout >= cart.updated_at else cart.updated_at


def _last_activity(view: StateView, trigger: OnInactivity) -> float | None:
    if not trigger.events:
        last_seen: float = view.state.last_seen
        return last_seen or None
    times = [last_event_at(view.part("windows"), name) for name in trigger.events]
    return max((t for t in times if t is not None), default=None)


def _anniversary_moment(view: StateView, trigger: OnAnniversary, year: int) -> float | None:
    origin = parse_date(view.trait(trigger.field))
    if origin is None or year <= origin.year:
        return None
    tz = contact_zone(view.trait("timezone"), view.live.config.messaging)
    day = recurrence(origin, year)
    hours, minutes = (int(x) for x in trigger.at.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=tz).timestamp()


def state_entries(part: Flows, view: StateView, workflow: Workflow) -> Iterator[str]:
    """Markers of the entries the live state asks for now (usually none)."""
    trigger = workflow.trigger
    now = view.now
    if isinstance(trigger, OnSegment):
        segments: list[str] = view.part("segments").segments
        was, now_in = trigger.segment in part.seen_segments, trigger.segment in segments
        # A contact's first evaluation may enter a segment (it was in none), never leave one.
        if was != now_in and now_in == trigger.entered:
            yield "segment"
    elif isinstance(trigger, OnScore):  # a new contact's score starts at 0: its first points may cross
        score_before, score_after = part.seen_score, view.score()
        if (trigger.direction == "up" and score_before < trigger.threshold <= score_after) or (
                trigger.direction == "down" and score_before >= trigger.threshold > score_after):
            yield "score"
    elif isinstance(trigger, OnChange):
        if trigger.field == "temperature":  # a new contact starts as a contact with no events: score 0
            before = part.seen_temperature if part.observed else temperature_of(0.0, view.live.config.thresholds)
        else:
            before = part.seen_stage if part.observed else DEFAULT_STAGE
        after = view.temperature() if trigger.field == "temperature" else view.part("segments").stage
        if before != after and (not trigger.to or after in trigger.to):
            yield f"{trigger.field}:{after}"
    elif isinstance(trigger, OnCartIdle):
        since = _cart_waiting(view)
        if since is not None and now >= since + trigger.idle_s and _marker(part, workflow) != repr(since):
            yield repr(since)
    elif isinstance(trigger, OnInactivity):
        last = _last_activity(view, trigger)
        if last is not None and now >= last + trigger.for_s and _marker(part, workflow) != repr(last):
            yield repr(last)
    elif isinstance(trigger, OnAnniversary):
        if view.trait(trigger.field) is None:
            return  # most contacts have no such date: no calendar arithmetic for them
        year = datetime.fromtimestamp(now, UTC).year
        for candidate in (year - 1, year):
            moment = _anniversary_moment(view, trigger, candidate)
            if moment is not None and moment <= now < moment + ANNIVERSARY_GRACE_S \
                    and _marker(part, workflow) != str(candidate):
                yield str(candidate)
    elif isinstance(trigger, OnLoyalty):
        orders: OrderStats = view.part("orders")
        reached = (trigger.orders is not None and orders.orders >= trigger.orders) or (
            trigger.revenue is not None and orders.revenue >= trigger.revenue)
        if reached and _marker(part, workflow) != "reached":
            yield "reached"


def deadline(part: Flows, view: StateView, trigger: Trigger, workflow: Workflow) -> float | None:
    """When a time-driven trigger next fires with no new event, if it may."""
    now = view.now
    if isinstance(trigger, OnCartIdle):
        since = _cart_waiting(view)
        if since is not None and _marker(part, workflow) != repr(since):
            return since + trigger.idle_s
    elif isinstance(trigger, OnInactivity):
        last = _last_activity(view, trigger)
        if last is not None and _marker(part, workflow) != repr(last):
            return last + trigger.for_s
    elif isinstance(trigger, OnAnniversary):
        if view.trait(trigger.field) is None:
            return None
        year = datetime.fromtimestamp(now, UTC).year
        moments = [_anniversary_moment(view, trigger, y) for y in (year, year + 1)]
        future = [m for m in moments if m is not None and m > now]
        return min(future) if future else None
    return None


def observe(part: Flows, view: StateView) -> None:
    """Remember what the contact is now, for the next evaluation's change triggers."""
    part.observed = True
    part.seen_score = view.score()
    part.seen_temperature = view.temperature()
    part.seen_stage = view.part("segments").stage
    part.seen_segments = list(view.part("segments").segments)

