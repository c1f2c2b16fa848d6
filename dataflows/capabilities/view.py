"""A contact read at one instant: what conditions, deadlines and renderers may ask.

Segment conditions and stage rules read a contact only through the
`ContactView` protocol (`dataflows.rules.view`); this is its implementation
over the built-in capabilities' parts. Capabilities that need another's
part for their own figures (the counters show the orders' totals) use
`part(name)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from dataflows.capabilities.base import ContactSettings
from dataflows.capabilities.cart import CartState, cart_value
from dataflows.capabilities.counters import Tallies
from dataflows.capabilities.orders import OrderStats, order_summary
from dataflows.capabilities.scoring import ScoreState, current_score, temperature_of
from dataflows.capabilities.segments import SegmentState
from dataflows.capabilities.sessions import SessionState
from dataflows.capabilities.tags import TagState
from dataflows.capabilities.traits import Traits
from dataflows.capabilities.visit import Visit
from dataflows.capabilities.windows import ActivityLog, last_event_at, next_window_change, window_count
from dataflows.capabilities.workflow_state import Flows
from dataflows.rules.live_config import LiveConfig
from state.config import DAY
from state.rfm import rfm_score


class StateView:
    """A contact at `now` under one configuration version (implements `rules.view.ContactView`)."""

    def __init__(self, state: Any, live: LiveConfig, now: float, settings: ContactSettings) -> None:
        self.state = state
        self.live = live
        self.now = now
        self.settings = settings
        # Segment memberships decided so far in this evaluation (for `InSegment`).
        self.members: Mapping[str, bool] = {}
        self._score: float | None = None

    def part(self, name: str) -> Any:
        """Another capability's part, by its registered name."""
        return getattr(self.state, name)

    def trait(self, name: str) -> object | None:
        return cast("Traits", self.state.traits).values.get(name)

    def has_tag(self, tag: str) -> bool:
        return tag in cast("TagState", self.state.tags).tags

    def in_list(self, list_id: str) -> bool:
        return list_id in cast("TagState", self.state.tags).lists

    def score(self) -> float:
        if self._score is None:
            self._score = current_score(cast("ScoreState", self.state.scoring), self.now, self.live)
        return self._score

    def temperature(self) -> str:
        return temperature_of(self.score(), self.live.config.thresholds)

    def stage(self) -> str:
        return cast("SegmentState", self.state.segments).stage

    def window_count(self, dimension: str, value: str, window_s: float, event: str | None) -> int:
        return window_count(cast("ActivityLog", self.state.windows), dimension, value, window_s, event, self.now)

    def next_window_change(self, dimension: str, value: str, window_s: float, event: str | None) -> float | None:
        log = cast("ActivityLog", self.state.windows)
        return next_window_change(log, dimension, value, window_s, event, self.now)

    def last_event_at(self, event: str) -> float | None:
        return last_event_at(cast("ActivityLog", self.state.windows), event)

    def rfm(self) -> tuple[int, int, int]:
        orders = cast("OrderStats", self.state.orders)
        recency = None if orders.last_order_at is None else max(0.0, self.now - orders.last_order_at) / DAY
        return rfm_score(recency, orders.orders, orders.revenue, self.live.config.rfm)

    def cart_value(self) -> float:
        return cart_value(cast("CartState", self.state.cart))

    def cart_updated_at(self) -> float | None:
        cart = cast("CartState", self.state.cart)
        return cart.updated_at if cart.lines else None

    def total(self, counter: str) -> float:
        tallies = cast("Tallies", self.state.counters)
        if counter in Tallies.__struct_fields__:
            value = getattr(tallies, counter)
        elif counter == "sessions":
            value = cast("SessionState", self.state.sessions).count
        else:
            value = getattr(order_summary(cast("OrderStats", self.state.orders)), counter, None)
        return float(value) if isinstance(value, int | float) else 0.0

    def in_segment(self, segment_id: str) -> bool:
        return bool(self.members.get(segment_id, False))

    def utm_source(self) -> str | None:
        visit = cast("Visit", self.state.visit)
        if not visit.utm_source or visit.utm_at < cast("SessionState", self.state.sessions).started_at:
            return None  # seen in an earlier visit
        return visit.utm_source

    def page_url(self) -> str | None:
        return cast("Visit", self.state.visit).url or None

    def workflow_step(self, workflow_id: str) -> str | None:
        run = cast("Flows", self.state.workflows).runs.get(workflow_id)
        return None if run is None else run.step
