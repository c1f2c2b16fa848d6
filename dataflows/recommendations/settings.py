"""The tunables of recommendations, all from settings (`ATTIMO_RECS_*`, `ATTIMO_PRODUCT_SHARDS`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DAY = 86_400.0


@dataclass(frozen=True)
class RecsSettings:
    """How interactions are counted, how neighbours are kept, and how often documents are refreshed.

    - `view_window_s`: two products viewed by a contact within this time
      were *viewed together* (a session); `basket_window_s`: two products
      added or bought within this time were *bought together*.
    - `max_interactions`: a contact counts at most this many interactions
      per basket window (Schelter et al.: heavy users and bots are
      down-sampled, so each interaction costs at most this many pair updates).
    - `neighbours`: the top-K kept per product and relation; `row_capacity`
      candidates are counted per product (the lightest are dropped beyond it).
    - `min_llr`: the log-likelihood ratio a pair needs to be listed (after
      decay), so a product everyone views does not top every list.
    - `half_life_s`: interactions lose half their weight in this time (0: never).
    - `refresh_s`: documents of changed products are rewritten this often,
      at most `rescore_budget` products per shard each time; untouched ones are
      re-scored after `stale_s` (decay and catalog drift).
    - `doc_size` products per list in a document; `trending_size` trending.
    """

    enabled: bool = True
    product_shards: int = 2
    view_window_s: float = 30 * 60.0
    basket_window_s: float = DAY
    max_interactions: int = 500
    neighbours: int = 50
    row_capacity: int = 400
    min_llr: float = 1.0
    half_life_s: float = 7 * DAY
    refresh_s: float = 1.0
    rescore_budget: int = 256
    stale_s: float = 3600.0
    doc_size: int = 10
    trending_size: int = 50

    def window_s(self, relation: int) -> float:
        """The together-window of a relation (`signals.VIEW` or `signals.BASKET`)."""
        return self.view_window_s if relation == 0 else self.basket_window_s


def recs_settings_from(settings: Any) -> RecsSettings:
    """`RecsSettings` from a `state.settings.Settings`."""
    return RecsSettings(
        enabled=settings.recommendations,
        product_shards=settings.product_shards,
        view_window_s=settings.recs_view_window_s,
        basket_window_s=settings.recs_basket_window_s,
        max_interactions=settings.recs_max_interactions,
        neighbours=settings.recs_neighbours,
        row_capacity=8 * settings.recs_neighbours,
        min_llr=settings.recs_min_llr,
        half_life_s=settings.recs_half_life_s,
        refresh_s=settings.recs_refresh_s,
        doc_size=settings.recs_doc_size,
        trending_size=settings.recs_trending_size,
    )
