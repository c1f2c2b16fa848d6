"""Per-contact capabilities: one module each, all of one shape (`base.Capability`).

The registry (the order in which they run) is `registry.CAPABILITIES`; it is
kept out of this package's `__init__` so that a capability living elsewhere
(`dataflows.recommendations.capability`) can import `base` without importing
the registry that imports it.
"""
