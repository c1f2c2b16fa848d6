"""The products stage in the dataflow: routing to product shards, and the Bytewax logic of one shard.

```
contact and visitor stages ── ProductActivity ─┐
                                               ├─ to every product shard ─▶ products (keyed by shard) ─▶ sink
stream ── CatalogChanged (admin API) ──────────┘
```

Keyed by product shard (`settings.product_shards` keys, a fixed number, as
contact shards are), so Bytewax recovery and timer scans stay cheap however
many products there are. The shard's state is snapshotted with the stream
positions like every other stateful step, and restored on resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import cast

from bytewax.operators import StatefulBatchLogic

from dataflows.io.outputs import Output
from dataflows.recommendations.settings import RecsSettings
from dataflows.recommendations.shard import ProductShard
from dataflows.recommendations.signals import ProductActivity, ToProducts
from state.events import CatalogChanged

ProductItem = ProductActivity | CatalogChanged


def wall_clock() -> float:
    """Now, in epoch seconds (UTC)."""
    return datetime.now(UTC).timestamp()


def is_activity(keyed: tuple[str, object]) -> bool:
    """Whether a stateful stage's output is for the products stage (not the sink)."""
    return isinstance(keyed[1], ProductActivity)


def is_catalog_change(item: object) -> bool:
    """Whether a stream item is the admin API's catalog change (not a contact's event)."""
    return isinstance(item, CatalogChanged)


def product_router(shards: int) -> Callable[[tuple[str, object]], list[tuple[str, ToProducts]]]:
    """Every item to every product shard: each keeps every product's popularity and card."""
    keys = [(str(shard), shard) for shard in range(shards)]

    def route(keyed: tuple[str, object]) -> list[tuple[str, ToProducts]]:
        item = cast("ProductItem", keyed[1])  # only product activity and catalog changes reach this step
        return [(key, ToProducts(shard, item)) for key, shard in keys]
    return route


class _ProductsLogic(StatefulBatchLogic[ToProducts, Output, bytes]):
    """One product shard: items change it at once, documents are written on its clock."""

    def __init__(self, settings: RecsSettings, now: Callable[[], float], resume: bytes | None) -> None:
        self.settings = settings
        self.now = now
        self.s: ProductShard | None = None
        if resume is not None:
            self.s = ProductShard(0, settings, now, resume)

    def on_batch(self, values: list[ToProducts]) -> tuple[Iterable[Output], bool]:
        s = self.s
        if s is None:
            s = self.s = ProductShard(values[0].shard, self.settings, self.now)
        for value in values:
            s.apply(value.item)
        return s.drain(), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Output], bool]:
        assert self.s is not None, "a shard is notified only after it was built"
        return self.s.tick(), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        at = self.s.due() if self.s is not None else None
        return None if at is None else datetime.fromtimestamp(at, UTC)

    def snapshot(self) -> bytes:
        assert self.s is not None, "a shard is snapshotted only after it was built"
        return self.s.encode()


def products_logic(settings: RecsSettings, now: Callable[[], float] = wall_clock,
                   ) -> Callable[[bytes | None], _ProductsLogic]:
    """Builder of the products stage's logic (one per product shard)."""
    return lambda resume: _ProductsLogic(settings, now, resume)
