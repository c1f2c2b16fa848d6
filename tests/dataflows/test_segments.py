"""Segment evaluation: every condition kind, ordering, timers, and a brute-force cross-check."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from dataflows.rules.conditions import (
    CompiledSegments,
    changes,
    compile_segments,
    evaluate_condition,
    evaluate_segments,
    next_flip,
    stage_of,
)
from state.config import (
    DAY,
    All,
    Anniversary,
    AnyOf,
    Cart,
    Condition,
    EventMatch,
    HasTag,
    InList,
    InSegment,
    NoEventWithin,
    Not,
    PropertyCondition,
    Rfm,
    Score,
    SegmentDef,
    StageIs,
    StageRule,
    TagRule,
    TemperatureIs,
    Total,
    Trait,
    WindowCount,
    default_stage_rules,
)
from state.segment_graph import SegmentDefinitionError

NOW_DT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NOW = NOW_DT.timestamp()
HOUR = 3600.0


@dataclass(frozen=True)
class Ev:
    """One past event of a fake contact."""

    at: float
    name: str
    category: str | None = None
    product: str | None = None


@dataclass
class FakeView:
    """A plain ContactView: every answer comes straight from a field."""

    now: float = NOW
    traits: Mapping[str, object] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    lists: set[str] = field(default_factory=set)
    score_value: float = 0.0
    temperature_value: str = "cold"
    stage_value: str = "awareness"
    events: list[Ev] = field(default_factory=list)
    rfm_value: tuple[int, int, int] = (0, 0, 0)
    cart: tuple[float, float] | None = None  # (value, updated_at)
    totals: dict[str, float] = field(default_factory=dict)
    segments: set[str] = field(default_factory=set)

    def at(self, now: float) -> FakeView:
        """The same contact seen at another instant."""
        clone = FakeView(**{k: v for k, v in self.__dict__.items() if k != "now"})
        clone.now = now
        return clone

    def trait(self, name: str) -> object | None:
        return self.traits.get(name)

    def has_tag(self, tag: str) -> bool:
        return tag in self.tags

    def in_list(self, list_id: str) -> bool:
        return list_id in self.lists

    def score(self) -> float:
        return self.score_value

    def temperature(self) -> str:
        return self.temperature_value

    def stage(self) -> str:
        return self.stage_value

    def _matching(self, dimension: str, value: str, window_s: float, event: str | None) -> list[float]:
        out = []
        for e in self.events:
            if not self.now - window_s < e.at <= self.now:
                continue
            if dimension == "event":
                ok = e.name == value
            else:
                ok = (e.category if dimension == "category" else e.product) == value
                ok = ok and (event is None or e.name == event)
            if ok:
                out.append(e.at)
        return out

    def window_count(self, dimension: str, value: str, window_s: float, event: str | None) -> int:
        return len(self._matching(dimension, value, window_s, event))

    def next_window_change(self, dimension: str, value: str, window_s: float,
                           event: str | None) -> float | None:
        inside = self._matching(dimension, value, window_s, event)
        return min(inside) + window_s if inside else None

    def last_event_at(self, event: str) -> float | None:
        return max((e.at for e in self.events if e.name == event), default=None)

    def rfm(self) -> tuple[int, int, int]:
        return self.rfm_value

    def cart_value(self) -> float:
        return self.cart[0] if self.cart else 0.0

    def cart_updated_at(self) -> float | None:
        return self.cart[1] if self.cart else None

    def total(self, counter: str) -> float:
        return self.totals.get(counter, 0.0)

    def in_segment(self, segment_id: str) -> bool:
        return segment_id in self.segments


def holds(condition: Condition, view: FakeView) -> bool:
    return evaluate_condition(condition, view, {})


def midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def on_day(day: date, hour: int = 12) -> FakeView:
    return FakeView(now=midnight(day) + hour * HOUR)


class TestTraitComparisons:
    """Traits compare like event properties (`dataflows.matching.compare`); a missing trait is MISSING."""

    @pytest.mark.parametrize(("condition", "traits", "expected"), [
        (Trait("age", "eq", 42), {"age": "42"}, True),
        (Trait("zip", "eq", "1"), {"zip": "01"}, False),
        (Trait("optin", "eq", 1), {"optin": True}, False),
        (Trait("age", "gt", "9"), {"age": "10"}, True),
        (Trait("signed_up", "lt", "2024-02-01"), {"signed_up": "2024-01-15"}, True),
        (Trait("age", "gt", 0), {}, False),
        (Trait("age", "lt", 1000), {}, False),
        (Trait("city", "ne", "Roma"), {}, True),
        (Trait("city", "eq", None), {}, False),
        (Trait("city", "in", ["Roma", "Milano"]), {"city": "Milano"}, True),
        (Trait("interests", "in", ["golf"]), {"interests": ["ski", "golf"]}, True),
        (Trait("email", "contains", "gmail"), {"email": "ada@gmail.com"}, True),
        (Trait("interests", "contains", "golf"), {"interests": ["golf"]}, True),
        (Trait("phone", "exists"), {"phone": "+39"}, True),
        (Trait("phone", "exists"), {}, False),
        (Trait("phone", "exists", False), {}, True),
        (Trait("phone", "exists", False), {"phone": "+39"}, False),
    ])
    def test_trait_comparison(self, condition: Trait, traits: dict[str, object], expected: bool) -> None:
        """Numbers coerce, text stays text, missing matches only `ne` and `exists: false`."""
        assert holds(condition, FakeView(traits=traits)) is expected


class TestLeaves:
    """Each condition kind reads the right part of the view, edges included."""

    def test_trait_tag_list(self) -> None:
        """Traits compare with their op; tags and lists are memberships."""
        view = FakeView(traits={"age": 34, "city": "Roma"}, tags={"vip"}, lists={"press"})
        assert holds(Trait("age", "gte", 34), view)
        assert not holds(Trait("age", "gt", 34), view)
        assert not holds(Trait("city", "eq", "Roma"), FakeView(traits={"city": None}))
        assert holds(Trait("city", "eq", "Roma"), view)
        assert holds(Trait("missing", "exists", False), view)
        assert holds(HasTag("vip"), view) and not holds(HasTag("b2b"), view)
        assert holds(InList("press"), view) and not holds(InList("beta"), view)

    def test_score_temperature_stage_total_rfm(self) -> None:
        """Score and totals compare, temperature and stage are one of the values, RFM by part."""
        view = FakeView(score_value=50.0, temperature_value="hot", stage_value="decision",
                        totals={"orders": 2, "revenue": 99.5}, rfm_value=(5, 2, 1))
        assert holds(Score("gte", 50), view) and not holds(Score("gt", 50), view)
        assert holds(TemperatureIs(["warm", "hot"]), view)
        assert not holds(TemperatureIs(["cold"]), view)
        assert holds(StageIs(["decision"]), view)
        assert holds(Total("orders", "eq", 2), view)
        assert holds(Total("revenue", "lt", 100), view)
        assert holds(Total("sessions", "eq", 0), view)
        assert holds(Rfm("r", "eq", 5), view) and holds(Rfm("f", "lte", 2), view)
        assert not holds(Rfm("m", "gte", 2), view)

    def test_window_count_counts_the_half_open_window(self) -> None:
        """An event exactly `window_s` ago has left the window; one just after has not."""
        week = 7 * DAY
        view = FakeView(events=[Ev(NOW - week, "Product Viewed", "shoes"),
                                Ev(NOW - week + 1, "Product Viewed", "shoes"),
                                Ev(NOW - 10, "Product Viewed", "shoes"),
                                Ev(NOW - 5, "Product Viewed", "bags"),
                                Ev(NOW - 1, "Product Added", "shoes")])
        assert holds(WindowCount("category", "shoes", week, "gte", 2, event="Product Viewed"), view)
        assert not holds(WindowCount("category", "shoes", week, "gte", 3, event="Product Viewed"), view)
        assert holds(WindowCount("category", "shoes", week, "eq", 3), view)
        assert holds(WindowCount("event", "Product Added", HOUR, "gte", 1), view)
        assert holds(WindowCount("event", "Order Completed", HOUR, "eq", 0), view)

    def test_no_event_within(self) -> None:
        """True from `last + window_s` on; a contact who never did it counts unless `ever_happened`."""
        ninety = 90 * DAY
        never = FakeView()
        assert holds(NoEventWithin("Order Completed", ninety), never)
        assert not holds(NoEventWithin("Order Completed", ninety, ever_happened=True), never)
        exactly = FakeView(events=[Ev(NOW - ninety, "Order Completed")])
        assert holds(NoEventWithin("Order Completed", ninety, ever_happened=True), exactly)
        recent = FakeView(events=[Ev(NOW - ninety + 1, "Order Completed")])
        assert not holds(NoEventWithin("Order Completed", ninety), recent)

    def test_cart_bounds(self) -> None:
        """Non-empty cart; value bounds inclusive; age ≥ min and < max."""
        assert not holds(Cart(), FakeView())
        assert holds(Cart(), FakeView(cart=(0.0, NOW)))  # free items still make a cart
        cart = FakeView(cart=(100.0, NOW - 1800))
        assert holds(Cart(min_value=100, max_value=100), cart)
        assert not holds(Cart(min_value=100.01), cart)
        assert holds(Cart(min_age_s=1800), cart) and not holds(Cart(min_age_s=1801), cart)
        assert not holds(Cart(max_age_s=1800), cart) and holds(Cart(max_age_s=1801), cart)

    def test_anniversary_today_and_within_days(self) -> None:
        """Holds from `within_days` before the recurrence through the day itself (UTC)."""
        today = date(2026, 11, 23)
        birthday = {"birthday": "1990-11-23"}
        assert holds(Anniversary("birthday"), FakeView(traits=birthday))
        in_a_week = {"birthday": "1990-11-30"}
        assert holds(Anniversary("birthday", 7), FakeView(traits=in_a_week))
        assert not holds(Anniversary("birthday", 6), FakeView(traits=in_a_week))
        yesterday = {"birthday": "1990-11-22"}
        assert not holds(Anniversary("birthday", 7), FakeView(traits=yesterday))
        late_evening = FakeView(now=midnight(today) + 86_399, traits=birthday)
        assert holds(Anniversary("birthday"), late_evening)
        assert not holds(Anniversary("birthday"), late_evening.at(midnight(today) + DAY))

    def test_anniversary_wraps_the_year_and_accepts_datetimes(self) -> None:
        """Dec 30 sees a Jan 2 birthday 3 days ahead; datetime strings and objects work."""
        view = on_day(date(2026, 12, 30))
        view.traits = {"birthday": "2000-01-02T08:00:00+02:00"}
        assert holds(Anniversary("birthday", 3), view)
        assert not holds(Anniversary("birthday", 2), view)
        view.traits = {"birthday": datetime(2000, 12, 30, 23, 0, tzinfo=UTC)}
        assert holds(Anniversary("birthday"), view)
        view.traits = {"birthday": date(2000, 12, 30)}
        assert holds(Anniversary("birthday"), view)

    def test_feb_29_is_celebrated_on_feb_28_in_non_leap_years(self) -> None:
        """Non-leap year: Feb 28; leap year: Feb 29 and not Feb 28."""
        traits = {"birthday": "2000-02-29"}
        assert holds(Anniversary("birthday"), FakeView(now=on_day(date(2027, 2, 28)).now, traits=traits))
        assert not holds(Anniversary("birthday"), FakeView(now=on_day(date(2028, 2, 28)).now, traits=traits))
        assert holds(Anniversary("birthday"), FakeView(now=on_day(date(2028, 2, 29)).now, traits=traits))

    def test_anniversary_needs_a_full_year_and_a_date(self) -> None:
        """Signing up today is not an anniversary; a missing or malformed date never holds."""
        assert not holds(Anniversary("signed_up_at"), FakeView(traits={"signed_up_at": "2026-11-23"}))
        assert holds(Anniversary("signed_up_at"), FakeView(traits={"signed_up_at": "2025-11-23"}))
        for bad in (None, "", "23/11/1990", "1990-13-01", 19901123):
            assert not holds(Anniversary("birthday", 400), FakeView(traits={"birthday": bad}))

    def test_boolean_combinators(self) -> None:
        """All, AnyOf and Not; empty All is true and empty AnyOf false."""
        view = FakeView(tags={"a"})
        yes, no = HasTag("a"), HasTag("b")
        assert holds(All([yes, Not(no)]), view)
        assert not holds(All([yes, no]), view)
        assert holds(AnyOf([no, yes]), view) and not holds(AnyOf([no]), view)
        assert holds(All([]), view) and not holds(AnyOf([]), view)
        assert holds(Not(Not(yes)), view)


class TestOrderingAndValidation:
    """InSegment targets are evaluated first; unknown targets, duplicates and cycles are rejected."""

    def test_dependencies_are_evaluated_first_whatever_the_declaration_order(self) -> None:
        """A segment built on two others sees their fresh membership in the same pass."""
        compiled = compile_segments([
            SegmentDef("vip-lapsed", All([InSegment("vip"), InSegment("lapsed")])),
            SegmentDef("lapsed", NoEventWithin("Order Completed", 90 * DAY, ever_happened=True)),
            SegmentDef("vip", Total("revenue", "gte", 500)),
            SegmentDef("not-vip", Not(InSegment("vip"))),
        ])
        ids = compiled.ids
        assert ids.index("vip") < ids.index("vip-lapsed") and ids.index("lapsed") < ids.index("vip-lapsed")
        assert ids.index("vip") < ids.index("not-vip")
        view = FakeView(totals={"revenue": 600}, events=[Ev(NOW - 100 * DAY, "Order Completed")],
                        segments={"not-vip"})  # stale answer from the view must not be used
        assert evaluate_segments(compiled, view) == {"vip", "lapsed", "vip-lapsed"}

    @pytest.mark.parametrize(("segments", "message"), [
        ([SegmentDef("a", InSegment("a"))], "segment cycle: a → a"),
        ([SegmentDef("a", InSegment("b")), SegmentDef("b", Not(InSegment("c"))),
          SegmentDef("c", AnyOf([HasTag("x"), InSegment("a")]))], "segment cycle: a → b → c → a"),
        ([SegmentDef("a", InSegment("ghost"))], "segment 'a' refers to unknown segment 'ghost'"),
        ([SegmentDef("a", HasTag("x")), SegmentDef("a", HasTag("y"))], "segment 'a' is defined twice"),
    ])
    def test_bad_definitions_are_rejected_with_a_clear_message(
            self, segments: list[SegmentDef], message: str) -> None:
        """The error names the cycle path, the unknown reference or the duplicate."""
        with pytest.raises(SegmentDefinitionError) as info:
            compile_segments(segments)
        assert str(info.value) == message
        assert isinstance(info.value, ValueError)

    def test_deep_chain_does_not_hit_the_recursion_limit(self) -> None:
        """5000 chained segments order fine (iterative search)."""
        chain = [SegmentDef(f"s{i}", InSegment(f"s{i + 1}")) for i in range(5000)]
        chain.append(SegmentDef("s5000", HasTag("x")))
        compiled = compile_segments(chain)
        assert compiled.ids[0] == "s5000"
        assert len(evaluate_segments(compiled, FakeView(tags={"x"}))) == 5001

    def test_stage_rule_may_not_test_the_stage(self) -> None:
        """A stage rule reading the stage would recurse forever."""
        with pytest.raises(SegmentDefinitionError, match="stage rule 'x' tests the stage itself"):
            compile_segments([], stages=[StageRule("x", StageIs(["decision"]))])

    def test_changes_lists_entered_and_exited_sorted(self) -> None:
        """Diff of two membership sets."""
        assert changes({"a", "b", "z"}, {"b", "y", "c"}) == (["c", "y"], ["a", "z"])
        assert changes(set(), set()) == ([], [])


class TestStages:
    """The first matching stage rule wins; default is awareness."""

    def test_default_rules(self) -> None:
        """Orders + score → advocacy; one order → retention; cart → decision; views → consideration."""
        rules = default_stage_rules()
        assert stage_of(rules, FakeView()) == "awareness"
        assert stage_of(rules, FakeView(events=[Ev(NOW - DAY, "Product Viewed")] * 2)) == "consideration"
        assert stage_of(rules, FakeView(cart=(10.0, NOW - 60))) == "decision"
        assert stage_of(rules, FakeView(totals={"orders": 1})) == "retention"
        assert stage_of(rules, FakeView(totals={"orders": 3}, score_value=49.9)) == "retention"
        assert stage_of(rules, FakeView(totals={"orders": 3}, score_value=50)) == "advocacy"


class TestNextFlip:
    """Timers: the earliest moment a time-driven leaf changes, and the change happens exactly then."""

    def test_window_count_exit_happens_exactly_at_the_flip(self) -> None:
        """Viewed shoes 3× in 7 d: leaves when the oldest view is 7 d old, with no new event."""
        week = 7 * DAY
        compiled = compile_segments([SegmentDef(
            "shoe-fans", WindowCount("category", "shoes", week, "gte", 3, event="Product Viewed"))])
        views = [NOW - 3 * DAY, NOW - 2 * DAY, NOW - HOUR]
        view = FakeView(events=[Ev(t, "Product Viewed", "shoes") for t in views])
        assert evaluate_segments(compiled, view) == {"shoe-fans"}
        flip = next_flip(compiled, view)
        assert flip == NOW - 3 * DAY + week
        assert evaluate_segments(compiled, view.at(flip - 0.001)) == {"shoe-fans"}
        assert evaluate_segments(compiled, view.at(flip)) == set()

    def test_no_event_within_enters_exactly_at_the_flip(self) -> None:
        """Lapsed buyer: enters 90 d after the last order."""
        compiled = compile_segments([SegmentDef("lapsed", NoEventWithin("Order Completed", 90 * DAY))])
        view = FakeView(events=[Ev(NOW - 10 * DAY, "Order Completed")])
        flip = next_flip(compiled, view)
        assert flip == NOW + 80 * DAY
        assert evaluate_segments(compiled, view.at(flip - 0.001)) == set()
        assert evaluate_segments(compiled, view.at(flip)) == {"lapsed"}
        assert next_flip(compiled, view.at(flip)) is None
        assert next_flip(compiled, FakeView()) is None

    def test_cart_age_bounds_flip_in_and_out(self) -> None:
        """Abandoned 30 min–4 h: enters at 30 min, leaves at 4 h."""
        compiled = compile_segments([SegmentDef("abandoned", Cart(min_age_s=1800, max_age_s=4 * HOUR))])
        view = FakeView(cart=(50.0, NOW - 60))
        enter = next_flip(compiled, view)
        assert enter == NOW - 60 + 1800
        assert evaluate_segments(compiled, view.at(enter - 0.001)) == set()
        inside = view.at(enter)
        assert evaluate_segments(compiled, inside) == {"abandoned"}
        leave = next_flip(compiled, inside)
        assert leave == NOW - 60 + 4 * HOUR
        assert evaluate_segments(compiled, view.at(leave)) == set()
        assert next_flip(compiled, view.at(leave)) is None

    def test_anniversary_flips_at_utc_midnights(self) -> None:
        """Birthday week: opens at midnight 7 days before, closes at midnight after the day."""
        compiled = compile_segments([SegmentDef("birthday-week", Anniversary("birthday", 7))])
        view = FakeView(traits={"birthday": "1990-12-10"})
        opens = next_flip(compiled, view)
        assert opens == midnight(date(2026, 12, 3))
        assert evaluate_segments(compiled, view.at(opens - 0.001)) == set()
        assert evaluate_segments(compiled, view.at(opens)) == {"birthday-week"}
        closes = next_flip(compiled, view.at(opens))
        assert closes == midnight(date(2026, 12, 11))
        assert evaluate_segments(compiled, view.at(closes)) == set()
        assert next_flip(compiled, view.at(closes)) == midnight(date(2027, 12, 3))

    def test_the_earliest_leaf_wins_and_stage_rules_count(self) -> None:
        """Several leaves: the minimum; stage rules' time leaves are timers too."""
        compiled = compile_segments(
            [SegmentDef("a", NoEventWithin("page", HOUR)), SegmentDef("b", Cart(max_age_s=600))],
            stages=default_stage_rules())
        view = FakeView(events=[Ev(NOW - 1, "page"), Ev(NOW - 5 * DAY, "Checkout Started")],
                        cart=(1.0, NOW - 60))
        assert next_flip(compiled, view) == NOW - 60 + 600
        view.cart = None
        assert next_flip(compiled, view) == NOW - 1 + HOUR
        view.events = [Ev(NOW - 5 * DAY, "Checkout Started")]
        assert next_flip(compiled, view) == NOW - 5 * DAY + 30 * DAY  # decision stage ends

    def test_no_time_leaves_means_no_timer(self) -> None:
        """Traits, tags, totals never need a timer."""
        compiled = compile_segments([SegmentDef("x", All([HasTag("a"), Total("orders", "gt", 1)]))])
        assert compiled.time_leaves == ()
        assert next_flip(compiled, FakeView(tags={"a"})) is None


# ---- the seed example: a form with three fields of three values each ---------

PROVINCES = ("torino", "milano", "roma")
AGE_BANDS = ("18-34", "35-54", "55+")
INTERESTS = ("mortgage", "insurance", "savings")
FORM_FIELDS = {"province": PROVINCES, "age_band": AGE_BANDS, "interest": INTERESTS}


def form_tag_rules() -> list[TagRule]:
    """One tag rule per field value: a Form Submitted with province=roma tags `province:roma`."""
    return [TagRule(EventMatch("Form Submitted", [PropertyCondition(name, "eq", value)]), f"{name}:{value}")
            for name, values in FORM_FIELDS.items() for value in values]


def tags_from_form(rules: list[TagRule], properties: dict[str, str]) -> set[str]:
    """What the tag rules give for one form submission (the dataflow applies them in production)."""
    return {r.tag for r in rules
            if all(properties.get(c.name) == c.value for c in r.match.where) and not r.remove}


def seed_segments() -> list[SegmentDef]:
    """Nine combinable segments, province × interest, built on tags."""
    return [SegmentDef(f"{p}-{i}", All([HasTag(f"province:{p}"), HasTag(f"interest:{i}")]),
                       name=f"{p.title()} — {i}")
            for p in PROVINCES for i in INTERESTS]


class TestSeedExample:
    """Form → tags → nine province × interest segments, plus combinations with age traits."""

    def test_nine_segments_for_a_few_contacts(self) -> None:
        """Each contact is in exactly the segment of its own province and interest."""
        rules = form_tag_rules()
        assert len(rules) == 9
        compiled = compile_segments(seed_segments())
        forms = {
            "ada": {"province": "roma", "age_band": "35-54", "interest": "mortgage"},
            "bea": {"province": "torino", "age_band": "18-34", "interest": "savings"},
            "cal": {"province": "milano", "age_band": "55+", "interest": "insurance"},
            "dan": {"province": "milano", "age_band": "55+"},  # left interest empty
        }
        members = {who: evaluate_segments(compiled, FakeView(tags=tags_from_form(rules, form)))
                   for who, form in forms.items()}
        assert members == {"ada": {"roma-mortgage"}, "bea": {"torino-savings"},
                           "cal": {"milano-insurance"}, "dan": set()}

    def test_segments_combine_with_each_other_and_with_traits(self) -> None:
        """"Mortgage anywhere in the north, under 55" is a segment of segments plus a trait."""
        rules = form_tag_rules()
        north = SegmentDef("north-mortgage",
                           AnyOf([InSegment("torino-mortgage"), InSegment("milano-mortgage")]))
        young = SegmentDef("north-mortgage-under-55", All([
            InSegment("north-mortgage"), Trait("age_band", "in", ["18-34", "35-54"])]))
        compiled = compile_segments([young, north, *seed_segments()])
        form = {"province": "torino", "age_band": "18-34", "interest": "mortgage"}
        view = FakeView(tags=tags_from_form(rules, form), traits=dict(form))
        assert evaluate_segments(compiled, view) == {"torino-mortgage", "north-mortgage",
                                                     "north-mortgage-under-55"}
        view.traits = {**form, "age_band": "55+"}
        assert evaluate_segments(compiled, view) == {"torino-mortgage", "north-mortgage"}


# ---- property test: the evaluator against plain Python ------------------------

CATEGORIES = ("shoes", "bags", "hats")
EVENT_NAMES = ("page", "Product Viewed", "Product Added", "Order Completed")


def property_segments() -> list[SegmentDef]:
    """A segment set touching every condition kind, with InSegment chains."""
    return [
        SegmentDef("vip-lapsed", All([InSegment("vip"), InSegment("lapsed")])),
        SegmentDef("shoe-fans", WindowCount("category", "shoes", 7 * DAY, "gte", 3, event="Product Viewed")),
        SegmentDef("lapsed", NoEventWithin("Order Completed", 30 * DAY, ever_happened=True)),
        SegmentDef("big-cart", Cart(min_value=100, min_age_s=1800, max_age_s=DAY)),
        SegmentDef("north-hot", All([Trait("province", "in", ["torino", "milano"]), TemperatureIs(["hot"])])),
        SegmentDef("vip", AnyOf([Total("revenue", "gte", 500), Rfm("m", "gte", 4)])),
        SegmentDef("tagged-not-vip", All([HasTag("newsletter"), Not(InSegment("vip")), InList("beta")])),
        SegmentDef("birthday-week", Anniversary("birthday", 7)),
        SegmentDef("mid-score", All([Score("gte", 20), Score("lt", 50), StageIs(["decision", "retention"])])),
        SegmentDef("young", Trait("age", "lt", 30)),
        SegmentDef("no-visits-today", Not(WindowCount("event", "page", DAY, "gt", 0))),
    ]


def random_contact(rng: random.Random) -> FakeView:
    """A contact with random traits, tags, events over the last 60 days and maybe a cart."""
    now = NOW + rng.uniform(-DAY, DAY)
    events = [Ev(now - rng.uniform(0, 60 * DAY), rng.choice(EVENT_NAMES), rng.choice(CATEGORIES))
              for _ in range(rng.randrange(0, 25))]
    birthday = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 365 * 40))
    traits: dict[str, object] = {"province": rng.choice(("torino", "milano", "roma", None)),
                                 "age": rng.choice((rng.randrange(15, 80), str(rng.randrange(15, 80)), None)),
                                 "birthday": rng.choice((birthday.isoformat(), None))}
    return FakeView(
        now=now,
        traits=traits,
        tags={t for t in ("newsletter", "b2b") if rng.random() < 0.5},
        lists={"beta"} if rng.random() < 0.5 else set(),
        score_value=rng.uniform(0, 80),
        temperature_value=rng.choice(("cold", "warm", "hot")),
        stage_value=rng.choice(("awareness", "decision", "retention")),
        events=events,
        rfm_value=(rng.randint(0, 5), rng.randint(0, 5), rng.randint(0, 5)),
        cart=(rng.uniform(0, 300), now - rng.uniform(0, 2 * DAY)) if rng.random() < 0.5 else None,
        totals={"revenue": rng.choice((0.0, 499.99, 500.0, 800.0))},
    )


def brute_force(c: FakeView) -> set[str]:
    """The same segments as `property_segments`, written out by hand."""
    out: set[str] = set()
    shoe_views = [e for e in c.events if e.name == "Product Viewed" and e.category == "shoes"
                  and c.now - 7 * DAY < e.at <= c.now]
    if len(shoe_views) >= 3:
        out.add("shoe-fans")
    orders = [e.at for e in c.events if e.name == "Order Completed"]
    if orders and max(orders) <= c.now - 30 * DAY:
        out.add("lapsed")
    if c.cart is not None and c.cart[0] >= 100 and 1800 <= c.now - c.cart[1] < DAY:
        out.add("big-cart")
    if c.traits["province"] in ("torino", "milano") and c.temperature_value == "hot":
        out.add("north-hot")
    vip = c.totals["revenue"] >= 500 or c.rfm_value[2] >= 4
    if vip:
        out.add("vip")
    if vip and "lapsed" in out:
        out.add("vip-lapsed")
    if "newsletter" in c.tags and not vip and "beta" in c.lists:
        out.add("tagged-not-vip")
    birthday = c.traits["birthday"]
    if isinstance(birthday, str):
        born = date.fromisoformat(birthday)
        today = datetime.fromtimestamp(c.now, UTC).date()
        for k in range(8):
            day = today + timedelta(days=k)
            same = (day.month, day.day) == (born.month, born.day)
            leap_stand_in = ((born.month, born.day) == (2, 29) and (day.month, day.day) == (2, 28)
                             and not (day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0)))
            if (same or leap_stand_in) and day.year > born.year:
                out.add("birthday-week")
    if 20 <= c.score_value < 50 and c.stage_value in ("decision", "retention"):
        out.add("mid-score")
    age = c.traits["age"]
    if age is not None and float(str(age)) < 30:
        out.add("young")
    if not any(e.name == "page" and c.now - DAY < e.at <= c.now for e in c.events):
        out.add("no-visits-today")
    return out


class TestAgainstBruteForce:
    """Random contacts: the evaluator agrees with a hand-written evaluation, and timers are exact."""

    def test_ten_thousand_random_contacts(self) -> None:
        """Memberships equal the plain-Python evaluation for every contact."""
        rng = random.Random(20261123)
        compiled = compile_segments(property_segments())
        seen: set[str] = set()
        for _ in range(10_000):
            contact = random_contact(rng)
            expected = brute_force(contact)
            assert evaluate_segments(compiled, contact) == expected, contact
            seen |= expected
        assert seen == {s.id for s in property_segments()}  # every segment was exercised

    def test_nothing_changes_before_next_flip(self) -> None:
        """Memberships are constant on [now, flip) and, for exact timers, differ at the flip."""
        rng = random.Random(7)
        compiled: CompiledSegments = compile_segments(property_segments())
        changed_at_flip = 0
        for _ in range(2000):
            contact = random_contact(rng)
            now_members = evaluate_segments(compiled, contact)
            flip = next_flip(compiled, contact)
            if flip is None:
                continue
            assert flip > contact.now
            for fraction in (0.25, 0.5, 0.999):
                moment = contact.now + (flip - contact.now) * fraction
                assert evaluate_segments(compiled, contact.at(moment)) == now_members
            changed_at_flip += evaluate_segments(compiled, contact.at(flip)) != now_members
        assert changed_at_flip > 0
