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
    # The four cells, the two row sums, the two column sums and the total: x ln x of each in one pass.
    cells = np.stack((k11, k12, k21, k22, k11 + k12, k21 + k22, k11 + k21, k12 + k22, k11 + k12 + k21 + k22))
    xlogx = cells * np.log(np.where(cells > 0, cells, 1.0))
    ratio = 2.0 * (xlogx[0] + xlogx[1] + xlogx[2] + xlogx[3] + xlogx[8] - xlogx[4] - xlogx[5] - xlogx[6] - xlogx[7])
    positive = k11 * cells[8] > cells[4] * cells[6]
    return np.maximum(ratio, 0.0), positive
