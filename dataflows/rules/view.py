"""What segment conditions and stage rules may ask about a contact.

The segment evaluator reads a contact only through this protocol, so each
capability (windows, scoring, cart, RFM …) can keep its state in whatever
compact form suits it, and the evaluator can be tested against a plain fake.
"""

from __future__ import annotations

from typing import Protocol


class ContactView(Protocol):
    """A read-only view of one contact at one instant (`now`, epoch seconds)."""

    now: float

    def trait(self, name: str) -> object | None:
        """A custom field from identify, or None."""

    def has_tag(self, tag: str) -> bool:
        """Whether the contact carries `tag`."""

    def in_list(self, list_id: str) -> bool:
        """Whether the contact is an explicit member of `list_id`."""

    def score(self) -> float:
        """The decayed score at `now`."""

    def temperature(self) -> str:
        """cold / warm / hot from the score and the configured thresholds."""

    def stage(self) -> str:
        """The journey stage."""

    def window_count(self, dimension: str, value: str, window_s: float, event: str | None) -> int:
        """How many matching events happened in (now − window_s, now]."""

    def next_window_change(
        self, dimension: str, value: str, window_s: float, event: str | None,
    ) -> float | None:
        """When that count next drops without a new event (oldest match leaves), or None."""

    def last_event_at(self, event: str) -> float | None:
        """When `event` last happened (event time), or None if never."""

    def rfm(self) -> tuple[int, int, int]:
        """Recency, frequency and monetary scores 1–5 (0 when never ordered)."""

    def cart_value(self) -> float:
        """Current cart value (0 when empty)."""

    def cart_updated_at(self) -> float | None:
        """When the cart last changed, or None when empty."""

    def total(self, counter: str) -> float:
        """An all-time figure by name (orders, revenue, page_views, sessions …)."""

    def in_segment(self, segment_id: str) -> bool:
        """Membership of another segment, as evaluated in this same pass."""

    def utm_source(self) -> str | None:
        """The `utm_source` the current session came with, or None."""

    def page_url(self) -> str | None:
        """The URL of the latest page view, or None."""

    def workflow_step(self, workflow_id: str) -> str | None:
        """The step the contact is at in a workflow it is inside now, or None."""
