"""RFM scores: how recently, how often and how much a contact buys, 1–5 against the base.

The edges are the 20/40/60/80 % quantiles of the contact base, recomputed
from time to time (by the API over all buyers) and shipped in the config,
so the dataflow scores each contact with four comparisons per part.

Ties: each edge is the inclusive upper bound of the lower bucket. A value
equal to an edge scores like the values just below it: with frequency edges
[1, 2, 3, 5], 1 order scores 1 and 5 orders score 4; with recency edges
[7, 30, 90, 180], an order exactly 7 days ago still scores r = 5. When the
base has many equal values, edges repeat ([1, 1, 1, 2]) and everyone at the
repeated value shares the lowest score that value reaches (1 order → 1,
2 orders → 4), so ties never split between scores.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Final

import numpy as np

from state.config import RfmEdges

QUANTILES: Final = (0.2, 0.4, 0.6, 0.8)


def _edges(samples: Sequence[float], default: list[float]) -> list[float]:
    values = np.asarray(samples, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return list(default)
    return [float(q) for q in np.quantile(values, QUANTILES)]


def compute_edges(recency_days: Sequence[float], frequency: Sequence[float],
                  monetary: Sequence[float]) -> RfmEdges:
    """Quintile edges of the base (buyers only): days since last order, orders, revenue.

    Quantiles interpolate linearly (numpy's default). Non-finite samples are
    ignored; a part without samples keeps the `RfmEdges()` default edges.
    """
    defaults = RfmEdges()
    return RfmEdges(
        recency_days=_edges(recency_days, defaults.recency_days),
        frequency=_edges(frequency, defaults.frequency),
        monetary=_edges(monetary, defaults.monetary),
    )


def rfm_score(recency_days: float | None, frequency: float, monetary: float,
              edges: RfmEdges) -> tuple[int, int, int]:
    """(r, f, m) from 1 to 5: r 5 for the most recent fifth, f and m 5 for the highest.

    A contact who never ordered (no recency, or no orders) scores (0, 0, 0).
    """
    if recency_days is None or frequency <= 0:
        return 0, 0, 0
    r = 5 - bisect_left(edges.recency_days, recency_days)
    f = 1 + bisect_left(edges.frequency, frequency)
    m = 1 + bisect_left(edges.monetary, monetary)
    return r, f, m
