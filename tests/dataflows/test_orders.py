"""All-time order statistics, whatever order the orders arrive in."""

from __future__ import annotations

import msgspec
from msgspec.structs import asdict

from dataflows.capabilities.orders import OrderStats, apply_order, merge_orders, order_summary
from state.config import DAY
from state.events import Event, Track
from tests.factories import FIXED_NOW, page, track

T0 = FIXED_NOW.timestamp()


def order(**props: object) -> Event:
    """An Order Completed event with the given properties."""
    return Track(anonymous_id="anon-1", event="Order Completed", properties=props)


def stats_of(*orders: tuple[float, float]) -> OrderStats:
    """Stats after orders of (at, revenue), applied in the given order."""
    stats = OrderStats()
    for at, revenue in orders:
        assert apply_order(stats, order(revenue=revenue), at)
    return stats


class TestApplyOrder:
    """Which events count and how revenue is read."""

    def test_only_order_completed_counts(self) -> None:
        """Pages and other track events leave the stats alone."""
        stats = OrderStats()
        assert not apply_order(stats, page("a"), T0)
        assert not apply_order(stats, track("a", "Checkout Started", FIXED_NOW, revenue=10), T0)
        assert stats == OrderStats()

    def test_revenue_then_total_then_value(self) -> None:
        """Revenue is `revenue`, else `total`, else `value`, else 0."""
        stats = OrderStats()
        apply_order(stats, order(revenue=10.0, total=99), T0)
        apply_order(stats, order(total=20.5, value=99), T0)
        apply_order(stats, order(value=5), T0)
        apply_order(stats, order(), T0)
        assert (stats.orders, stats.revenue) == (4, 35.5)


class TestSummary:
    """Order figures for the profile."""

    def test_no_orders(self) -> None:
        """Nothing ordered: zeros and Nones."""
        assert asdict(order_summary(OrderStats())) == {
            "orders": 0, "revenue": 0.0, "average_order_value": 0.0, "first_order_at": None,
            "last_order_at": None, "average_days_between_orders": None}

    def test_one_order_has_no_average_gap(self) -> None:
        """A single order: AOV is its revenue, no gap yet."""
        summary = asdict(order_summary(stats_of((T0, 40.0))))
        assert (summary["average_order_value"], summary["average_days_between_orders"]) == (40.0, None)
        assert summary["first_order_at"] == summary["last_order_at"] == T0

    def test_out_of_order_orders_give_the_right_first_last_and_gap(self) -> None:
        """Orders on days 0, 10 and 30 arriving as 30, 0, 10: first 0, last 30, gap 15 d."""
        stats = stats_of((T0 + 30 * DAY, 30.0), (T0, 10.0), (T0 + 10 * DAY, 20.0))
        assert asdict(order_summary(stats)) == {
            "orders": 3, "revenue": 60.0, "average_order_value": 20.0, "first_order_at": T0,
            "last_order_at": T0 + 30 * DAY, "average_days_between_orders": 15.0}

    def test_state_round_trips_through_msgpack(self) -> None:
        """A snapshot decodes to equal stats."""
        stats = stats_of((T0, 12.5))
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(stats), type=OrderStats) == stats


class TestMerge:
    """Identity merge of order histories."""

    def test_merge_adds_counts_and_widens_the_span(self) -> None:
        """Two histories merge as if all orders were applied to one contact."""
        mine = stats_of((T0 + 10 * DAY, 10.0))
        theirs = stats_of((T0, 5.0), (T0 + 20 * DAY, 5.0))
        merge_orders(mine, theirs)
        assert mine == stats_of((T0, 5.0), (T0 + 10 * DAY, 10.0), (T0 + 20 * DAY, 5.0))

    def test_merge_with_no_orders_changes_nothing(self) -> None:
        """Merging an empty history keeps the stats; merging into empty copies them."""
        mine = stats_of((T0, 10.0))
        merge_orders(mine, OrderStats())
        assert mine == stats_of((T0, 10.0))
        empty = OrderStats()
        merge_orders(empty, mine)
        assert empty == mine
