"""Driving the recommendation model in-process: actions through the capability, into every product shard."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from dataflows.recommendations.batch import Action
from dataflows.recommendations.capability import RecentProducts, record
from dataflows.recommendations.settings import RecsSettings
from dataflows.recommendations.shard import ProductShard
from dataflows.recommendations.signals import Interaction, ProductActivity
from state import events as ev
from state.events import Track


class Clock:
    """A settable clock (epoch seconds)."""

    def __init__(self, at: float = 1_800_000_000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def track(contact: str, event: str, at: float, **props: object) -> Track:
    moment = datetime.fromtimestamp(at, UTC)
    return Track(message_id=f"{contact}-{event}-{at}", anonymous_id=contact, event=event, timestamp=moment,
                 received_at=moment, properties=dict(props))


def view(contact: str, product: str, at: float) -> Action:
    return Action(contact, 0, product, at)


def buy(contact: str, product: str, at: float) -> Action:
    return Action(contact, 1, product, at)


def interactions(actions: Iterable[Action], settings: RecsSettings) -> list[Interaction]:
    """What the contacts' capabilities emit for these actions, in order."""
    parts: dict[str, RecentProducts] = {}
    out: list[Interaction] = []
    for a in actions:
        found = record(parts.setdefault(a.contact, RecentProducts()), a.relation, a.product, a.at, None, settings)
        if found is not None:
            out.append(found)
    return out


class Shards:
    """Every product shard of a deployment, fed as the dataflow feeds them (each item to each shard)."""

    def __init__(self, settings: RecsSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.shards = [ProductShard(s, settings, clock) for s in range(settings.product_shards)]

    def feed(self, items: Iterable[Interaction], batch: int = 7) -> None:
        pending = list(items)
        for start in range(0, len(pending), batch):
            activity = ProductActivity(tuple(pending[start:start + batch]))
            for shard in self.shards:
                shard.apply(activity)

    def owner(self, product: str) -> ProductShard:
        return next(s for s in self.shards if s.model.owns(product))

    def neighbours(self, relation: int, product: str) -> list[tuple[str, float]]:
        shard = self.owner(product)
        i = shard.model.index.get(product)
        if i is None:
            return []
        return [(shard.model.ids[j], score) for j, score in shard.model.neighbours(relation, i, self.clock())]

    def all_neighbours(self) -> dict[tuple[int, str], list[tuple[str, float]]]:
        out: dict[tuple[int, str], list[tuple[str, float]]] = {}
        for shard in self.shards:
            for relation in (0, 1):
                for i in shard.model.rows[relation]:
                    got = [(shard.model.ids[j], s) for j, s in shard.model.neighbours(relation, i, self.clock())]
                    if got:
                        out[(relation, shard.model.ids[i])] = got
        return out

    def tick(self) -> list[object]:
        out: list[object] = []
        for shard in self.shards:
            out += shard.tick()
        return out


VIEWED = ev.PRODUCT_VIEWED
ADDED = ev.PRODUCT_ADDED
ORDERED = ev.ORDER_COMPLETED
