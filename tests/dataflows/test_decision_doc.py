"""The decision document: what it holds, under which ids, when it is written and when it is pushed."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.io.outputs import DecisionDocWrite, DecisionPush, Quarantined
from state.campaigns import Frequency, Variant
from state.config import ActiveConfig
from state.config_rules import config_problem
from state.decisions import DecisionDoc, PopupContent, PublicDecisions, decode_doc, encode_doc
from tests.dataflows.popup_shop import Shop, campaign, event, identify, page_view, shown


def writes(outputs: list[Any]) -> list[DecisionDocWrite]:
    return [o for o in outputs if isinstance(o, DecisionDocWrite)]


def pushes(outputs: list[Any]) -> list[DecisionPush]:
    return [o for o in outputs if isinstance(o, DecisionPush)]


class TestSeeds:
    """Strips grow from what was viewed, is in the cart and was bought: product ids, most recent first."""

    def test_viewed_cart_and_bought_most_recent_first_without_repeats(self) -> None:
        shop = Shop()
        shop.send(*(event(i, "v1", "Product Viewed", product_id=p) for i, p in enumerate(["p1", "p2", "p1", "p3"])),
                  event(10, "v1", "Product Added", product_id="p2", price=5.0),
                  event(11, "v1", "Product Added", product_id="p3", price=5.0))
        assert shop.doc("v1").seeds.viewed == ["p3", "p1", "p2"]  # type: ignore[union-attr]
        assert shop.doc("v1").seeds.cart == ["p3", "p2"]  # type: ignore[union-attr]
        shop.send(event(20, "v1", "Order Completed", products=[{"product_id": "p2"}, {"sku": "p9"}, "junk"]))
        shop.send(event(30, "v1", "Order Completed", product_id="p4"))
        seeds = shop.doc("v1").seeds  # type: ignore[union-attr]
        assert seeds.bought == ["p4", "p2", "p9"] and seeds.cart == []

    def test_each_seed_list_is_bounded(self) -> None:
        shop = Shop()
        shop.send(*(event(i, "v1", "Product Viewed", product_id=f"p{i}") for i in range(60)),
                  event(61, "v1", "Order Completed", products=[{"product_id": f"b{i}"} for i in range(60)]))
        seeds = shop.doc("v1").seeds  # type: ignore[union-attr]
        assert seeds.viewed == [f"p{i}" for i in range(59, 39, -1)] and len(seeds.bought) == 20


class TestPublicFields:
    """Nothing about the contact is public unless an enabled campaign marks it."""

    def test_no_campaign_no_public_fields(self) -> None:
        shop = Shop(campaign("promo"))
        shop.send(page_view(0, "v1"))
        assert shop.doc("v1").public == {}  # type: ignore[union-attr]

    def test_a_campaign_marking_temperature_and_cart_value_makes_those_public(self) -> None:
        shop = Shop(campaign("promo", public=["temperature", "cart_value"]), campaign("off", enabled=False,
                                                                                       public=["segments"]))
        shop.send(event(0, "v1", "Product Added", product_id="p1", price=12.5, quantity=2))
        assert shop.doc("v1").public == {"temperature": "cold", "cart_value": 25.0}  # type: ignore[union-attr]


class TestWhereAndWhen:
    """Written under every id the page may know, only when it changed; pushed when its public part changed."""

    def test_a_visitor_with_nothing_to_show_gets_no_document(self) -> None:
        shop = Shop()
        assert writes(shop.send(page_view(0, "v1"), event(1, "v1", "Signed Up"))) == []

    def test_written_once_for_the_same_content_and_expiring_for_a_visitor(self) -> None:
        shop = Shop(campaign("promo", frequency=Frequency(once_per_session=False)))
        first = writes(shop.send(page_view(0, "v1")))
        assert [(w.ids, w.ttl_s) for w in first] == [(("v1",), 395 * 86400.0)]
        assert writes(shop.send(page_view(1, "v1"), event(2, "v1", "Signed Up"))) == []

    def test_after_login_it_lives_under_the_user_id_and_every_anonymous_id_without_expiry(self) -> None:
        shop = Shop(campaign("promo"))
        shop.send(page_view(0, "phone"), page_view(0, "laptop"))
        out = shop.send(identify(1, "phone", "u1"), identify(2, "laptop", "u1"))
        last = writes(out)[-1]
        assert set(last.ids) == {"u1", "phone", "laptop"} and last.ttl_s is None
        doc = decode_doc(last.doc_json)
        assert (doc.contact_id, doc.user_id) == ("u1", "u1")

    def test_pushed_to_the_visitors_ids_when_the_popups_change_and_not_otherwise(self) -> None:
        shop = Shop(campaign("promo"))
        out = shop.send(page_view(0, "v1"))
        assert [p.ids for p in pushes(out)] == [("v1",)]
        assert pushes(shop.send(page_view(1, "v1"))) == []
        out = shop.send(shown(2, "v1"))  # once per session: the popup is withdrawn
        (push,) = pushes(out)
        assert decode_doc(push.decision_json).popups == []

    def test_a_contact_known_only_from_the_server_is_written_but_never_pushed(self) -> None:
        shop = Shop(campaign("promo"))
        server_side = event(0, "ignored", "Order Completed", user_id="u9", product_id="p1")
        out = shop.send(msgspec.structs.replace(server_side, anonymous_id=None))
        assert writes(out) and pushes(out) == []

    def test_the_document_reads_as_the_public_decisions_shape(self) -> None:
        """What the read path composes from: popups and public fields carry over as they are."""
        shop = Shop(campaign("promo", public=["stage"]))
        shop.send(page_view(0, "v1"))
        doc = shop.doc("v1")
        assert doc is not None
        public = PublicDecisions(popups=doc.popups, public=doc.public)
        assert msgspec.json.decode(msgspec.json.encode(public), type=PublicDecisions) == public


PROPERTY = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=4), max_leaves=12)


class TestWhateverEventsCarry:
    """Hostile properties of popup and order events never break a contact or its document."""

    @settings(max_examples=60, deadline=None)
    @given(st.sampled_from(["Popup Shown", "Popup Clicked", "Popup Closed", "Order Completed", "Product Viewed"]),
           st.dictionaries(st.sampled_from(["campaign", "variant", "products", "product_id", "sku", "x"]),
                           PROPERTY, max_size=5))
    def test_any_properties_leave_a_document_that_decodes(self, name: str, props: dict[str, Any]) -> None:
        shop = Shop(campaign("promo", public=["segments", "score"]))
        out = shop.send(page_view(0, "v1"), event(1, "v1", name, **props), shown(2, "v1"))
        assert not [o for o in out if isinstance(o, Quarantined)]
        doc = shop.doc("v1")
        assert isinstance(doc, DecisionDoc)
        assert all(isinstance(p, str) for p in [*doc.seeds.viewed, *doc.seeds.bought, *doc.seeds.cart])


CONTENT = st.fixed_dictionaries({"title": st.text(max_size=200)}, optional={
    "text": st.text(max_size=300), "cta_label": st.text(max_size=100), "coupon": st.text(max_size=100),
    "cta_url": st.from_regex(r"\Ahttps?://[a-z0-9.<>\"' ]{1,30}\Z"),
    "image": st.text(max_size=40)})


class TestWhateverTheValidatorAccepts:
    """Any content the admin API accepts reaches the document unchanged, and the document decodes."""

    @settings(max_examples=80, deadline=None)
    @given(CONTENT)
    def test_accepted_content_survives_to_the_document(self, content: dict[str, Any]) -> None:
        try:
            accepted = msgspec.convert(content, PopupContent)
        except msgspec.ValidationError:
            return  # refused at the door, with a message: nothing later sees it
        promo = msgspec.structs.replace(campaign("promo"), variants=[Variant(id="a", content=accepted)])
        assert config_problem(ActiveConfig(version=1, campaigns=[promo])) is None
        shop = Shop(promo)
        shop.send(page_view(0, "v1"))
        doc = shop.doc("v1")
        assert doc is not None and doc.popups[0].content == accepted
        assert decode_doc(encode_doc(doc)) == doc
