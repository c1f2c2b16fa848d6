"""`ContactView` over a contact's live state: what segments and stages read."""

from __future__ import annotations

from collections.abc import Mapping

from dataflows.contact_state import ContactState
from dataflows.live_config import LiveConfig
from dataflows.orders import order_summary
from dataflows.scoring import current_score, temperature_of
from dataflows.windows import last_event_at, next_window_change, window_count
from state.config import DAY
from state.rfm import rfm_score


class StateView:
    """A contact read at one instant, under one configuration version."""

    def __init__(self, state: ContactState, live: LiveConfig, now: float) -> None:
        self.state = state
        self.live = live
        self.now = now
        self.members: Mapping[str, bool] = {}
        self._score: float | None = None

    def trait(self, name: str) -> object | None:
        return self.state.traits.get(name)

    def has_tag(self, tag: str) -> bool:
        return tag in self.state.tags

    def in_list(self, list_id: str) -> bool:
        return list_id in self.state.lists

    def score(self) -> float:
        if self._score is None:
            self._score = current_score(self.state.scoring, self.now, self.live.config)
        return self._score

    def temperature(self) -> str:
        return temperature_of(self.score(), self.live.config.thresholds)

    def stage(self) -> str:
        return self.state.stage

    def window_count(self, dimension: str, value: str, window_s: float, event: str | None) -> int:
        return window_count(self.state.activity, dimension, value, window_s, event, self.now)

    def next_window_change(
        self, dimension: str, value: str, window_s: float, event: str | None,
    ) -> float | None:
        return next_window_change(self.state.activity, dimension, value, window_s, event, self.now)

    def last_event_at(self, event: str) -> float | None:
        return last_event_at(self.state.activity, event)

    def rfm(self) -> tuple[int, int, int]:
        orders = self.state.orders
        recency = None if orders.last_order_at is None else max(0.0, self.now - orders.last_order_at) / DAY
        return rfm_score(recency, orders.orders, orders.revenue, self.live.config.rfm)

    def cart_value(self) -> float:
        return sum(line.price * line.quantity for line in self.state.cart.values())

    def cart_updated_at(self) -> float | None:
        return self.state.cart_updated_at if self.state.cart else None

    def total(self, counter: str) -> float:
        counters = self.state.counters
        if hasattr(counters, counter):
            value = getattr(counters, counter)
            return float(value) if isinstance(value, int | float) else 0.0
        if counter == "sessions":
            return float(self.state.session.count)
        figure = getattr(order_summary(self.state.orders), counter, None)
        return float(figure) if isinstance(figure, int | float) else 0.0

    def in_segment(self, segment_id: str) -> bool:
        return bool(self.members.get(segment_id, False))
