"""Wires the dataflow: streams in → per-contact state → Redis out."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from dataflows.contacts import ContactConfig, contact_state
from dataflows.redis_sink import RedisSink, RedisSinkConfig
from dataflows.redis_source import RedisStreamSource, StreamSourceConfig


def build_flow(source: StreamSourceConfig, contacts: ContactConfig, sink: RedisSinkConfig) -> Dataflow:
    """The whole Attimo dataflow."""
    flow = Dataflow("attimo")
    events = op.input("events", flow, RedisStreamSource(source))
    outputs = contact_state("contact_state", events, contacts)
    op.output("redis", outputs, RedisSink(sink))
    return flow
