"""The recommendation model recomputed from scratch: the reference the stream must equal.

Given every product action of every contact (in each contact's order), this
recounts everything at once, the way a nightly batch job would: each
contact's counted interactions by a plain pass over its actions (same
rules as `capability.record`: the session and basket windows, a refresh
never counts, at most `max_interactions` per basket window), then dense
co-occurrence matrices over all products with weights decayed straight to
`now` (no landmark), the log-likelihood ratio of every pair at once, and
the top-K of every product. Nothing is sharded, nothing incremental: the
stream's sharded rows, broadcast marginals and landmark-relative weights
must come to the same lists (`tests/dataflows/recommendations`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from dataflows.recommendations.llr import log_likelihood_ratio
from dataflows.recommendations.settings import RecsSettings
from dataflows.recommendations.signals import RELATIONS


@dataclass(frozen=True, slots=True)
class Action:
    """A contact viewed (relation 0) or added / bought (relation 1) a product at `at`."""

    contact: str
    relation: int
    product: str
    at: float


@dataclass
class _Kept:
    """A contact's counted interactions still in a window: (time, product, relation), oldest first."""

    rows: list[tuple[float, str, int]] = field(default_factory=list)


def counted(actions: Iterable[Action], settings: RecsSettings) -> list[tuple[int, str, float, list[str]]]:
    """Every counted interaction: (relation, product, time, partners), in action order."""
    kept: dict[str, _Kept] = {}
    out: list[tuple[int, str, float, list[str]]] = []
    keep_s = max(settings.view_window_s, settings.basket_window_s)
    for action in actions:
        rows = kept.setdefault(action.contact, _Kept()).rows
        horizon = action.at - settings.window_s(action.relation)
        window = [r for r in rows if r[0] > horizon and r[2] == action.relation]
        same = [r for r in window if r[1] == action.product]
        if same:
            if action.at > same[0][0]:
                rows.remove(same[0])
                rows.append((action.at, action.product, action.relation))
                rows.sort(key=lambda r: r[0])
            continue
        if sum(1 for r in rows if r[0] > action.at - settings.basket_window_s) >= settings.max_interactions:
            continue
        partners = [r[1] for r in sorted(window, key=lambda r: r[0], reverse=True)][:settings.max_interactions]
        rows.append((action.at, action.product, action.relation))
        rows.sort(key=lambda r: r[0])
        latest = rows[-1][0]
        rows[:] = [r for r in rows if r[0] > latest - keep_s][-settings.max_interactions:]
        out.append((action.relation, action.product, action.at, partners))
    return out


def recompute(actions: Iterable[Action], settings: RecsSettings, now: float,
              ) -> dict[tuple[int, str], list[tuple[str, float]]]:
    """Each (relation, product)'s top-K neighbours with their decayed log-likelihood ratios, best first."""
    interactions = counted(actions, settings)
    products = sorted({p for _, p, _, partners in interactions for p in (p, *partners)})
    index = {p: i for i, p in enumerate(products)}
    n = len(products)
    result: dict[tuple[int, str], list[tuple[str, float]]] = {}
    for relation in RELATIONS:
        pairs = np.zeros((n, n))
        marginal = np.zeros(n)
        baskets = 0.0
        for rel, product, at, partners in interactions:
            if rel != relation:
                continue
            w = 1.0 if settings.half_life_s <= 0 else math.pow(2.0, (at - now) / settings.half_life_s)
            i = index[product]
            marginal[i] += w
            if not partners:
                baskets += w
            for partner in partners:
                j = index[partner]
                pairs[i, j] += w
                pairs[j, i] += w
        for i, product in enumerate(products):
            cols = np.flatnonzero(pairs[i])
            cols = cols[cols != i]
            if not len(cols):
                continue
            ratio, positive = log_likelihood_ratio(pairs[i, cols], float(marginal[i]), marginal[cols], baskets)
            scores = np.round(ratio, 6)
            keep = positive & (scores >= settings.min_llr) & (scores > 0)
            ranked = sorted(((products[j], s) for j, s in zip(cols[keep].tolist(), scores[keep].tolist(),
                                                                 strict=True)), key=lambda ps: (-ps[1], ps[0]))
            if ranked:
                result[(relation, product)] = ranked[:settings.neighbours]
    return result
