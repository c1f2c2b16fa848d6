"""Per contact: the products it interacted with lately, and what is new for the products stage.

A contact's recent interactions — viewed (`Product Viewed`), added
(`Product Added`) or bought (each product of an `Order Completed`) — are
kept oldest first as parallel columns. A product that joins the contact's
window of its relation (a session of views; a basket of adds and buys) is
an `Interaction` paired with every product already in that window; a
product already there is only refreshed, so a product viewed five times
in a session counts once, as in item-based collaborative filtering.

Work is bounded per contact, as in Schelter et al. (SSDBM 2019): at most
`max_interactions` interactions count per basket window — past that, the
contact's new interactions are not counted at all (bots and heavy users
are down-sampled) — so one interaction pairs with at most that many
products. Entries older than both windows are dropped.

The interactions of an activation are emitted once, by `evaluate`, as one
`ProductActivity`; they wait in `pending` until then (always empty in a
committed contact). A visitor's history joins its known contact's on
identify; nothing is counted twice, since pairs were counted when made.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec

from dataflows.capabilities.base import Capability, Context
from dataflows.recommendations.settings import RecsSettings
from dataflows.recommendations.signals import BASKET, VIEW, Interaction, ProductActivity
from state import events as ev
from state.catalog import LearnedFields, learned_from
from state.events import Event, Track, product_of

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView
    from dataflows.io.outputs import Output

MAX_ORDER_LINES: Final = 100
"""Products of one order counted (an order listing more is a bulk import, not a basket)."""
MAX_PRODUCT_ID: Final = 200
PRODUCT_EVENTS: Final = frozenset({ev.PRODUCT_VIEWED, ev.PRODUCT_ADDED, ev.ORDER_COMPLETED})


class RecentProducts(msgspec.Struct, array_like=True):
    """A contact's counted interactions, oldest first, and those not yet sent to the products stage."""

    product: list[str] = msgspec.field(default_factory=list)
    relation: list[int] = msgspec.field(default_factory=list)
    at: list[float] = msgspec.field(default_factory=list)
    pending: list[Interaction] = msgspec.field(default_factory=list)


def interactions_in(event: Event) -> Iterator[tuple[int, str, LearnedFields | None]]:
    """(relation, product id, what the event says about it) for each product an event interacts with."""
    if not isinstance(event, Track):
        return
    name = event.event
    props = event.properties
    if name == ev.PRODUCT_VIEWED or name == ev.PRODUCT_ADDED:
        product = product_of(props)
        if _usable(product):
            assert product is not None
            yield (VIEW if name == ev.PRODUCT_VIEWED else BASKET), product, learned_from(props)
    elif name == ev.ORDER_COMPLETED:
        lines = props.get("products")
        if isinstance(lines, list):
            for line in lines[:MAX_ORDER_LINES]:
                if isinstance(line, dict) and _usable(product := product_of(line)):
                    assert product is not None
                    yield BASKET, product, learned_from(line)


def _usable(product: str | None) -> bool:
    # Top-level ids are bounded at ingest; ids inside an order's `products` are not.
    return product is not None and len(product) <= MAX_PRODUCT_ID and product.isprintable()


def record(part: RecentProducts, relation: int, product: str, at: float, learned: LearnedFields | None,
           settings: RecsSettings) -> Interaction | None:
    """Fold one interaction into the contact's recent products; the `Interaction` to count, if new."""
    horizon = at - settings.window_s(relation)
    products, relations, times = part.product, part.relation, part.at
    partners: list[str] = []
    for k in range(len(times) - 1, -1, -1):  # most recent first
        if times[k] <= horizon:  # sorted by time: everything before is older still
            break
        if relations[k] != relation:
            continue
        if products[k] == product:  # already in the window: refreshed, not counted again
            if at > times[k]:
                _remove(part, k)
                _insert(part, product, relation, at)
            return None
        if len(partners) < settings.max_interactions:
            partners.append(products[k])
    cap_horizon = at - settings.basket_window_s
    if len(times) - bisect_right(times, cap_horizon) >= settings.max_interactions:
        return None  # this contact has counted its share for now
    _insert(part, product, relation, at)
    _prune(part, settings)
    return Interaction(relation, product, at, tuple(partners), learned)


def _remove(part: RecentProducts, k: int) -> None:
    del part.product[k], part.relation[k], part.at[k]


def _insert(part: RecentProducts, product: str, relation: int, at: float) -> None:
    times = part.at
    if not times or at >= times[-1]:
        times.append(at)
        part.product.append(product)
        part.relation.append(relation)
        return
    i = bisect_right(times, at)
    times.insert(i, at)
    part.product.insert(i, product)
    part.relation.insert(i, relation)


def _prune(part: RecentProducts, settings: RecsSettings) -> None:
    """Drop entries no window can pair with any more, and the oldest beyond the cap."""
    times = part.at
    keep_s = max(settings.view_window_s, settings.basket_window_s)
    drop = bisect_right(times, times[-1] - keep_s) if times else 0
    drop = max(drop, len(times) - settings.max_interactions)
    if drop > 0:
        del part.product[:drop], part.relation[:drop], part.at[:drop]


def merge_recent(into: RecentProducts, other: RecentProducts, settings: RecsSettings) -> None:
    """Fold a visitor's recent products into its known contact's (both already counted)."""
    if not other.at:
        return
    rows = sorted(zip(into.at + other.at, into.product + other.product, into.relation + other.relation,
                      strict=True), key=lambda row: row[0])
    into.at = [r[0] for r in rows]
    into.product = [r[1] for r in rows]
    into.relation = [r[2] for r in rows]
    _prune(into, settings)


class RecommendationsCapability(Capability[RecentProducts]):
    """Turns a contact's product views, adds and orders into co-occurrence signals for the products stage."""

    name = "recent_products"
    part = RecentProducts

    def __init__(self, settings: RecsSettings | None = None) -> None:
        self.settings = settings or RecsSettings()

    def apply(self, part: RecentProducts, event: Event, ctx: Context) -> None:
        settings = self.settings
        # Called for every event of every contact: most are not about products, and leave at once.
        if not settings.enabled or not isinstance(event, Track) or event.event not in PRODUCT_EVENTS:
            return
        for relation, product, learned in interactions_in(event):
            found = record(part, relation, product, ctx.at, learned, settings)
            if found is not None:
                part.pending.append(found)

    def merge(self, into: RecentProducts, other: RecentProducts, ctx: Context) -> None:
        merge_recent(into, other, self.settings)

    def evaluate(self, part: RecentProducts, view: StateView) -> Sequence[Output]:
        if not part.pending:
            return ()
        activity = ProductActivity(tuple(part.pending))
        part.pending.clear()
        return (activity,)


def configured(capabilities: Sequence[Capability[Any]], settings: RecsSettings) -> tuple[Capability[Any], ...]:
    """The registry's capabilities with this one built from deployment settings (same place, same name).

    A registry that does not list it (one built by hand) gets it at the end,
    where a new part must go for older snapshots to decode.
    """
    mine = RecommendationsCapability(settings)
    if not any(isinstance(c, RecommendationsCapability) for c in capabilities):
        return (*capabilities, mine)
    return tuple(mine if isinstance(c, RecommendationsCapability) else c for c in capabilities)
