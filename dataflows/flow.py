"""Wires the dataflow: streams in → visitors → contacts → Redis out.

```
stream shards ─ route ─▶ visitors ─┬─ profiles, segments, pushes ──────────────┐
 (events and config       (by shard │                                          ├─▶ Redis
  controls, in order)      of device)└─ routed events, hand-offs ─▶ contacts ──┘
                                        controls (by shard of contact)
```

A configuration control is copied to every visitor shard by the same step
that routes events, so at every shard it arrives in stream order with the
events around it; items going on to the contact stage carry the version they
were resolved under.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeGuard, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from dataflows.contacts import ContactConfig, VisitorItem, contact_logic, shard_key, visitor_logic
from dataflows.identity import device_id
from dataflows.live_config import ConfigLoader
from dataflows.outputs import Handoff, Output, Routed, ShardControl
from dataflows.redis_sink import RedisSink, RedisSinkConfig
from dataflows.redis_source import RedisStreamSource, SourceItem, StreamSourceConfig
from state.config_store import ConfigControl
from state.events import routing_id

Onward = Routed | Handoff | ShardControl


def _is_onward(item: object) -> TypeGuard[Onward]:
    return isinstance(item, Routed | Handoff | ShardControl)


def visitor_router(shards: int) -> Callable[[SourceItem], list[tuple[str, VisitorItem]]]:
    """Events to the shard of their device (or user); a control to every shard."""
    every_shard = [str(shard) for shard in range(shards)]

    def route(item: SourceItem) -> list[tuple[str, VisitorItem]]:
        if isinstance(item, ConfigControl):
            return [(shard, ShardControl(item.version, shard)) for shard in every_shard]
        return [(shard_key(device_id(item) or routing_id(item), shards), item)]
    return route


def contact_router(shards: int) -> Callable[[Onward], str]:
    """Routed events and hand-offs to their contact's shard; controls to their own."""
    def route(item: Onward) -> str:
        return item.shard if isinstance(item, ShardControl) else shard_key(item.contact_id, shards)
    return route


def build_flow(source: StreamSourceConfig, contacts: ContactConfig, sink: RedisSinkConfig) -> Dataflow:
    """The whole Attimo dataflow."""
    shards = contacts.contact_shards
    loader = ConfigLoader(source.redis_url)
    flow = Dataflow("attimo")
    items = op.input("events", flow, RedisStreamSource(source))
    to_visitors = op.flat_map("route_to_visitors", items, visitor_router(shards))
    visitor_out = op.stateful_batch("visitors", to_visitors, visitor_logic(contacts, loader))
    visitor_values = op.map("visitor_values", visitor_out, lambda key_value: key_value[1])
    onward = op.branch("split_onward", visitor_values, _is_onward)
    to_contacts = op.key_on("route_to_contacts", onward.trues, contact_router(shards))
    contact_out = op.stateful_batch("contacts", to_contacts, contact_logic(contacts, loader))
    contact_values = op.map("contact_values", contact_out, lambda key_value: key_value[1])
    outputs = op.merge("all_outputs", cast("Stream[Output]", onward.falses), contact_values)
    op.output("redis", outputs, RedisSink(sink))
    return flow
