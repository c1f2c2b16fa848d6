"""Wires the dataflow: streams in → visitors → contacts → Redis out.

```
events ─┬─ Event ── key by shard(device or user id) ─┐
        │                                            ├─ visitors ─┬─ outputs ─────────────────┐
        └─ config control ── to every visitor shard ─┘            └─ routed / hand-off ─┐      ├─ Redis
                         └── to every contact shard ──────────── key by shard(contact) ┴─ contacts ┘
```
"""

from __future__ import annotations

from typing import Any, TypeGuard, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from dataflows.contacts import ContactConfig, contact_logic, shard_key, visitor_logic
from dataflows.identity import device_id
from dataflows.live_config import ConfigLoader
from dataflows.outputs import Handoff, Output, Routed, ShardControl
from dataflows.redis_sink import RedisSink, RedisSinkConfig
from dataflows.redis_source import RedisStreamSource, StreamSourceConfig
from state.config_store import ConfigControl
from state.events import Event, routing_id


def _is_control(item: object) -> TypeGuard[ConfigControl]:
    return isinstance(item, ConfigControl)


def _is_onward(item: object) -> TypeGuard[Routed | Handoff]:
    return isinstance(item, Routed | Handoff)


def _broadcast(shards: int) -> Any:
    def to_every_shard(control: ConfigControl) -> list[tuple[str, ShardControl]]:
        return [(str(shard), ShardControl(control.version, str(shard))) for shard in range(shards)]
    return to_every_shard


def build_flow(source: StreamSourceConfig, contacts: ContactConfig, sink: RedisSinkConfig) -> Dataflow:
    """The whole Attimo dataflow."""
    shards = contacts.contact_shards
    loader = ConfigLoader(source.redis_url)
    flow = Dataflow("attimo")
    items = op.input("events", flow, RedisStreamSource(source))
    split = op.branch("split_controls", items, _is_control)
    controls = split.trues
    events = op.key_on("by_visitor_shard", cast("Stream[Event]", split.falses),
                       lambda event: shard_key(device_id(event) or routing_id(event), shards))
    visitor_controls = op.flat_map("controls_to_visitors", controls, _broadcast(shards))
    visitor_out = op.stateful_batch("visitors", op.merge("visitor_input", events, visitor_controls),
                                    visitor_logic(contacts, loader))
    visitor_values = op.map("visitor_values", visitor_out, lambda key_value: key_value[1])
    onward = op.branch("split_onward", visitor_values, _is_onward)
    routed = op.key_on("by_contact_shard", onward.trues, lambda item: shard_key(item.contact_id, shards))
    contact_controls = op.flat_map("controls_to_contacts", controls, _broadcast(shards))
    contact_out = op.stateful_batch("contacts", op.merge("contact_input", routed, contact_controls),
                                    contact_logic(contacts, loader))
    contact_values = op.map("contact_values", contact_out, lambda key_value: key_value[1])
    outputs = op.merge("all_outputs", cast("Stream[Output]", onward.falses), contact_values)
    op.output("redis", outputs, RedisSink(sink))
    return flow
