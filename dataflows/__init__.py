"""Bytewax dataflows: Redis Streams in, per-contact state, Redis out.

    flow.py, runner.py   wiring and running (with recovery)
    io/                  the source, the sink and the items between stages
    shard/               contact shards: store, guard, identity, emitting
    capabilities/        one module per per-contact capability, and their registry
    rules/               configuration compiled for evaluation
"""
