"""A campaign's stats per arm, and the probability that each variant converts better than the holdout.

Counters are exact (the dataflow's `Tally`s, one total per shard, summed
here). Each arm's conversion rate is conversions over the contacts exposed
to it — shown the popup, or for the holdout, would have been — so the
variants and the holdout compare like with like.

"Beats the holdout" is the Bayesian probability P(p_variant > p_holdout)
with each rate's posterior Beta(1 + conversions, 1 + contacts − conversions)
(a uniform prior): exact by Evan Miller's closed form, a sum of
`conversions + 1` terms in log space; past `EXACT_TERMS` terms a Monte Carlo
estimate with a fixed seed, so the same counts always give the same answer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Final

import msgspec
import numpy as np

from state.campaigns import HOLDOUT

EXACT_TERMS: Final = 20_000
SAMPLES: Final = 200_000
SEED: Final = 20_261_123
COUNTERS: Final = ("impressions", "clicks", "closes", "contacts", "conversions")


class ArmStats(msgspec.Struct, frozen=True):
    """One arm (a variant or the holdout): exact counts, rates, and the chance it beats the holdout."""

    arm: str
    impressions: int = 0
    clicks: int = 0
    closes: int = 0
    contacts: int = 0
    conversions: int = 0
    conversion_rate: float = 0.0
    click_rate: float = 0.0
    # P(this variant's conversion rate > the holdout's); None for the holdout and without one.
    beats_holdout: float | None = None


class CampaignStats(msgspec.Struct, frozen=True):
    """A campaign's arms, variants first (in the campaign's order), then the holdout if it has one."""

    campaign: str
    arms: list[ArmStats]


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def prob_b_beats_a(alpha_a: int, beta_a: int, alpha_b: int, beta_b: int) -> float:
    """P(X_b > X_a) for X_a ~ Beta(alpha_a, beta_a), X_b ~ Beta(alpha_b, beta_b) (integer alpha_b ≥ 1)."""
    if alpha_b > EXACT_TERMS:
        rng = np.random.default_rng(SEED)
        a = rng.beta(alpha_a, beta_a, SAMPLES)
        b = rng.beta(alpha_b, beta_b, SAMPLES)
        return float(np.mean(b > a))
    base = _log_beta(alpha_a, beta_a)
    total = 0.0
    for i in range(alpha_b):
        total += math.exp(_log_beta(alpha_a + i, beta_a + beta_b) - math.log(beta_b + i)
                          - _log_beta(1 + i, beta_b) - base)
    return min(1.0, max(0.0, total))


def beats(conversions: int, contacts: int, base_conversions: int, base_contacts: int) -> float:
    """P(a variant's rate > the holdout's) from their counts, uniform priors."""
    conversions, base_conversions = min(conversions, contacts), min(base_conversions, base_contacts)
    return prob_b_beats_a(1 + base_conversions, 1 + base_contacts - base_conversions,
                          1 + conversions, 1 + contacts - conversions)


def sum_fields(raw: Mapping[bytes, bytes]) -> dict[str, dict[str, int]]:
    """`<stage>:<shard>:<counter>:<arm>` fields (one total per shard) summed per arm and counter."""
    arms: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for field, value in raw.items():
        parts = field.decode().split(":")
        if len(parts) == 4 and parts[2] in COUNTERS:
            arms[parts[3]][parts[2]] += int(value)
    return dict(arms)


def arm_stats(campaign_id: str, counts: dict[str, dict[str, int]], variants: list[str],
              has_holdout: bool) -> CampaignStats:
    """Every arm of the campaign (and any arm counted once but since removed), with its rates."""
    order = [*variants, *sorted(a for a in counts if a not in variants and a != HOLDOUT)]
    if has_holdout or HOLDOUT in counts:
        order.append(HOLDOUT)
    zero = dict.fromkeys(COUNTERS, 0)
    held = counts.get(HOLDOUT, zero)
    arms = []
    for arm in order:
        c = counts.get(arm, zero)
        chance = None
        if arm != HOLDOUT and HOLDOUT in order and held["contacts"] and c["contacts"]:
            chance = round(beats(c["conversions"], c["contacts"], held["conversions"], held["contacts"]), 4)
        arms.append(ArmStats(arm=arm, **c,
                             conversion_rate=round(c["conversions"] / c["contacts"], 6) if c["contacts"] else 0.0,
                             click_rate=round(c["clicks"] / c["impressions"], 6) if c["impressions"] else 0.0,
                             beats_holdout=chance))
    return CampaignStats(campaign_id, arms)
