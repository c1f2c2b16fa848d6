"""One product shard's share of the item-to-item co-occurrence model, for both relations.

Every shard sees every interaction (the stage hands each to all shards), so
each keeps, for every product, its *popularity* — how many baskets it was
in — and the number of baskets: the marginals the log-likelihood ratio
needs for any pair. Only the *rows* of its own products (`shard_of(id)`) are
kept here: for product a, how often each candidate b was in a basket with
it. A pair (a, b) updates a's row in a's shard and b's row in b's shard.

Counts are recency-weighted by forward decay (Cormode et al., ICDE 2009):
an interaction at time t adds 2^((t − L)/half_life) for a landmark L, so
nothing is ever rewritten as time passes; the true, decayed value at `now`
is the stored one × 2^(−(now − L)/half_life). When weights grow large the
landmark moves and every stored value is rescaled once. The ratio is linear
in the counts, so scores are computed on stored values and rescaled.

Bounded work: an interaction costs one update per partner (the contact
stage caps partners); a row holds at most `row_capacity` candidates — past
it, the lightest quarter is dropped (what stays is what the batch
recompute would rank highest, but a dropped pair restarts from zero).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from dataflows.recommendations.llr import log_likelihood_ratio
from dataflows.recommendations.settings import RecsSettings
from dataflows.recommendations.signals import RELATIONS, Interaction
from state.shards import shard_of

Row = dict[int, float]
MAX_EXPONENT = 64.0
"""Weights up to 2^64 before the landmark moves (products of two stay far from overflow)."""
SCORE_DECIMALS = 6
"""Scores are compared rounded, so the stream and a batch recompute break ties alike (by product id)."""


class Cooccurrence:
    """Marginals of every product, rows of this shard's products, and their top-K neighbours."""

    def __init__(self, shard: int, shards: int, settings: RecsSettings) -> None:
        self.shard = shard
        self.shards = shards
        self.settings = settings
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.owned = bytearray()
        self.marginal: npt.NDArray[np.float64] = np.zeros((len(RELATIONS), 64))
        self.baskets: npt.NDArray[np.float64] = np.zeros(len(RELATIONS))
        self.rows: list[dict[int, Row]] = [{} for _ in RELATIONS]
        self.landmark: float | None = None

    # ---- products ------------------------------------------------------------------

    def intern(self, product: str) -> int:
        """The product's index in this shard (every shard interns every product it hears of)."""
        i = self.index.get(product)
        if i is None:
            i = self.index[product] = len(self.ids)
            self.ids.append(product)
            self.owned.append(shard_of(product, self.shards) == self.shard)
            if i >= self.marginal.shape[1]:
                grown = np.zeros((len(RELATIONS), 2 * self.marginal.shape[1]))
                grown[:, :i] = self.marginal
                self.marginal = grown
        return i

    def owns(self, product: str) -> bool:
        """Whether this shard keeps (and writes) the product's rows and documents."""
        return shard_of(product, self.shards) == self.shard

    def own_rows(self) -> list[int]:
        """Indexes of this shard's products that have a row in either relation."""
        return sorted({i for rows in self.rows for i in rows})

    # ---- decay -----------------------------------------------------------------------

    def weight(self, at: float) -> float:
        """What an interaction at `at` adds, in landmark units (moving the landmark if needed)."""
        half_life = self.settings.half_life_s
        if half_life <= 0:
            return 1.0
        if self.landmark is None:
            self.landmark = at
        exponent = (at - self.landmark) / half_life
        if exponent > MAX_EXPONENT:
            self._rebase(at)
            exponent = 0.0
        return math.pow(2.0, max(exponent, -1000.0))

    def scale(self, now: float) -> float:
        """Stored value → true value at `now`."""
        half_life = self.settings.half_life_s
        if half_life <= 0 or self.landmark is None:
            return 1.0
        return math.pow(2.0, max(-1000.0, min(1000.0, -(now - self.landmark) / half_life)))

    def _rebase(self, at: float) -> None:
        assert self.landmark is not None
        factor = math.pow(2.0, -(at - self.landmark) / self.settings.half_life_s)
        self.marginal *= factor
        self.baskets *= factor
        for rows in self.rows:
            for row in rows.values():
                for j in row:
                    row[j] *= factor
        self.landmark = at

    # ---- counting -----------------------------------------------------------------

    def observe(self, interaction: Interaction) -> list[int]:
        """Count one interaction; the indexes of this shard's rows it changed."""
        relation = interaction.relation
        if relation not in RELATIONS or not math.isfinite(interaction.at):
            raise ValueError(f"not an interaction: relation {relation!r} at {interaction.at!r}")
        w = self.weight(interaction.at)
        i = self.intern(interaction.product)
        self.marginal[relation, i] += w
        partners = interaction.partners
        if not partners:
            self.baskets[relation] += w
            return []
        rows = self.rows[relation]
        owned = self.owned
        own_row = rows.setdefault(i, {}) if owned[i] else None
        changed: list[int] = []
        for partner in partners:
            j = self.intern(partner)
            if j == i:
                continue
            if own_row is not None:
                own_row[j] = own_row.get(j, 0.0) + w
            if owned[j]:
                row = rows.setdefault(j, {})
                row[i] = row.get(i, 0.0) + w
                if len(row) > self.settings.row_capacity:
                    _shrink(row, self.settings.row_capacity)
                changed.append(j)
        if own_row is not None:
            if len(own_row) > self.settings.row_capacity:
                _shrink(own_row, self.settings.row_capacity)
            changed.append(i)
        return changed

    # ---- scoring ---------------------------------------------------------------------

    def neighbours(self, relation: int, i: int, now: float, k: int | None = None) -> list[tuple[int, float]]:
        """Product i's top-k candidates by decayed log-likelihood ratio, significant ones only, best first.

        Ties (equal rounded scores) go to the smaller product id, so any
        computation over the same counts lists the same products.
        """
        row = self.rows[relation].get(i)
        if not row:
            return []
        k = self.settings.neighbours if k is None else k
        cols = np.fromiter(row.keys(), np.int64, len(row))
        k11 = np.fromiter(row.values(), np.float64, len(row))
        ratio, positive = log_likelihood_ratio(k11, float(self.marginal[relation, i]),
                                               self.marginal[relation, cols], float(self.baskets[relation]))
        scores = np.round(ratio * self.scale(now), SCORE_DECIMALS)
        keep = positive & (scores >= self.settings.min_llr) & (scores > 0)
        return top_k(self.ids, cols[keep], scores[keep], k)


def top_k(ids: list[str], cols: npt.NDArray[np.int64], scores: npt.NDArray[np.float64],
          k: int) -> list[tuple[int, float]]:
    """The k best (index, score) by score, then product id."""
    if len(cols) > k:
        threshold = np.partition(scores, len(scores) - k)[len(scores) - k]
        mask = scores >= threshold
        cols, scores = cols[mask], scores[mask]
    ranked = sorted(zip(cols.tolist(), scores.tolist(), strict=True), key=lambda cs: (-cs[1], ids[cs[0]]))
    return ranked[:k]


def _shrink(row: Row, capacity: int) -> None:
    """Drop the lightest quarter of a full row (amortized: one sort per capacity/4 new candidates)."""
    keep = capacity * 3 // 4
    heaviest = sorted(row.items(), key=lambda item: -item[1])[:keep]
    row.clear()
    row.update(heaviest)


def ids_of(model: Cooccurrence, indexes: Iterable[int]) -> list[str]:
    """Product ids of indexes."""
    return [model.ids[i] for i in indexes]
