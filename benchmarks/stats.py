"""Summary statistics the benchmark reports use."""

from __future__ import annotations

from collections.abc import Sequence


def percentiles(values: Sequence[float], points: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """p50/p95/p99/max of `values` (nearest rank), rounded to 0.01."""
    if not values:
        return {}
    ordered = sorted(values)
    out = {f"p{p:g}": round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 2) for p in points}
    out["max"] = round(ordered[-1], 2)
    return out
