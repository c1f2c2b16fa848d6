"""Recommendation quality: HR@10 and MRR@10 on held-out next items, Attimo against two baselines.

On the synthetic shop (`recs_world`), every held-out session is cut after
each view; the product viewed next is the one to find. Each recommender
gives 10 products for the views so far:

- **Attimo**: the `personal` strip exactly as the decisions route composes
  it (`state.recommendations.compose_strips` over the documents the
  products stage wrote: the real capability, shards and documents run
  in-process, with the deployment's default settings), seeded with the
  views so far. *Trained*: it has seen the training sessions only, like
  the baselines. *Streaming*: it also counts the held-out sessions as they
  happen (documents refreshed once per view, as `recs_refresh_s` = 1 s
  does for views 30 s apart) — what it does in production.
- **popularity**: the 10 most viewed products of the training period.
- **item-KNN (batch)**: cosine similarity of products over training
  sessions (views together in a session), summed over the last five views
  weighted like Attimo's strip (the latest counts most); popularity fills up.

A hit is the next product among the 10 (HR@10); MRR@10 averages 1/rank (0
when missed). Products already in the session are never offered by the
baselines; Attimo offers none of the five latest views (what the strip does).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.recs_world import Session, World, WorldSize, build_world
from dataflows.recommendations.capability import RecentProducts, record
from dataflows.recommendations.settings import RecsSettings
from dataflows.recommendations.shard import ProductShard
from dataflows.recommendations.signals import BASKET, VIEW, Interaction, ProductActivity, RecsWrite
from state import keys
from state.catalog import LearnedFields
from state.decisions import Seeds
from state.recommendations import PERSONAL_ANCHORS, compose_strips, read_ids

K = 10
Recommender = Callable[[Sequence[str]], list[str]]


class AttimoModel:
    """The recommendation path run in-process: contacts' capability → product shards → documents → strip."""

    def __init__(self, world: World, settings: RecsSettings) -> None:
        self.settings = settings
        self.now = 0.0
        self.shards = [ProductShard(s, settings, lambda: self.now) for s in range(settings.product_shards)]
        self.parts: dict[str, RecentProducts] = {}
        self.docs: dict[str, bytes] = {}
        self.cards = {p.id: LearnedFields(name=f"Product {p.id}", category=p.category, price=p.price)
                      for p in world.products}
        self.interactions = 0

    def _feed(self, contact: str, relation: int, product: str, at: float) -> None:
        part = self.parts.setdefault(contact, RecentProducts())
        found = record(part, relation, product, at, self.cards[product], self.settings)
        if found is not None:
            self._apply(found)

    def _apply(self, interaction: Interaction) -> None:
        self.interactions += 1
        activity = ProductActivity((interaction,))
        for shard in self.shards:
            shard.apply(activity)

    def view(self, session: Session, k: int) -> None:
        """The session's k-th view happens."""
        at = session.view_time(k)
        self.now = max(self.now, at)
        self._feed(session.contact, VIEW, session.views[k], at)

    def finish(self, session: Session) -> None:
        """The session's adds and its order, after its last view."""
        at = session.view_time(len(session.views))
        self.now = max(self.now, at)
        for pid in session.added:
            self._feed(session.contact, BASKET, pid, at)

    def observe(self, session: Session) -> None:
        for k in range(len(session.views)):
            self.view(session, k)
        self.finish(session)

    def refresh(self, until_clean: bool = False) -> None:
        """Run the shards' ticks (all of them, until nothing is left to rescore, when asked)."""
        for _ in range(10_000 if until_clean else 1):
            for shard in self.shards:
                for out in shard.tick():
                    if isinstance(out, RecsWrite):
                        if out.value is None:
                            self.docs.pop(out.key, None)
                        else:
                            self.docs[out.key] = out.value
            if not until_clean or not any(s.dirty for s in self.shards):
                return

    def recommend(self, views: Sequence[str]) -> list[str]:
        seeds = Seeds(viewed=list(reversed(views)))
        ids = read_ids(seeds)
        found = {p: raw for p in ids if (raw := self.docs.get(keys.product_neighbours(p))) is not None}
        strips = compose_strips(seeds, None, found, self.docs.get(keys.trending()), K)
        return [card.id for card in strips["personal"]]


@dataclass
class Baselines:
    """Popularity and batch item-KNN, built from the training sessions."""

    popular: list[str]
    neighbours: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def train(cls, sessions: Iterable[Session]) -> Baselines:
        views: Counter[str] = Counter()
        pairs: Counter[tuple[str, str]] = Counter()
        for s in sessions:
            distinct = list(dict.fromkeys(s.views))
            views.update(distinct)
            for i, a in enumerate(distinct):
                for b in distinct[i + 1:]:
                    pairs[(a, b)] += 1
                    pairs[(b, a)] += 1
        neighbours: dict[str, dict[str, float]] = {}
        for (a, b), n in pairs.items():
            neighbours.setdefault(a, {})[b] = n / math.sqrt(views[a] * views[b])
        return cls([p for p, _ in views.most_common()], neighbours)

    def popularity(self, views: Sequence[str]) -> list[str]:
        seen = set(views)
        return [p for p in self.popular if p not in seen][:K]

    def item_knn(self, views: Sequence[str]) -> list[str]:
        seen = set(views)
        scores: dict[str, float] = {}
        for rank, anchor in enumerate(list(reversed(views))[:PERSONAL_ANCHORS]):
            for other, sim in self.neighbours.get(anchor, {}).items():
                if other not in seen:
                    scores[other] = scores.get(other, 0.0) + sim / (1 + rank)
        ranked = sorted(scores, key=lambda p: (-scores[p], p))[:K]
        return ranked + [p for p in self.popularity(views) if p not in ranked][:K - len(ranked)]


@dataclass
class Score:
    """Hits and reciprocal ranks of one recommender."""

    cases: int = 0
    hits: int = 0
    rr: float = 0.0
    new_cases: int = 0
    new_hits: int = 0

    def add(self, recommended: list[str], truth: str, is_new: bool) -> None:
        self.cases += 1
        self.new_cases += is_new
        if truth in recommended[:K]:
            self.hits += 1
            self.new_hits += is_new
            self.rr += 1.0 / (recommended.index(truth) + 1)

    def figures(self) -> dict[str, Any]:
        cases = max(1, self.cases)
        return {"hr_at_10": round(self.hits / cases, 4), "mrr_at_10": round(self.rr / cases, 4), "cases": self.cases,
                "hr_at_10_new_products": round(self.new_hits / self.new_cases, 4) if self.new_cases else None}


def _check(name: str, recommended: list[str], views: Sequence[str], catalog: set[str], problems: list[str]) -> None:
    """What a strip must be, whatever its quality: 10 known products, none of the latest views, none twice."""
    latest = set(list(reversed(views))[:PERSONAL_ANCHORS])
    if len(recommended) != K or len(set(recommended)) != K:
        problems.append(f"{name}: {len(recommended)} products ({len(set(recommended))} distinct) for {views}")
    elif not set(recommended) <= catalog or latest & set(recommended):
        problems.append(f"{name}: offered unknown or just-viewed products for {views}")


def measure(size: WorldSize, seed: int, settings: RecsSettings | None = None) -> dict[str, Any]:
    """Build the shop, train every recommender, score them on every held-out next view."""
    started = time.monotonic()
    world = build_world(size, seed)
    settings = settings or RecsSettings()
    trained = AttimoModel(world, settings)
    streaming = AttimoModel(world, settings)
    for session in world.train:
        trained.observe(session)
        streaming.observe(session)
    trained.refresh(until_clean=True)
    streaming.refresh(until_clean=True)
    train_s = time.monotonic() - started
    baselines = Baselines.train(world.train)
    scores = {name: Score() for name in ("attimo_streaming", "attimo_trained", "item_knn_batch", "popularity")}
    catalog = {p.id for p in world.products}
    problems: list[str] = []
    for session in world.test:
        for k in range(len(session.views) - 1):
            streaming.view(session, k)
            streaming.refresh()
            views = session.views[:k + 1]
            truth = session.views[k + 1]
            is_new = truth in world.new_products
            lists = {"attimo_streaming": streaming.recommend(views), "attimo_trained": trained.recommend(views),
                     "item_knn_batch": baselines.item_knn(views), "popularity": baselines.popularity(views)}
            for name, recommended in lists.items():
                scores[name].add(recommended, truth, is_new)
                if name.startswith("attimo"):
                    _check(name, recommended, views, catalog, problems)
        streaming.view(session, len(session.views) - 1)
        streaming.finish(session)
    figures = {name: score.figures() for name, score in scores.items()}
    pop = figures["popularity"]["hr_at_10"] or 1e-9
    knn = figures["item_knn_batch"]["hr_at_10"] or 1e-9
    return {
        "world": {"products": size.products, "categories": size.categories, "sessions": size.sessions,
                  "train_sessions": world.test_from, "test_sessions": len(world.test), "days": size.days,
                  "new_products": len(world.new_products), "seed": seed},
        "settings": {"min_llr": settings.min_llr, "half_life_s": settings.half_life_s,
                     "view_window_s": settings.view_window_s, "neighbours": settings.neighbours,
                     "doc_size": settings.doc_size, "product_shards": settings.product_shards},
        "interactions_counted": streaming.interactions,
        "documents": sum(1 for key in streaming.docs if key != keys.trending()),
        "recommenders": figures,
        "ratios": {name: {"hr_vs_popularity": round(figures[name]["hr_at_10"] / pop, 2),
                          "hr_vs_item_knn": round(figures[name]["hr_at_10"] / knn, 3)}
                   for name in ("attimo_streaming", "attimo_trained")},
        "train_s": round(train_s, 2),
        "seconds": round(time.monotonic() - started, 2),
        "check": {"correct": not problems and figures["attimo_trained"]["cases"] > 0, "problems": problems[:5]},
    }
