"""What the benchmarks check the seeded shoppers' events against.

The shoppers themselves (`ShopperModel`: realistic funnels producing
tracker-exact Segment events) are product code, `attimo demo`'s, in
`api.demo.model`; they are named here too so that a benchmark imports what it
sends and what it checks from one place. `Tally` computes, independently of
Attimo's code, what every contact's counters must say after the events: the
benchmarks' correctness check.
"""

from __future__ import annotations

from typing import Any, Final

from api.demo.model import ShopperModel, catalog, encode

__all__ = ["COUNTERS", "ShopperModel", "Tally", "catalog", "encode"]

COUNTERS: Final = ("events", "page_views", "product_views", "cart_adds", "orders", "revenue")


class Tally:
    """What each contact's counters must be, computed plainly from what was sent.

    Identity as Attimo resolves it: an anonymous visitor is a contact of its
    own until an event carries both its anonymousId and a userId; from then
    on it is the user's contact, which owns everything the visitor did
    before and after (several devices of one user fold together). Events
    with only a userId count for the user. Revenue is summed with the same
    2-decimal rounding per order.
    """

    def __init__(self) -> None:
        self.rows: dict[str, list[float]] = {}
        self.links: dict[str, str] = {}
        self.events = 0

    def add(self, event: dict[str, Any]) -> None:
        anonymous_id, user_id = event.get("anonymousId"), event.get("userId")
        if anonymous_id and user_id:
            self.links.setdefault(anonymous_id, user_id)
        who = anonymous_id or user_id or ""
        row = self.rows.get(who)
        if row is None:
            row = self.rows[who] = [0, 0, 0, 0, 0, 0.0]
        row[0] += 1
        self.events += 1
        kind = event["type"]
        if kind == "page":
            row[1] += 1
        elif kind == "track":
            name = event["event"]
            if name == "Product Viewed":
                row[2] += 1
            elif name == "Product Added":
                row[3] += 1
            elif name == "Order Completed":
                row[4] += 1
                props = event.get("properties", {})
                row[5] = round(row[5] + float(props.get("revenue", 0.0)), 2)

    def merge(self, other: Tally) -> None:
        for who, row in other.rows.items():
            _fold(self.rows, who, row)
        for anonymous_id, user_id in other.links.items():
            self.links.setdefault(anonymous_id, user_id)
        self.events += other.events

    @property
    def counts(self) -> dict[str, list[float]]:
        """Final counters per contact id (visitors folded into the users they became)."""
        out: dict[str, list[float]] = {}
        for who, row in self.rows.items():
            _fold(out, self.links.get(who, who), row)
        return out


def _fold(into: dict[str, list[float]], who: str, row: list[float]) -> None:
    mine = into.get(who)
    if mine is None:
        into[who] = list(row)
        return
    for i in range(5):
        mine[i] += row[i]
    mine[5] = round(mine[5] + row[5], 2)

