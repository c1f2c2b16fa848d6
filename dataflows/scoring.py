"""A first lead score: points per kind of event.

Rules as data, decay and thresholds per contact group come with the live
state capability; this table gives every contact a meaningful score from
the first event.
"""

from __future__ import annotations

from typing import Final

from state import events as ev
from state.events import Event, Identify, Page, Screen, Track

DEFAULT_POINTS: Final[dict[str, float]] = {
    "page": 1.0,
    ev.PRODUCT_VIEWED: 2.0,
    ev.PRODUCT_ADDED: 5.0,
    ev.CHECKOUT_STARTED: 10.0,
    ev.ORDER_COMPLETED: 20.0,
    ev.SIGNED_UP: 15.0,
    ev.FORM_SUBMITTED: 10.0,
    ev.EMAIL_OPENED: 1.0,
    ev.EMAIL_LINK_CLICKED: 3.0,
}


def points_for(event: Event, table: dict[str, float] = DEFAULT_POINTS) -> float:
    """How many points an event is worth under the default table."""
    if isinstance(event, Page | Screen):
        return table.get("page", 0.0)
    if isinstance(event, Track):
        return table.get(event.event, 0.0)
    if isinstance(event, Identify):
        return table.get("identify", 0.0)
    return 0.0
