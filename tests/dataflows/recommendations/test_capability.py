"""The per-contact capability: which events are interactions, what they teach, and when they leave."""

from __future__ import annotations

from typing import Any

from dataflows.capabilities.base import Context
from dataflows.recommendations.capability import (
    RecentProducts,
    RecommendationsCapability,
    configured,
    interactions_in,
)
from dataflows.recommendations.settings import RecsSettings
from dataflows.recommendations.signals import BASKET, VIEW, ProductActivity
from dataflows.rules.live_config import LiveConfig
from state.catalog import LearnedFields
from state.config import ActiveConfig
from tests.dataflows.recommendations.streams import ADDED, ORDERED, VIEWED, track

T0 = 1_800_000_000.0


def context(at: float) -> Context:
    return Context(LiveConfig.of(ActiveConfig()), at=at, received=at)


def apply(capability: RecommendationsCapability, part: RecentProducts, event: Any, at: float) -> None:
    capability.apply(part, event, context(at))


class TestWhatCounts:
    """Product Viewed is a view; Product Added and each product of an order are a basket."""

    def test_views_adds_and_order_lines(self) -> None:
        order = track("c", ORDERED, T0, products=[{"product_id": "a", "name": "A"}, {"sku": 7}, "junk",
                                                  {"product_id": "x" * 500}])
        assert [(r, p) for r, p, _ in interactions_in(order)] == [(BASKET, "a"), (BASKET, "7")]
        assert [(r, p) for r, p, _ in interactions_in(track("c", VIEWED, T0, product_id="v"))] == [(VIEW, "v")]
        assert [(r, p) for r, p, _ in interactions_in(track("c", ADDED, T0, sku="s"))] == [(BASKET, "s")]
        assert list(interactions_in(track("c", "Product Removed", T0, product_id="v"))) == []

    def test_product_properties_are_learned(self) -> None:
        event = track("c", VIEWED, T0, product_id="m", name="Mug", price=9.5, image_url="https://cdn.example/m.png")
        [(_, _, learned)] = interactions_in(event)
        assert learned == LearnedFields(name="Mug", price=9.5, image="https://cdn.example/m.png")


class TestEmission:
    """New interactions of an activation leave once, in one item, from `evaluate`."""

    def test_pending_interactions_are_emitted_once_and_cleared(self) -> None:
        capability = RecommendationsCapability(RecsSettings())
        part = RecentProducts()
        apply(capability, part, track("c", VIEWED, T0, product_id="a"), T0)
        apply(capability, part, track("c", VIEWED, T0 + 5, product_id="b"), T0 + 5)
        apply(capability, part, track("c", VIEWED, T0 + 9, product_id="a"), T0 + 9)  # a refresh, not counted
        [activity] = capability.evaluate(part, None)  # type: ignore[arg-type]
        assert isinstance(activity, ProductActivity)
        assert [(i.product, i.partners) for i in activity.interactions] == [("a", ()), ("b", ("a",))]
        assert part.pending == [] and capability.evaluate(part, None) == ()  # type: ignore[arg-type]

    def test_switched_off_nothing_is_kept_or_emitted(self) -> None:
        capability = RecommendationsCapability(RecsSettings(enabled=False))
        part = RecentProducts()
        apply(capability, part, track("c", VIEWED, T0, product_id="a"), T0)
        assert part == RecentProducts()

    def test_a_visitors_history_joins_its_contact_without_counting_again(self) -> None:
        capability = RecommendationsCapability(RecsSettings())
        visitor, known = RecentProducts(), RecentProducts()
        apply(capability, visitor, track("v", VIEWED, T0, product_id="a"), T0)
        capability.evaluate(visitor, None)  # type: ignore[arg-type]
        apply(capability, known, track("u", VIEWED, T0 + 1, product_id="b"), T0 + 1)
        capability.evaluate(known, None)  # type: ignore[arg-type]
        capability.merge(known, visitor, context(T0 + 2))
        assert known.product == ["a", "b"] and known.pending == []
        apply(capability, known, track("u", VIEWED, T0 + 3, product_id="c"), T0 + 3)
        assert known.pending[0].partners == ("b", "a")

    def test_the_deployment_settings_replace_the_registry_default(self) -> None:
        mine = RecsSettings(max_interactions=7)
        got = configured((RecommendationsCapability(),), mine)
        assert isinstance(got[0], RecommendationsCapability) and got[0].settings is mine
