"""The co-occurrence model: what counts, how much, and that the stream equals a batch recompute."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dataflows.recommendations.batch import Action, recompute
from dataflows.recommendations.llr import log_likelihood_ratio
from dataflows.recommendations.settings import RecsSettings
from dataflows.recommendations.shard import ProductShard
from dataflows.recommendations.signals import BASKET, VIEW
from tests.dataflows.recommendations.streams import Clock, Shards, buy, interactions, view

HOUR = 3600.0
T0 = 1_800_000_000.0


def llr(k11: float, k12: float, k21: float, k22: float) -> float:
    ratio, _ = log_likelihood_ratio(np.array([k11]), k11 + k12, np.array([k11 + k21]), k11 + k12 + k21 + k22)
    return float(ratio[0])


class TestLogLikelihoodRatio:
    """Dunning's ratio: 2 Σ O ln(O / E) over the 2 × 2 table."""

    # Mahout's LogLikelihoodTest tables; values computed exactly (50-digit decimals of the definition).
    @pytest.mark.parametrize(("cells", "expected"), [
        ((1, 0, 0, 1), 2.772588722239781),
        ((10, 0, 0, 10), 27.725887222397812),
        ((5, 1995, 0, 100000), 39.330521654906138),
        ((1000, 1995, 1000, 100000), 4730.7368130612365),
        ((1000, 1000, 1000, 100000), 5734.3425245748618),
        ((1000, 1000, 1000, 99000), 5714.9323969239964),
    ])
    def test_the_definition_on_reference_tables(self, cells: tuple[int, int, int, int], expected: float) -> None:
        assert llr(*cells) == pytest.approx(expected, rel=1e-9)

    def test_scaling_every_count_scales_the_ratio(self) -> None:
        """What lets decayed counts be kept in landmark units and rescaled once."""
        assert llr(3, 5, 7, 100) * 0.25 == pytest.approx(llr(0.75, 1.25, 1.75, 25))

    def test_a_product_in_every_basket_is_not_significant_with_anything(self) -> None:
        ratio, positive = log_likelihood_ratio(np.array([50.0]), 50.0, np.array([1000.0]), 1000.0)
        assert ratio[0] == pytest.approx(0.0, abs=1e-9) and not positive[0]


def settings(**changes: object) -> RecsSettings:
    base: dict[str, object] = dict(product_shards=3, view_window_s=HOUR, basket_window_s=24 * HOUR,
                                   max_interactions=500, neighbours=5, min_llr=0.0, half_life_s=0.0, doc_size=5)
    base.update(changes)
    return RecsSettings(**base)  # type: ignore[arg-type]


class TestCounting:
    """Pairs count once per session or basket; a contact's work is bounded."""

    def test_products_viewed_in_one_session_are_paired_once(self) -> None:
        got = interactions([view("c", "a", T0), view("c", "b", T0 + 60), view("c", "a", T0 + 120),
                            view("c", "c", T0 + 180)], settings())
        assert [(i.product, i.partners) for i in got] == [("a", ()), ("b", ("a",)), ("c", ("a", "b"))]

    def test_views_further_apart_than_the_session_window_are_not_paired(self) -> None:
        got = interactions([view("c", "a", T0), view("c", "b", T0 + 2 * HOUR)], settings())
        assert [i.partners for i in got] == [(), ()]

    def test_views_and_baskets_are_separate_relations(self) -> None:
        got = interactions([view("c", "a", T0), buy("c", "b", T0 + 1), view("c", "b", T0 + 2)], settings())
        assert [(i.relation, i.product, i.partners) for i in got] == [
            (VIEW, "a", ()), (BASKET, "b", ()), (VIEW, "b", ("a",))]

    def test_a_contact_counts_at_most_its_share_per_basket_window(self) -> None:
        """Schelter et al.'s down-sampling: a bot viewing everything costs bounded work."""
        actions = [view("bot", f"p{i}", T0 + i) for i in range(50)]
        got = interactions(actions, settings(max_interactions=10))
        assert len(got) == 10
        assert max(len(i.partners) for i in got) == 9

    def test_the_share_returns_once_old_interactions_leave_the_window(self) -> None:
        s = settings(max_interactions=3)
        first = [view("c", f"p{i}", T0 + i) for i in range(5)]
        later = [view("c", "late", T0 + 25 * HOUR)]
        assert [i.product for i in interactions(first + later, s)] == ["p0", "p1", "p2", "late"]

    def test_a_row_holds_at_most_its_capacity(self) -> None:
        s = settings(row_capacity=20, product_shards=1)
        shards = Shards(s, Clock(T0))
        actions = [view(f"c{n}", p, T0 + n) for n in range(200) for p in ("hub", f"x{n}")]
        shards.feed(interactions(actions, s))
        model = shards.shards[0].model
        assert len(model.rows[VIEW][model.index["hub"]]) <= 20


class TestRanking:
    """Significant, recent neighbours first; ubiquitous products do not dominate."""

    def test_a_new_product_has_neighbours_after_its_first_cooccurrence(self) -> None:
        s = settings(min_llr=1.0)
        background = [view(f"bg{n}", f"p{n % 40}", T0 + n) for n in range(400)]
        first = [view("new-fan", "brand-new", T0 + 500), view("new-fan", "p7", T0 + 560)]
        shards = Shards(s, Clock(T0 + 600))
        shards.feed(interactions(background + first, s))
        assert [p for p, _ in shards.neighbours(VIEW, "brand-new")] == ["p7"]
        assert "brand-new" in [p for p, _ in shards.neighbours(VIEW, "p7")]

    def test_a_product_everyone_views_ranks_below_a_specific_partner(self) -> None:
        s = settings(min_llr=0.0)
        actions: list[Action] = []
        for n in range(300):  # everyone views "home"; only a few view the pair (tent, stove)
            who = f"c{n}"
            actions += [view(who, "home", T0 + n), view(who, f"filler{n % 30}", T0 + n + 1)]
            if n % 10 == 0:
                actions += [view(who, "tent", T0 + n + 2), view(who, "stove", T0 + n + 3)]
        shards = Shards(s, Clock(T0 + 1000))
        shards.feed(interactions(actions, s))
        ranked = [p for p, _ in shards.neighbours(VIEW, "tent")]
        assert ranked[0] == "stove"
        assert "home" not in ranked  # co-occurs with tent only as often as chance says: not positive

    def test_recent_cooccurrences_outrank_old_ones_of_equal_count(self) -> None:
        s = settings(half_life_s=HOUR)
        old = [a for n in range(5) for a in (view(f"o{n}", "a", T0 + n), view(f"o{n}", "old", T0 + n + 1))]
        new = [a for n in range(5) for a in (view(f"n{n}", "a", T0 + 5 * HOUR + n),
                                             view(f"n{n}", "new", T0 + 5 * HOUR + n + 1))]
        noise = [view(f"z{n}", f"z{n}", T0 + n * 100) for n in range(50)]
        shards = Shards(s, Clock(T0 + 6 * HOUR))
        shards.feed(interactions(noise + old + new, s))
        assert [p for p, _ in shards.neighbours(VIEW, "a")][:2] == ["new", "old"]


def workload(seed: int, contacts: int, products: int, span_s: float) -> list[Action]:
    """Shoppers with planted pairs, many sessions each, views and baskets, in time order."""
    rng = random.Random(seed)
    actions: list[Action] = []
    for c in range(contacts):
        at = T0 + rng.random() * span_s
        for _ in range(rng.randint(1, 4)):
            for _ in range(rng.randint(1, 8)):
                p = int(rng.paretovariate(1.2)) % products
                actions.append(view(f"c{c}", f"p{p}", at))
                if rng.random() < 0.5:
                    actions.append(view(f"c{c}", f"p{(p * 7 + 3) % products}", at + 5))
                if rng.random() < 0.2:
                    actions.append(buy(f"c{c}", f"p{p}", at + 10))
                at += rng.expovariate(1 / 120)
            at += rng.expovariate(1 / (3 * HOUR))
    actions.sort(key=lambda a: a.at)
    return actions


class TestStreamEqualsBatch:
    """Sharded, incremental, landmark-decayed counts give what a batch recompute over all events gives."""

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_every_products_neighbours_equal_the_batch_recompute(self, seed: int) -> None:
        s = settings(neighbours=8, min_llr=0.5, half_life_s=24 * HOUR, max_interactions=12)
        actions = workload(seed, contacts=300, products=60, span_s=2 * 86_400)
        now = T0 + 3 * 86_400
        shards = Shards(s, Clock(now))
        shards.feed(interactions(actions, s), batch=rng_batch(seed))
        streamed = shards.all_neighbours()
        batch = recompute(actions, s, now)
        assert len(batch) > 50  # the workload is not trivial
        assert streamed.keys() == batch.keys()
        for key, expected in batch.items():
            got = streamed[key]
            assert [p for p, _ in got] == [p for p, _ in expected], key
            assert [score for _, score in got] == pytest.approx([score for _, score in expected], rel=1e-6)

    def test_equal_across_a_snapshot_and_a_landmark_move(self) -> None:
        """Restoring a shard mid-stream, with weights rebased many half-lives later, changes nothing."""
        s = settings(neighbours=6, min_llr=0.0, half_life_s=300.0)  # 2 days ≫ 64 half-lives: the landmark moves
        actions = workload(7, contacts=200, products=40, span_s=2 * 86_400)
        now = T0 + 3 * 86_400
        items = interactions(actions, s)
        shards = Shards(s, Clock(now))
        shards.feed(items[:len(items) // 2])
        shards.shards = [ProductShard(0, s, shards.clock, shard.encode()) for shard in shards.shards]
        shards.feed(items[len(items) // 2:])
        streamed = shards.all_neighbours()
        batch = recompute(actions, s, now)
        assert {k: [p for p, _ in v] for k, v in streamed.items()} == {k: [p for p, _ in v] for k, v in batch.items()}


def rng_batch(seed: int) -> int:
    return 1 + seed * 5
