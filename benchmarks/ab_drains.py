"""A capability's cost to the dataflow: the same backlog drained without it and with it, alternating.

Drains alternate base, other, other, base, base, other … so that a drift in
the machine's load touches both alike; each configuration's figure is the
median of its drains. Used by the workflows, popups and recommendations
benchmarks (each drains its own backlog under its own two configurations).
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import median
from typing import Any

Run = dict[str, Any]


def drain_alternately(configs: tuple[str, str], repeats: int, drain: Callable[[int, str], Run]) -> list[Run]:
    """`repeats` drains of each configuration, in the alternating order; `drain(n, config)` runs the n-th."""
    order = [configs[(i + i // 2) % 2] for i in range(2 * repeats)]
    return [drain(n, which) for n, which in enumerate(order)]


def compared(runs: list[Run], field: str, configs: tuple[str, str]) -> dict[str, Any]:
    """Median events/s and CPU per event of each configuration (named by `run[field]`), and their ratios.

    `throughput_ratio` is other / base in events/s; `cpu_ratio` other / base in CPU per event.
    """
    base, other = configs
    rate = {w: median(r["events_per_s"] for r in runs if r[field] == w) for w in configs}
    cpu = {w: median(r["cpu_s_per_m_events"] for r in runs if r[field] == w) for w in configs}
    return {
        "events_per_s": rate,
        "cpu_s_per_m_events": cpu,
        "throughput_ratio": round(rate[other] / max(1, rate[base]), 2),
        "cpu_ratio": round(cpu[other] / max(0.1, cpu[base]), 2),
    }
