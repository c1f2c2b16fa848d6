"""Attimo's shared vocabulary: event schema, Redis keys, streams and models.

Both `api` and `dataflows` import from here; nothing here imports them.
"""
