"""Popups in the contact shard, driven with a fixed clock: targeting, frequency, the shared cap, arms, stats."""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
import pytest

from dataflows.io.outputs import ActionOut, MetricAdd, ProfileWrite, Quarantined
from state.campaigns import HOLDOUT, Frequency, Variant
from state.conditions import (
    Cart,
    InSegment,
    InWorkflow,
    PageUrl,
    Returning,
    TemperatureIs,
    Trait,
    UtmSource,
    WindowCount,
)
from state.config import EventMatch, SegmentDef
from state.decisions import ExitIntent, PopupContent
from state.profile import decode_profile
from state.workflows import Delay, MessagingPolicy, OnEvent, SendWebhook, SharedCap, Workflow
from tests.dataflows.popup_shop import Shop, campaign, event, identify, page_view, shown

HOUR = 3600.0
EVERY_TIME = Frequency(once_per_session=False, cooldown_after_close_s=0)


class TestTargeting:
    """A campaign is offered exactly while its targeting holds on the live state."""

    def test_an_untargeted_campaign_is_offered_from_the_first_event_with_its_content(self) -> None:
        shop = Shop(campaign("promo", triggers=[ExitIntent()], layout="bar", priority=3))
        shop.send(page_view(0, "v1"))
        (popup,) = shop.doc("v1").popups  # type: ignore[union-attr]
        assert (popup.campaign, popup.variant, popup.layout, popup.priority) == ("promo", "a", "bar", 3)
        assert popup.triggers == [ExitIntent()] and popup.content.title == "promo a"

    def test_a_segment_entered_in_the_session_brings_the_popup(self) -> None:
        shoes = SegmentDef("shoe-lovers", WindowCount("category", "shoes", 7 * 86400, "gte", 2))
        shop = Shop(campaign("shoes", when=InSegment("shoe-lovers")), segments=[shoes])
        shop.send(event(0, "v1", "Product Viewed", product_id="p1", category="shoes"))
        assert shop.offered("v1") == []
        shop.send(event(10, "v1", "Product Viewed", product_id="p2", category="shoes"))
        assert shop.offered("v1") == [("shoes", "a")]

    def test_viewed_categories_in_a_window_withdraw_the_popup_when_the_view_leaves_it(self) -> None:
        shop = Shop(campaign("bags", when=WindowCount("category", "bags", 60, "gte", 1)))
        shop.send(event(0, "v1", "Product Viewed", product_id="p1", category="bags"))
        assert shop.offered("v1") == [("bags", "a")]
        shop.at(59)
        assert shop.offered("v1") == [("bags", "a")]
        shop.at(61)  # by the contact's timer, with no event
        assert shop.offered("v1") == []

    def test_cart_value_and_age(self) -> None:
        shop = Shop(campaign("cart", when=Cart(min_value=50, min_age_s=120)))
        shop.send(event(0, "v1", "Product Added", product_id="p1", price=60.0))
        assert shop.offered("v1") == []
        shop.at(120)
        assert shop.offered("v1") == [("cart", "a")]

    def test_utm_source_holds_for_the_session_it_came_with(self) -> None:
        shop = Shop(campaign("news", when=UtmSource(["Newsletter"])))
        shop.send(page_view(0, "v1", "https://shop.example/?utm_source=newsletter&x=1"))
        assert shop.offered("v1") == [("news", "a")]
        shop.send(page_view(10, "v2", "https://shop.example/", campaign={"source": "newsletter"}))
        assert shop.offered("v2") == [("news", "a")]
        shop.send(page_view(4 * HOUR, "v1"))  # a new visit, from nowhere in particular
        assert shop.offered("v1") == []

    def test_page_url_new_and_returning_traits_and_temperature(self) -> None:
        shop = Shop(campaign("pricing", when=PageUrl("/pricing")),
                    campaign("hello", when=Returning(False)), campaign("back", when=Returning(True)),
                    campaign("vip", when=Trait("plan", "eq", "gold")),
                    campaign("hot", when=TemperatureIs(["hot"])))
        shop.send(page_view(0, "v1", "https://shop.example/pricing"))
        assert sorted(shop.offered("v1")) == [("hello", "a"), ("pricing", "a")]
        shop.send(page_view(4 * HOUR, "v1", "https://shop.example/"))
        assert shop.offered("v1") == [("back", "a")]
        shop.send(event(4 * HOUR + 1, "v1", "Order Completed", revenue=10.0),
                  event(4 * HOUR + 2, "v1", "Order Completed", revenue=10.0),
                  event(4 * HOUR + 3, "v1", "Checkout Started"))
        assert sorted(shop.offered("v1")) == [("back", "a"), ("hot", "a")]

    def test_workflow_position(self) -> None:
        nurture = Workflow(id="nurture", trigger=OnEvent(EventMatch("Signed Up")),
                           steps=[Delay(id="wait", seconds=600, next="bye"), SendWebhook(id="bye", endpoint="e")])
        shop = Shop(campaign("inside", when=InWorkflow("nurture", "wait")), workflows=[nurture])
        shop.send(page_view(0, "v1"))
        assert shop.offered("v1") == []
        shop.send(event(1, "v1", "Signed Up"))
        assert shop.offered("v1") == [("inside", "a")]
        shop.at(601)
        assert shop.offered("v1") == []

    def test_a_disabled_campaign_is_offered_to_nobody_and_priority_orders_the_rest(self) -> None:
        shop = Shop(campaign("low", priority=1), campaign("off", enabled=False), campaign("high", priority=9))
        shop.send(page_view(0, "v1"))
        assert shop.offered("v1") == [("high", "a"), ("low", "a")]


class TestFrequency:
    """Once per session, cooldown after a close, never after conversion, at most N, a minimum interval."""

    def test_once_per_session_comes_back_when_the_session_is_over(self) -> None:
        shop = Shop(campaign("promo"))
        shop.send(page_view(0, "v1"))
        shop.send(shown(5, "v1"))
        assert shop.offered("v1") == []
        shop.at(5 + 1800)
        assert shop.offered("v1") == []  # exactly at the session's end it still runs
        shop.at(5 + 1801)
        assert shop.offered("v1") == [("promo", "a")]

    def test_a_close_holds_the_campaign_for_its_cooldown_or_for_good(self) -> None:
        shop = Shop(campaign("cool", frequency=Frequency(once_per_session=False, cooldown_after_close_s=600)),
                    campaign("gone", frequency=Frequency(once_per_session=False, stop_after_close=True)))
        shop.send(page_view(0, "v1"))
        shop.send(shown(1, "v1", "cool"), shown(2, "v1", "cool", what="Closed"),
                  shown(3, "v1", "gone"), shown(4, "v1", "gone", what="Closed"))
        assert shop.offered("v1") == []
        shop.at(602)
        assert shop.offered("v1") == [("cool", "a")]
        shop.at(10 * 86400)
        assert shop.offered("v1") == [("cool", "a")]

    def test_never_after_conversion(self) -> None:
        shop = Shop(campaign("promo", frequency=EVERY_TIME))
        shop.send(page_view(0, "v1"))
        shop.send(shown(1, "v1"))
        assert shop.offered("v1") == [("promo", "a")]
        shop.send(event(60, "v1", "Order Completed", revenue=20.0))
        assert shop.offered("v1") == []
        assert shop.stats("promo")["conversions:a"] == 1

    def test_an_order_after_the_window_is_no_conversion(self) -> None:
        shop = Shop(campaign("promo", frequency=EVERY_TIME, conversion_window_s=600, conversion_after="click"))
        shop.send(shown(0, "v1"), shown(1, "v1", what="Clicked"))
        shop.send(event(602, "v1", "Order Completed", revenue=20.0))
        assert "conversions:a" not in shop.stats("promo") and shop.offered("v1") == [("promo", "a")]

    def test_at_most_n_impressions_and_a_minimum_interval(self) -> None:
        rules = Frequency(once_per_session=False, min_interval_s=60, max_impressions=2)
        shop = Shop(campaign("promo", frequency=rules))
        shop.send(shown(0, "v1"))
        assert shop.offered("v1") == []
        shop.at(60)
        assert shop.offered("v1") == [("promo", "a")]
        shop.send(shown(70, "v1"))
        shop.at(1000)
        assert shop.offered("v1") == []


EMAIL = Workflow(id="mail", trigger=OnEvent(EventMatch("Signed Up")),
                 steps=[SendWebhook(id="hello", endpoint="esp", channel="email")])
SHARED = MessagingPolicy(quiet_hours=None, caps={}, shared_cap=SharedCap(window_s=HOUR))


def queued(outputs: list[Any]) -> list[str]:
    return [o.action.step_id for o in outputs if isinstance(o, ActionOut)]


class TestSharedCap:
    """One cap for popups and messages together: a popup impression holds an e-mail, an e-mail holds popups."""

    def test_a_popup_impression_holds_a_workflow_email_within_the_cap(self) -> None:
        shop = Shop(campaign("promo"), workflows=[EMAIL], messaging=SHARED)
        shop.send(page_view(0, "v1"), shown(1, "v1"))
        out = shop.send(event(60, "v1", "Signed Up"))
        assert queued(out) == []
        (held,) = [a for o in out if isinstance(o, ProfileWrite) for a in decode_profile(o.profile_json).actions]
        assert (held.outcome, held.reason) == ("held", "shared frequency cap")

    def test_an_email_holds_popups_until_the_cap_frees(self) -> None:
        shop = Shop(campaign("promo"), workflows=[EMAIL], messaging=SHARED)
        out = shop.send(event(0, "v1", "Signed Up"))
        assert queued(out) == ["hello"] and shop.offered("v1") == []
        shop.at(HOUR - 1)
        assert shop.offered("v1") == []
        shop.at(HOUR)  # by the contact's timer: the e-mail left the window
        assert shop.offered("v1") == [("promo", "a")]

    def test_after_the_window_both_go(self) -> None:
        shop = Shop(campaign("promo"), workflows=[EMAIL], messaging=SHARED)
        shop.send(shown(0, "v1"))
        assert queued(shop.send(event(HOUR + 1, "v1", "Signed Up"))) == ["hello"]

    def test_a_cap_on_other_channels_leaves_popups_alone(self) -> None:
        policy = MessagingPolicy(quiet_hours=None, caps={}, shared_cap=SharedCap(window_s=HOUR, channels=["sms"]))
        shop = Shop(campaign("promo"), workflows=[EMAIL], messaging=policy)
        shop.send(event(0, "v1", "Signed Up"))
        assert shop.offered("v1") == [("promo", "a")]

    def test_the_popup_channel_cap_allows_one_impression_per_window_across_campaigns(self) -> None:
        policy = MessagingPolicy(quiet_hours=None, caps={"popup": HOUR})
        shop = Shop(campaign("one"), campaign("two"), messaging=policy)
        shop.send(page_view(0, "v1"))
        assert sorted(shop.offered("v1")) == [("one", "a"), ("two", "a")]
        shop.send(shown(1, "v1", "one"))
        assert shop.offered("v1") == []
        shop.at(HOUR + 1)  # by then the session is over too: both may be shown again
        assert sorted(shop.offered("v1")) == [("one", "a"), ("two", "a")]

    def test_two_touches_per_window_when_the_cap_allows_two(self) -> None:
        policy = MessagingPolicy(quiet_hours=None, caps={}, shared_cap=SharedCap(window_s=HOUR, max_touches=2))
        shop = Shop(campaign("promo", frequency=EVERY_TIME), workflows=[EMAIL], messaging=policy)
        shop.send(shown(0, "v1"))
        assert shop.offered("v1") == [("promo", "a")]
        assert queued(shop.send(event(10, "v1", "Signed Up"))) == ["hello"]
        assert shop.offered("v1") == []
        shop.at(HOUR)
        assert shop.offered("v1") == [("promo", "a")]


class TestArms:
    """Variants and the holdout: drawn once per contact, by weight, kept across a login."""

    def test_the_same_contact_gets_the_same_arm_in_every_shard(self) -> None:
        promo = campaign("promo", "a", "b", "c", holdout_percent=20)
        arms = []
        for _ in range(2):
            shop = Shop(promo)
            shop.send(*(page_view(0, f"v{i}") for i in range(50)))
            arms.append([shop.offered(f"v{i}") for i in range(50)])
        assert arms[0] == arms[1]

    def test_arms_follow_the_weights_and_the_holdout_share(self) -> None:
        promo = msgspec.structs.replace(campaign("promo", holdout_percent=10), variants=[
            Variant(id="a", content=PopupContent(title="A"), weight=3),
            Variant(id="b", content=PopupContent(title="B"))])
        shop = Shop(promo)
        shop.send(*(page_view(0, f"v{i}") for i in range(2000)))
        counts = Counter(next(iter(shop.offered(f"v{i}")), ("promo", HOLDOUT))[1] for i in range(2000))
        assert 150 <= counts[HOLDOUT] <= 250
        assert 1250 <= counts["a"] <= 1450 and 400 <= counts["b"] <= 500
        assert shop.stats("promo")["contacts:holdout"] == counts[HOLDOUT]

    def test_a_visitor_keeps_the_variant_it_saw_after_logging_in(self) -> None:
        promo = campaign("promo", *"abcdef", frequency=EVERY_TIME)
        shop = Shop(promo)
        shop.send(*(page_view(0, f"v{i}") for i in range(30)))
        seen = {f"v{i}": shop.offered(f"v{i}")[0][1] for i in range(30)}
        shop.send(*(shown(1, who, variant=arm) for who, arm in seen.items()))
        shop.send(*(identify(2, who, f"user-{who}") for who in seen))
        assert {who: shop.offered(f"user-{who}")[0][1] for who in seen} == seen

    def test_holdout_contacts_see_nothing_and_their_orders_count_for_the_holdout(self) -> None:
        shop = Shop(campaign("promo", holdout_percent=90))
        shop.send(*(page_view(0, f"v{i}") for i in range(40)))
        held = [f"v{i}" for i in range(40) if not shop.offered(f"v{i}")]
        shown_to = [f"v{i}" for i in range(40) if shop.offered(f"v{i}")]
        assert held and shown_to
        shop.send(*(event(30, who, "Order Completed", revenue=5.0) for who in held[:3]))
        shop.send(*(shown(31, who) for who in shown_to), *(event(40, who, "Order Completed") for who in shown_to))
        stats = shop.stats("promo")
        assert stats == {"contacts:holdout": len(held), "conversions:holdout": 3, "contacts:a": len(shown_to),
                         "impressions:a": len(shown_to), "conversions:a": len(shown_to)}


class TestStats:
    """Impressions, clicks, closes, contacts and conversions are counted exactly per variant."""

    def test_every_event_counts_once_and_resends_do_not(self) -> None:
        shop = Shop(campaign("promo", "a", frequency=EVERY_TIME))
        first = shown(0, "v1")
        shop.send(first, first, shown(1, "v1"), shown(2, "v1", what="Clicked"), shown(3, "v1", what="Closed"),
                  shown(4, "v2"))
        shop.send(first)
        assert shop.stats("promo") == {"impressions:a": 3, "contacts:a": 2, "clicks:a": 1, "closes:a": 1}


class TestHostileEvents:
    """Popup events come from browsers: whatever they carry is refused or counted, never an error."""

    @pytest.mark.parametrize("props", [
        {}, {"campaign": "ghost", "variant": "a"}, {"campaign": "promo", "variant": "zz"},
        {"campaign": {"$ne": 1}, "variant": "a"}, {"campaign": ["promo"], "variant": "a"},
        {"campaign": "promo", "variant": None}, {"campaign": "promo" * 10_000, "variant": "a"},
        {"campaign": 7, "variant": 7}, {"campaign": "promo", "variant": {"a": 1}},
    ])
    def test_an_event_naming_no_known_campaign_and_variant_is_refused(self, props: dict[str, Any]) -> None:
        shop = Shop(campaign("promo"))
        out = shop.send(page_view(0, "v1"), event(1, "v1", "Popup Shown", **props))
        assert not [o for o in out if isinstance(o, Quarantined)]
        assert sum(o.amount for o in out if isinstance(o, MetricAdd) and o.name == "popup_events_refused") == 1
        assert shop.stats("promo") == {} and shop.offered("v1") == [("promo", "a")]

    def test_an_event_for_another_arm_than_the_contacts_is_refused(self) -> None:
        shop = Shop(campaign("promo", "a", "b", frequency=EVERY_TIME))
        shop.send(shown(0, "v1", variant="a"))
        out = shop.send(shown(1, "v1", variant="b"))
        assert sum(o.amount for o in out if isinstance(o, MetricAdd) and o.name == "popup_events_refused") == 1
        assert shop.stats("promo") == {"impressions:a": 1, "contacts:a": 1}



class TestProfile:
    """Operators see, per contact, what it met of each campaign."""

    def test_the_profile_shows_the_arm_and_what_was_seen(self) -> None:
        shop = Shop(campaign("promo"))
        shop.send(shown(0, "v1"), shown(1, "v1", what="Clicked"))
        profile = [decode_profile(o.profile_json) for o in shop.outputs if isinstance(o, ProfileWrite)][-1]
        seen = profile.extensions["popups"]["promo"]
        assert (seen["arm"], seen["impressions"], seen["exposed"]) == ("a", 1, True) and seen["clicked_at"] > 0
        assert "closed_at" not in seen
