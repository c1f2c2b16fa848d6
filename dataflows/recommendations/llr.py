"""Dunning's log-likelihood ratio for co-occurrence, vectorized over one product's candidates.

For products a and b: k11 baskets hold both, k12 a without b, k21 b without
a, k22 neither. The ratio is large when k11 is far from what a's and b's
popularity alone would give, so an item in every basket — which co-occurs
with everything — scores low against a product it merely sits beside
(Dunning 1993; Mahout's `LogLikelihood`, the significance test Schelter et
al. use). It is scale-linear (all four counts × λ → ratio × λ), which is
what lets decayed counts be kept in landmark units and rescaled once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def _xlogx(x: Floats) -> Floats:
    out = np.zeros_like(x)
    positive = x > 0
    out[positive] = x[positive] * np.log(x[positive])
    return out


def log_likelihood_ratio(k11: Floats, n_a: float, n_b: Floats, total: float) -> tuple[Floats, npt.NDArray[np.bool_]]:
    """The ratio for each candidate b of product a, and whether the pair co-occurs more than chance.

    `k11[i]` is how often a and candidate i were together, `n_a` and
    `n_b[i]` how often each occurred, `total` the number of baskets.
    Counts may be fractional (decayed). Negative cells (rounding, or
    windows that made a basket count a product twice) are clipped to 0.
    """
    k11 = np.asarray(k11, dtype=np.float64)
    n_b = np.asarray(n_b, dtype=np.float64)
    k12 = np.maximum(n_a - k11, 0.0)
    k21 = np.maximum(n_b - k11, 0.0)
    k22 = np.maximum(total - n_a - n_b + k11, 0.0)
    row = _xlogx(k11 + k12) + _xlogx(k21 + k22)
    column = _xlogx(k11 + k21) + _xlogx(k12 + k22)
    matrix = _xlogx(k11) + _xlogx(k12) + _xlogx(k21) + _xlogx(k22)
    n = k11 + k12 + k21 + k22
    ratio = 2.0 * (matrix + _xlogx(n) - row - column)
    positive = k11 * n > (k11 + k12) * (k11 + k21)
    return np.maximum(ratio, 0.0), positive
