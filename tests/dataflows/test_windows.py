"""Per-contact sliding windows: exact edges, lateness, pruning, merge and the profile summary."""

from __future__ import annotations

import msgspec
import pytest

from dataflows.capabilities.windows import (
    ActivityLog,
    activity_keys,
    last_event_at,
    merge_logs,
    next_expiry,
    next_window_change,
    prune,
    record_activity,
    window_count,
    window_label,
    window_summary,
)
from state.config import DAY, WindowSettings
from state.events import Alias, Event, Group, Identify, Screen, Track
from tests.factories import FIXED_NOW, page, track

T0 = FIXED_NOW.timestamp()
HOUR = 3600.0
SETTINGS = WindowSettings()


def viewed(category: str | None = "shoes", product: str | None = "p1") -> Event:
    """A Product Viewed event with optional category and product."""
    props: dict[str, object] = {}
    if category is not None:
        props["category"] = category
    if product is not None:
        props["product_id"] = product
    return Track(anonymous_id="anon-1", event="Product Viewed", properties=props)


def log_of(*entries: tuple[Event, float], settings: WindowSettings = SETTINGS) -> ActivityLog:
    """A log with each (event, at) recorded on time."""
    log = ActivityLog()
    for event, at in entries:
        assert record_activity(log, event, at, at, settings)
    return log


class TestActivityKeys:
    """What an event counts as."""

    def test_track_name_category_and_product_id(self) -> None:
        """A track event counts under its name, its category and its product id."""
        assert activity_keys(viewed("shoes", "p1")) == ("Product Viewed", "shoes", "p1")

    def test_sku_when_there_is_no_product_id_and_numbers_become_text(self) -> None:
        """The sku stands in for a missing product id; numeric ids read as text."""
        added = track("a", "Product Added", FIXED_NOW, sku=1234)
        assert activity_keys(added) == ("Product Added", None, "1234")

    def test_pages_and_screens_are_page_other_types_by_name(self) -> None:
        """Pages and screens are `page`; identify, alias and group by their type."""
        assert activity_keys(page("a", category="shoes")) == ("page", None, None)
        assert activity_keys(Screen(anonymous_id="a"))[0] == "page"
        assert activity_keys(Identify(user_id="u"))[0] == "identify"
        assert activity_keys(Alias(user_id="u", previous_id="a"))[0] == "alias"
        assert activity_keys(Group(user_id="u", group_id="g"))[0] == "group"


class TestWindowEdges:
    """A window is (now − W, now]: the far edge is out, now is in."""

    def test_event_exactly_window_ago_is_out(self) -> None:
        """An event exactly W before now no longer counts."""
        log = log_of((page("a"), T0 - HOUR))
        assert window_count(log, "event", "page", HOUR, None, T0) == 0

    def test_event_one_millisecond_inside_counts(self) -> None:
        """An event 1 ms less than W ago still counts."""
        log = log_of((page("a"), T0 - HOUR + 0.001))
        assert window_count(log, "event", "page", HOUR, None, T0) == 1

    def test_event_exactly_now_counts(self) -> None:
        """An event at now is in the window."""
        log = log_of((page("a"), T0))
        assert window_count(log, "event", "page", HOUR, None, T0) == 1

    def test_event_after_now_is_not_yet_counted(self) -> None:
        """An event later than now (clock skew) is not counted until now reaches it."""
        log = log_of((page("a"), T0 + 1))
        assert window_count(log, "event", "page", HOUR, None, T0) == 0
        assert window_count(log, "event", "page", HOUR, None, T0 + 1) == 1

    def test_two_events_at_the_same_instant_both_count(self) -> None:
        """Entries need not be unique: two events at one instant count twice."""
        log = log_of((page("a"), T0), (page("a"), T0))
        assert window_count(log, "event", "page", HOUR, None, T0) == 2

    def test_each_window_counts_only_its_span(self) -> None:
        """The same log answers 1 h, 24 h and 7 d differently."""
        log = log_of((page("a"), T0 - 3 * DAY), (page("a"), T0 - 5 * HOUR), (page("a"), T0 - 60))
        assert [window_count(log, "event", "page", w, None, T0) for w in (HOUR, DAY, 7 * DAY)] == [1, 2, 3]

    def test_unknown_value_counts_zero(self) -> None:
        """A value never seen counts 0 and has no next change."""
        log = log_of((page("a"), T0))
        assert window_count(log, "category", "hats", HOUR, None, T0) == 0
        assert next_window_change(log, "category", "hats", HOUR, None, T0) is None

    def test_unknown_dimension_is_an_error(self) -> None:
        """Only event, category and product are dimensions."""
        log = log_of((page("a"), T0))
        with pytest.raises(ValueError, match="dimension"):
            window_count(log, "colour", "page", HOUR, None, T0)


class TestCountsDropWithTime:
    """Counts fall when entries leave, with no new event."""

    def test_count_drops_to_zero_once_now_passes_next_window_change(self) -> None:
        """At next_window_change the count has dropped; just before it hasn't."""
        log = log_of((viewed(), T0 - 10 * 60), (viewed(), T0 - 5 * 60))
        change = next_window_change(log, "category", "shoes", HOUR, None, T0)
        assert change == T0 - 10 * 60 + HOUR
        assert window_count(log, "category", "shoes", HOUR, None, change - 0.001) == 2
        assert window_count(log, "category", "shoes", HOUR, None, change) == 1
        last = next_window_change(log, "category", "shoes", HOUR, None, change)
        assert last == T0 - 5 * 60 + HOUR
        assert window_count(log, "category", "shoes", HOUR, None, last) == 0
        assert next_window_change(log, "category", "shoes", HOUR, None, last) is None

    def test_next_window_change_is_never_before_the_count_drops(self) -> None:
        """Float rounding never yields a change time at which the entry is still in."""
        # (at + W) − W < at for the small times: where a naive at + W would be wrong.
        for at in (T0 + 0.1, T0 + 0.7, 1_799_999_999.999, 2.550690257394217, 0.22322111021323865):
            for window_s in (0.1, 0.3, 0.7, HOUR, DAY, 7 * DAY):
                log = log_of((page("a"), at))
                change = next_window_change(log, "event", "page", window_s, None, at)
                assert change is not None
                assert window_count(log, "event", "page", window_s, None, change) == 0

    def test_next_expiry_is_the_earliest_change_over_all_windows(self) -> None:
        """The profile timer fires when the shortest window loses its oldest entry."""
        log = log_of((page("a"), T0 - 2 * HOUR), (page("a"), T0 - 30 * 60))
        assert next_expiry(log, [HOUR, DAY], T0) == T0 - 30 * 60 + HOUR

    def test_next_expiry_includes_a_future_entry_entering(self) -> None:
        """An entry ahead of now changes the counts when now reaches it."""
        log = log_of((page("a"), T0 + 10))
        assert next_expiry(log, [HOUR], T0) == T0 + 10

    def test_next_expiry_of_an_empty_log_is_none(self) -> None:
        """Nothing in any window: no timer needed."""
        assert next_expiry(ActivityLog(), [HOUR], T0) is None


class TestLateness:
    """Late events count where they belong; too-late ones only update last_at."""

    def test_late_event_within_lateness_lands_in_the_right_window(self) -> None:
        """An event 50 min late, 2 h old by now, is in the 24 h window but not the 1 h one."""
        log = log_of((page("a"), T0 - 10))
        late_at = T0 - 2 * HOUR
        assert record_activity(log, viewed(), late_at, late_at + 50 * 60, SETTINGS)
        assert log.at == sorted(log.at)
        assert window_count(log, "category", "shoes", HOUR, None, T0) == 0
        assert window_count(log, "category", "shoes", DAY, None, T0) == 1
        assert next_window_change(log, "category", "shoes", DAY, None, T0) == late_at + DAY

    def test_too_late_event_is_not_counted_but_sets_last_at(self) -> None:
        """Received more than lateness after it happened: no window, but last_event_at moves."""
        log = ActivityLog()
        at = T0 - 2 * HOUR
        assert not record_activity(log, viewed(), at, at + HOUR + 1, SETTINGS)
        assert window_count(log, "event", "Product Viewed", DAY, None, T0) == 0
        assert last_event_at(log, "Product Viewed") == at
        assert log.at == []

    def test_event_exactly_lateness_late_still_counts(self) -> None:
        """Received exactly lateness after it happened is still on time."""
        log = ActivityLog()
        assert record_activity(log, page("a"), T0 - HOUR, T0, SETTINGS)
        assert window_count(log, "event", "page", DAY, None, T0) == 1

    def test_last_event_at_never_moves_back(self) -> None:
        """An older event arriving later leaves last_event_at at the newest time."""
        log = log_of((page("a"), T0))
        record_activity(log, page("a"), T0 - 60, T0 + 1, SETTINGS)
        assert last_event_at(log, "page") == T0
        assert last_event_at(log, "Order Completed") is None


class TestCategoryAndProduct:
    """Counting by category and product, optionally for one event."""

    def test_category_with_event_filter(self) -> None:
        """Shoes viewed counts views only; shoes with any event counts adds too."""
        add = track("a", "Product Added", FIXED_NOW, category="shoes", product_id="p1")
        log = log_of((viewed("shoes", "p1"), T0 - 3), (viewed("bags", "p2"), T0 - 2), (add, T0 - 1))
        assert window_count(log, "category", "shoes", HOUR, "Product Viewed", T0) == 1
        assert window_count(log, "category", "shoes", HOUR, None, T0) == 2
        assert window_count(log, "category", "bags", HOUR, "Product Added", T0) == 0
        assert window_count(log, "category", "shoes", HOUR, "Order Completed", T0) == 0

    def test_product_with_event_filter_and_its_next_change(self) -> None:
        """p1 added counts the add; its change is when that add leaves."""
        add = track("a", "Product Added", FIXED_NOW, product_id="p1")
        log = log_of((viewed("shoes", "p1"), T0 - 30), (add, T0 - 20), (viewed("shoes", "p1"), T0 - 10))
        assert window_count(log, "product", "p1", HOUR, "Product Added", T0) == 1
        assert window_count(log, "product", "p1", HOUR, "Product Viewed", T0) == 2
        assert next_window_change(log, "product", "p1", HOUR, "Product Added", T0) == T0 - 20 + HOUR

    def test_event_dimension_with_a_different_event_filter_is_zero(self) -> None:
        """An entry has one event key: page AND Product Viewed never holds."""
        log = log_of((page("a"), T0))
        assert window_count(log, "event", "page", HOUR, "page", T0) == 1
        assert window_count(log, "event", "page", HOUR, "Product Viewed", T0) == 0


class TestPruneAndCap:
    """Old entries go; the log never exceeds its cap; unused strings are forgotten."""

    def test_prune_drops_entries_older_than_keep(self) -> None:
        """Entries older than now − keep go; newer ones stay."""
        log = log_of((page("a"), T0 - 40 * DAY), (page("a"), T0 - 10 * DAY), (page("a"), T0))
        prune(log, T0, 30 * DAY + HOUR, 1000)
        assert log.at == [T0 - 10 * DAY, T0]

    def test_prune_keeps_at_most_max_entries_dropping_the_oldest(self) -> None:
        """Past max_entries the oldest go first."""
        log = log_of(*((page("a"), T0 + i) for i in range(10)))
        prune(log, T0 + 10, DAY, 4)
        assert log.at == [T0 + 6, T0 + 7, T0 + 8, T0 + 9]

    def test_recording_enforces_the_entry_cap(self) -> None:
        """record_activity drops the oldest once max_log_entries is exceeded."""
        settings = WindowSettings(max_log_entries=3)
        log = log_of(*((page("a"), T0 + i) for i in range(5)), settings=settings)
        assert log.at == [T0 + 2, T0 + 3, T0 + 4]
        assert len(log.event) == len(log.category) == len(log.product) == 3

    def test_strings_nobody_uses_are_forgotten_and_counts_survive(self) -> None:
        """After the old products leave, their ids are dropped from the table; counts still right."""
        old = [(viewed("old", f"p{i}"), T0 - 40 * DAY + i) for i in range(20)]
        log = log_of(*old, (viewed("shoes", "keep"), T0))
        prune(log, T0, 30 * DAY, 1000)
        assert set(log.names) == {"Product Viewed", "shoes", "keep"}
        assert window_count(log, "product", "keep", HOUR, "Product Viewed", T0) == 1
        assert window_count(log, "category", "shoes", HOUR, None, T0) == 1
        assert last_event_at(log, "Product Viewed") == T0

    def test_event_names_stay_for_last_at_after_their_entries_go(self) -> None:
        """All-time last_at outlives the window entries of that event."""
        order = track("a", "Order Completed", FIXED_NOW)
        log = log_of((order, T0 - 100 * DAY), *((page("a"), T0 + i) for i in range(5)))
        prune(log, T0, 30 * DAY, 1000)
        assert last_event_at(log, "Order Completed") == T0 - 100 * DAY

    def test_prune_with_nothing_to_drop_changes_nothing(self) -> None:
        """A prune with every entry inside keep is a no-op."""
        log = log_of((page("a"), T0))
        before = msgspec.msgpack.encode(log)
        prune(log, T0, DAY, 1000)
        assert msgspec.msgpack.encode(log) == before


class TestMerge:
    """Identity merge: one history in time order."""

    def test_merge_interleaves_entries_and_keeps_latest_last_at(self) -> None:
        """Both logs' entries, in time order, with strings re-interned and last_at max."""
        mine = log_of((page("a"), T0 - 30), (viewed("shoes", "p1"), T0 - 10))
        theirs = log_of((viewed("bags", "p2"), T0 - 20), (page("b"), T0 - 5))
        merge_logs(mine, theirs)
        assert mine.at == [T0 - 30, T0 - 20, T0 - 10, T0 - 5]
        assert window_count(mine, "event", "page", HOUR, None, T0) == 2
        assert window_count(mine, "category", "bags", HOUR, "Product Viewed", T0) == 1
        assert window_count(mine, "product", "p1", HOUR, None, T0) == 1
        assert last_event_at(mine, "page") == T0 - 5
        assert last_event_at(mine, "Product Viewed") == T0 - 10

    def test_merge_of_an_empty_log_keeps_everything(self) -> None:
        """Merging nothing changes nothing."""
        mine = log_of((page("a"), T0))
        merge_logs(mine, ActivityLog())
        assert window_count(mine, "event", "page", HOUR, None, T0) == 1


class TestSummaryAndSnapshot:
    """The profile's window summary, and the state's msgpack round trip."""

    @pytest.mark.parametrize(("seconds", "label"), [
        (3600, "1h"), (DAY, "24h"), (7 * DAY, "7d"), (30 * DAY, "30d"), (2 * DAY, "2d"),
        (36 * 3600, "36h"), (900, "15m"), (90, "90s"), (1.5, "1.5s")])
    def test_window_labels(self, seconds: float, label: str) -> None:
        """Labels use the largest exact unit; one day reads 24h."""
        assert window_label(seconds) == label

    def test_summary_counts_per_window_and_dimension(self) -> None:
        """Each window lists its event, category and product counts."""
        log = log_of((page("a"), T0 - 2 * HOUR), (viewed("shoes", "p1"), T0 - 60),
                     (viewed("shoes", "p2"), T0 - 30), (page("a"), T0))
        summary = window_summary(log, [HOUR, DAY], T0)
        assert summary == {
            "1h": {"event": {"Product Viewed": 2, "page": 1}, "category": {"shoes": 2},
                   "product": {"p1": 1, "p2": 1}},
            "24h": {"event": {"page": 2, "Product Viewed": 2}, "category": {"shoes": 2},
                    "product": {"p1": 1, "p2": 1}},
        }

    def test_summary_keeps_the_top_products_by_count(self) -> None:
        """Only the most viewed products are listed, ties by id."""
        log = log_of((viewed("s", "a"), T0 - 3), (viewed("s", "b"), T0 - 2), (viewed("s", "b"), T0 - 1),
                     (viewed("s", "c"), T0))
        assert window_summary(log, [HOUR], T0, top_products=2)["1h"]["product"] == {"b": 2, "a": 1}

    def test_log_round_trips_through_msgpack(self) -> None:
        """A snapshot decodes to an equal log that answers the same counts."""
        log = log_of((viewed("shoes", "p1"), T0 - 60), (page("a"), T0))
        again = msgspec.msgpack.decode(msgspec.msgpack.encode(log), type=ActivityLog)
        assert again == log
        assert window_count(again, "category", "shoes", HOUR, "Product Viewed", T0) == 1
        assert last_event_at(again, "page") == T0
