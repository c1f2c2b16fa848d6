"""Event matching shared by scoring, absence and tag rules."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from dataflows.rules.matching import MISSING, compare, event_key, field_of, matches
from state.config import CompareOp, EventMatch, PropertyCondition
from state.events import Alias, Group, Identify, Page, Screen
from tests.factories import FIXED_NOW, page, track


def identify(**traits: object) -> Identify:
    return Identify(user_id="u-1", timestamp=FIXED_NOW, traits=dict(traits))


class TestEventKey:
    """An event's key is what rules name it by."""

    def test_track_is_keyed_by_its_name_even_when_unknown(self) -> None:
        """A track event's key is its name, e-commerce or not."""
        assert event_key(track("a", "Infographic Downloaded")) == "Infographic Downloaded"

    def test_page_and_screen_are_both_page(self) -> None:
        """Page and screen views share the key `page`."""
        assert event_key(page("a")) == "page"
        assert event_key(Screen(anonymous_id="a", timestamp=FIXED_NOW)) == "page"

    def test_identify_alias_and_group_have_fixed_keys(self) -> None:
        """Identify, alias and group are keyed by their type."""
        assert event_key(identify()) == "identify"
        assert event_key(Alias(user_id="u", previous_id="a", timestamp=FIXED_NOW)) == "alias"
        assert event_key(Group(user_id="u", group_id="g", timestamp=FIXED_NOW)) == "group"


class TestFieldOf:
    """Conditions see properties, or traits for identify and group."""

    def test_track_exposes_properties(self) -> None:
        """A track event's fields are its properties."""
        assert field_of(track("a", "X", price=3), "price") == 3
        assert field_of(track("a", "X"), "price") is MISSING

    def test_identify_and_group_expose_traits(self) -> None:
        """Identify and group events' fields are their traits."""
        assert field_of(identify(plan="pro"), "plan") == "pro"
        assert field_of(Group(user_id="u", group_id="g", traits={"size": 5}), "size") == 5

    def test_page_name_falls_back_to_the_top_level_name(self) -> None:
        """A page's `name` is found whether sent in properties or at the top level."""
        assert field_of(Page(anonymous_id="a", name="Pricing"), "name") == "Pricing"
        assert field_of(page("a", name="Home"), "name") == "Home"
        assert field_of(Page(anonymous_id="a"), "name") is MISSING

    def test_alias_has_no_fields(self) -> None:
        """Alias carries nothing conditions can look at."""
        assert field_of(Alias(user_id="u", previous_id="a"), "user_id") is MISSING


class TestEq:
    """`eq` compares numbers numerically and everything else exactly."""

    def test_equal_strings_match_and_case_matters(self) -> None:
        """Strings are equal only when identical."""
        assert compare("eq", "welcome", "welcome")
        assert not compare("eq", "Welcome", "welcome")

    def test_numbers_compare_numerically_across_int_float_and_numeric_strings(self) -> None:
        """1 equals 1.0, and "42" equals 42."""
        assert compare("eq", 1, 1.0)
        assert compare("eq", "42", 42)
        assert compare("eq", 42.0, "42")
        assert not compare("eq", "forty-two", 42)

    def test_two_strings_never_compare_as_numbers(self) -> None:
        """"01" is not "1" (zip codes stay text)."""
        assert not compare("eq", "01", "1")

    def test_booleans_are_not_numbers(self) -> None:
        """true is not 1, but true equals true."""
        assert not compare("eq", True, 1)
        assert compare("eq", True, True)

    def test_null_equals_null(self) -> None:
        """A present null equals an expected null."""
        assert compare("eq", None, None)


class TestNe:
    """`ne` is the negation of `eq`, and a missing field is not equal to anything."""

    def test_different_values_match(self) -> None:
        """Different values are not equal; equal numbers are."""
        assert compare("ne", "a", "b")
        assert not compare("ne", 2, 2.0)

    def test_missing_field_matches_ne(self) -> None:
        """A missing field is not equal to the expected value."""
        assert compare("ne", MISSING, "welcome")


class TestOrdering:
    """`gt`, `gte`, `lt`, `lte` order numbers numerically and text as text."""

    @pytest.mark.parametrize(("op", "below", "equal", "above"), [
        ("gt", False, False, True), ("gte", False, True, True),
        ("lt", True, False, False), ("lte", True, True, False)])
    def test_boundaries_against_ten(self, op: CompareOp, below: bool, equal: bool, above: bool) -> None:
        """9, 10 and 11 against 10 under each ordering operator."""
        assert (compare(op, 9, 10), compare(op, 10, 10), compare(op, 11, 10)) == (below, equal, above)

    def test_numeric_strings_order_as_numbers(self) -> None:
        """"10" is greater than "9" and than 9."""
        assert compare("gt", "10", "9")
        assert compare("gt", "10", 9)

    def test_iso_dates_order_as_text(self) -> None:
        """ISO dates order correctly as text."""
        assert compare("lt", "2026-01-31", "2026-02-01")

    def test_values_that_do_not_order_never_match(self) -> None:
        """A list, an object, null or text against a number never orders."""
        assert not compare("gt", [1], 0)
        assert not compare("gt", {"a": 1}, 0)
        assert not compare("gte", None, 0)
        assert not compare("lt", "abc", 5)


class TestIn:
    """`in` matches a value that is one of the expected list."""

    def test_value_in_list(self) -> None:
        """A listed value matches, an unlisted one does not."""
        assert compare("in", "nurture-2", ["nurture-1", "nurture-2"])
        assert not compare("in", "welcome", ["nurture-1", "nurture-2"])

    def test_numbers_match_numerically(self) -> None:
        """"3" is in [1, 2, 3]."""
        assert compare("in", "3", [1, 2, 3])

    def test_list_value_matches_on_any_overlap(self) -> None:
        """A list value matches when any of its elements is listed."""
        assert compare("in", ["shoes", "bags"], ["bags"])
        assert not compare("in", ["shoes"], ["bags"])

    def test_scalar_expected_acts_like_eq(self) -> None:
        """A non-list expected value is compared for equality."""
        assert compare("in", "shoes", "shoes")


class TestContains:
    """`contains`: substring of text, element of a list, key of an object."""

    def test_substring(self) -> None:
        """"/pricing" is in the URL; case matters."""
        assert compare("contains", "https://shop/pricing?x=1", "/pricing")
        assert not compare("contains", "https://shop/PRICING", "/pricing")

    def test_list_element(self) -> None:
        """A list contains its elements, numbers numerically."""
        assert compare("contains", ["vip", "newsletter"], "vip")
        assert compare("contains", [1, 2], 2.0)
        assert not compare("contains", ["vip"], "gold")

    def test_object_key(self) -> None:
        """An object contains its keys."""
        assert compare("contains", {"utm": 1}, "utm")

    def test_number_contains_nothing(self) -> None:
        """A number is not a container."""
        assert not compare("contains", 123, "2")


class TestExists:
    """`exists`: present and not null; value false asks for the opposite."""

    def test_present_value_exists(self) -> None:
        """Any present non-null value exists, even falsy ones."""
        assert compare("exists", 0, None)
        assert compare("exists", "", True)

    def test_missing_or_null_does_not_exist(self) -> None:
        """Missing fields and nulls do not exist."""
        assert not compare("exists", MISSING, None)
        assert not compare("exists", None, None)

    def test_exists_false_matches_missing_and_null(self) -> None:
        """`exists` with value false matches exactly what `exists` does not."""
        assert compare("exists", MISSING, False)
        assert compare("exists", None, False)
        assert not compare("exists", "x", False)


class TestMissingField:
    """A missing field matches no operator except `ne` and `exists` false."""

    @pytest.mark.parametrize("op", [op for op in get_args(CompareOp) if op not in ("ne", "exists")])
    @pytest.mark.parametrize("expected", [None, 0, "", ["x"]])
    def test_missing_never_matches(self, op: CompareOp, expected: Any) -> None:
        """Every other operator is false for a missing field, whatever is expected."""
        assert not compare(op, MISSING, expected)


class TestMatches:
    """An EventMatch holds when the key is equal and every condition holds."""

    def test_key_and_conditions(self) -> None:
        """Email Opened with email_id welcome matches only that e-mail."""
        rule = EventMatch("Email Opened", [PropertyCondition("email_id", "eq", "welcome")])
        assert matches(rule, track("a", "Email Opened", email_id="welcome"))
        assert not matches(rule, track("a", "Email Opened", email_id="nurture-1"))
        assert not matches(rule, track("a", "Email Sent", email_id="welcome"))

    def test_no_conditions_matches_every_event_of_the_key(self) -> None:
        """A bare name matches any event with that name."""
        assert matches(EventMatch("Form Submitted"), track("a", "Form Submitted", form="demo"))

    def test_every_condition_must_hold(self) -> None:
        """Conditions are and-ed."""
        rule = EventMatch("Order Completed", [PropertyCondition("revenue", "gte", 100),
                                              PropertyCondition("currency", "eq", "EUR")])
        assert matches(rule, track("a", "Order Completed", revenue=120, currency="EUR"))
        assert not matches(rule, track("a", "Order Completed", revenue=120, currency="USD"))
        assert not matches(rule, track("a", "Order Completed", revenue=80, currency="EUR"))

    def test_identify_conditions_read_traits(self) -> None:
        """An identify rule's conditions apply to traits."""
        rule = EventMatch("identify", [PropertyCondition("plan", "in", ["pro", "team"])])
        assert matches(rule, identify(plan="pro"))
        assert not matches(rule, identify(plan="free"))

    def test_page_rule_by_name(self) -> None:
        """`page where name eq Pricing` matches the pricing page however the name was sent."""
        rule = EventMatch("page", [PropertyCondition("name", "eq", "Pricing")])
        assert matches(rule, Page(anonymous_id="a", name="Pricing"))
        assert matches(rule, page("a", name="Pricing"))
        assert not matches(rule, page("a", name="Home"))

    def test_screen_matches_page_rules(self) -> None:
        """A mobile screen view counts as a page view."""
        assert matches(EventMatch("page"), Screen(anonymous_id="a", name="Cart"))

    def test_condition_on_a_missing_property_with_ne_matches(self) -> None:
        """`ne` holds when the property is absent."""
        rule = EventMatch("Product Viewed", [PropertyCondition("category", "ne", "shoes")])
        assert matches(rule, track("a", "Product Viewed"))
