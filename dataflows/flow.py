"""Wires the dataflow: streams in → visitors → contacts → Redis out.

```
stream shards ─ route ─▶ visitors ─┬─ profiles, segments, pushes ──────────────┐
 (events and config       (by shard │                                          ├─▶ Redis
  controls, in order)      of device)└─ routed events, hand-offs ─▶ contacts ──┤
                                        controls (by shard of contact)         │
      │                  product activity (both stages) ─┐                     │
      └─ catalog changes ──────────────────────────────────┴─▶ products ───────┘
                                                          (by product shard)
```

A configuration control is copied to every visitor shard by the same step
that routes events, so at every shard it arrives in stream order with the
events around it; items going on to the contact stage carry the version they
were resolved under.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import KeyedStream

from dataflows.io.outputs import Handoff, Output, Routed, ShardControl, ShardErase, ShardPreview
from dataflows.io.redis_sink import RedisSink, RedisSinkConfig
from dataflows.io.redis_source import RedisStreamSource, SourceItem, StreamSourceConfig
from dataflows.recommendations.settings import RecsSettings
from dataflows.recommendations.stage import is_activity, is_catalog_change, product_router, products_logic
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.identity import device_id, user_notices
from dataflows.shard.stages import (
    ContactConfig,
    ContactItem,
    VisitorItem,
    VisitorOutput,
    contact_logic,
    shard_key,
    visitor_logic,
)
from state.config_store import ConfigControl
from state.erasure import EraseControl
from state.events import routing_id
from state.segment_preview import PreviewControl

Onward = Routed | Handoff | ShardControl | ShardPreview | ShardErase


def _is_onward(keyed: tuple[str, object]) -> bool:
    return isinstance(keyed[1], Routed | Handoff | ShardControl | ShardPreview | ShardErase)


def visitor_router(shards: int) -> Callable[[SourceItem], list[tuple[str, VisitorItem]]]:
    """Events to the shard of their device (or user); a control, a segment preview or an erase to every shard.

    An erase goes to every shard because a tombstone must stop the erased
    ids whatever shard a later event lands on (a new device of the user).
    """
    every_shard = [str(shard) for shard in range(shards)]

    def route(item: SourceItem) -> list[tuple[str, VisitorItem]]:
        if isinstance(item, ConfigControl):
            return [(shard, ShardControl(item.version, shard)) for shard in every_shard]
        if isinstance(item, PreviewControl):
            return [(shard, ShardPreview(item, shard)) for shard in every_shard]
        if isinstance(item, EraseControl):
            return [(shard, ShardErase(item, shard)) for shard in every_shard]
        # A proved identify also tells the user's own shard that the id is a user's (shard.identity).
        return [*user_notices(item, shards), (shard_key(device_id(item) or routing_id(item), shards), item)]
    return route


def contact_router(shards: int) -> Callable[[tuple[str, VisitorOutput]], tuple[str, ContactItem]]:
    """Routed events and hand-offs to their contact's shard; controls and previews to their own."""
    def route(keyed: tuple[str, VisitorOutput]) -> tuple[str, ContactItem]:
        item = cast("Onward", keyed[1])  # only onward items pass the branch before this step
        if isinstance(item, ShardControl | ShardPreview | ShardErase):
            return item.shard, item
        return shard_key(item.contact_id, shards), item
    return route


def build_flow(source: StreamSourceConfig, contacts: ContactConfig, sink: RedisSinkConfig,
               recs: RecsSettings | None = None) -> Dataflow:
    """The whole Attimo dataflow; without `recs` (or with recommendations off) no products stage."""
    shards = contacts.contact_shards
    loader = ConfigLoader(source.redis_url)
    flow = Dataflow("attimo")
    items = op.input("events", flow, RedisStreamSource(source))
    # The admin API's catalog changes are no contact's events: they go to the products stage only.
    catalog = op.branch("split_catalog", items, is_catalog_change)
    to_visitors = op.flat_map("route_to_visitors", catalog.falses, visitor_router(shards))
    visitor_out = op.stateful_batch("visitors", to_visitors, visitor_logic(contacts, loader))
    # Items stay (key, value) pairs all the way to the sink: every step that
    # only unwraps or re-wraps costs a Python call per item.
    onward = op.branch("split_onward", visitor_out, _is_onward)
    to_contacts = op.map("route_to_contacts", onward.trues, contact_router(shards))
    contact_out = op.stateful_batch("contacts", to_contacts, contact_logic(contacts, loader))
    outputs = op.merge("all_outputs", cast("KeyedStream[Output]", onward.falses), contact_out)
    if recs is not None and recs.enabled:
        activity = op.branch("split_activity", outputs, is_activity)
        changes = op.key_on("key_catalog", catalog.trues, lambda _: "catalog")
        to_products = op.flat_map("route_to_products", op.merge("product_items", activity.trues, changes),
                                  product_router(recs.product_shards))
        product_out = op.stateful_batch("products", to_products, products_logic(recs))
        outputs = op.merge("with_products", activity.falses, product_out)
    op.output("redis", outputs, RedisSink(sink))
    return flow
