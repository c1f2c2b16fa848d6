"""Decisions for on-site widgets: the one-round-trip read, identity verification, the public answer."""
