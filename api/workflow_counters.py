"""A workflow's exact counters, summed over the contact shards that keep them.

The dataflow writes one total per shard (`keys.workflow_stats`, field
`<stage>:<shard>:<counter>`); a reader adds them up. Shared by the admin
stats route and the operators' dashboard.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import cast

import redis.asyncio as aioredis

from state import keys


def sum_counters(raw: Mapping[bytes, bytes]) -> dict[str, int]:
    """Counter name → total from a workflow's stats hash (one total per shard), sorted by name."""
    counters: dict[str, int] = defaultdict(int)
    for field, value in raw.items():  # "<stage>:<shard>:<counter>": one total per shard
        parts = field.decode().split(":", 2)
        if len(parts) == 3:
            counters[parts[2]] += int(value)
    return dict(sorted(counters.items()))


async def read_counters(client: aioredis.Redis, workflow_id: str) -> dict[str, int]:
    """A workflow's counters (entered, converted, per step …), summed."""
    return sum_counters(cast("dict[bytes, bytes]", await client.hgetall(keys.workflow_stats(workflow_id))))
