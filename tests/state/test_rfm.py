"""RFM edges from the contact base and scores against them, including ties."""

from __future__ import annotations

import pytest

from state.config import RfmEdges
from state.rfm import compute_edges, rfm_score


class TestComputeEdges:
    """Quintile edges of the base."""

    def test_quantiles_of_a_known_sample(self) -> None:
        """1…10 cut at 20/40/60/80 % with linear interpolation: 2.8, 4.6, 6.4, 8.2."""
        edges = compute_edges(range(1, 11), [1, 1, 2, 3, 10], [10.0, 20.0, 30.0, 40.0, 50.0])
        assert edges.recency_days == pytest.approx([2.8, 4.6, 6.4, 8.2])
        assert edges.frequency == pytest.approx([1.0, 1.6, 2.4, 4.4])
        assert edges.monetary == pytest.approx([18.0, 26.0, 34.0, 42.0])

    def test_no_samples_keep_the_defaults(self) -> None:
        """An empty base (or an empty part) keeps RfmEdges() defaults."""
        assert compute_edges([], [], []) == RfmEdges()
        assert compute_edges([1.0, 2.0], [], []).frequency == RfmEdges().frequency

    def test_non_finite_samples_are_ignored(self) -> None:
        """NaN and infinity do not move the edges."""
        assert compute_edges([1, 2, 3, 4, 5, float("nan"), float("inf")], [], []).recency_days == \
            compute_edges([1, 2, 3, 4, 5], [], []).recency_days


class TestScore:
    """Scores 1–5 per part; 0 for contacts who never ordered."""

    EDGES = RfmEdges(recency_days=[7.0, 30.0, 90.0, 180.0], frequency=[1.0, 2.0, 3.0, 5.0],
                     monetary=[50.0, 100.0, 250.0, 500.0])

    @pytest.mark.parametrize(("days", "r"), [(0.5, 5), (7.0, 5), (7.01, 4), (30.0, 4), (90.0, 3),
                                             (180.0, 2), (181.0, 1), (3650.0, 1)])
    def test_recency_5_for_the_most_recent_and_edges_inclusive(self, days: float, r: int) -> None:
        """Fewest days scores 5; a value equal to an edge scores like the more recent side."""
        assert rfm_score(days, 1, 10.0, self.EDGES)[0] == r

    @pytest.mark.parametrize(("orders", "f"), [(1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (6, 5)])
    def test_frequency_5_for_the_most_orders_and_ties_go_low(self, orders: int, f: int) -> None:
        """Most orders scores 5; a value equal to an edge scores like the values below it."""
        assert rfm_score(1.0, orders, 10.0, self.EDGES)[1] == f

    @pytest.mark.parametrize(("revenue", "m"), [(0.0, 1), (50.0, 1), (50.01, 2), (500.0, 4), (501.0, 5)])
    def test_monetary_5_for_the_biggest_spenders(self, revenue: float, m: int) -> None:
        """Most revenue scores 5; edges are inclusive upper bounds of the lower score."""
        assert rfm_score(1.0, 1, revenue, self.EDGES)[2] == m

    def test_repeated_edges_never_split_a_tie(self) -> None:
        """With most buyers at 1 order the edges repeat; all 1-order buyers share score 1."""
        edges = compute_edges([10.0] * 10, [1, 1, 1, 1, 1, 1, 1, 2, 3, 4], [100.0] * 10)
        assert edges.frequency == pytest.approx([1.0, 1.0, 1.0, 2.2])
        assert [rfm_score(10.0, n, 100.0, edges)[1] for n in (1, 2, 3)] == [1, 4, 5]
        assert rfm_score(10.0, 1, 100.0, edges) == (5, 1, 1)

    def test_never_ordered_scores_zero(self) -> None:
        """No recency or no orders: (0, 0, 0)."""
        assert rfm_score(None, 0, 0.0, self.EDGES) == (0, 0, 0)
        assert rfm_score(3.0, 0, 0.0, self.EDGES) == (0, 0, 0)
