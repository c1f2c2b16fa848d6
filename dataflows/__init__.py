"""Bytewax dataflows: Redis Streams in, per-contact state, Redis out."""
