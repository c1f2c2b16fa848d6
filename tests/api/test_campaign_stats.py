"""The stats math: exact counts per arm, rates, and P(variant beats holdout) under Beta posteriors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.campaign_stats import EXACT_TERMS, arm_stats, beats, prob_b_beats_a, sum_fields


class TestBeatsTheHoldout:
    """The closed form agrees with known values, with symmetry, and with sampling."""

    def test_known_value(self) -> None:
        """Uniform against Beta(2, 1) (density 2x): P = ∫ 2x·x dx = 2/3."""
        assert prob_b_beats_a(1, 1, 2, 1) == pytest.approx(2 / 3, abs=1e-12)

    def test_equal_counts_are_a_coin_flip_and_swapping_complements(self) -> None:
        assert beats(12, 80, 12, 80) == pytest.approx(0.5, abs=1e-9)
        assert beats(30, 100, 20, 100) + beats(20, 100, 30, 100) == pytest.approx(1.0, abs=1e-9)

    @settings(max_examples=25, deadline=None)
    @given(st.integers(0, 60), st.integers(1, 120), st.integers(0, 60), st.integers(1, 120))
    def test_the_closed_form_matches_sampling(self, conv: int, n: int, base_conv: int, base_n: int) -> None:
        conv, base_conv = min(conv, n), min(base_conv, base_n)
        rng = np.random.default_rng(7)
        variant = rng.beta(1 + conv, 1 + n - conv, 400_000)
        holdout = rng.beta(1 + base_conv, 1 + base_n - base_conv, 400_000)
        assert beats(conv, n, base_conv, base_n) == pytest.approx(float(np.mean(variant > holdout)), abs=0.005)

    def test_more_conversions_than_terms_are_sampled_with_a_fixed_seed(self) -> None:
        big = EXACT_TERMS + 1_000
        first = beats(big, 10 * big, big - 300, 10 * big)
        assert first == beats(big, 10 * big, big - 300, 10 * big)
        exact = beats(EXACT_TERMS - 1, 10 * big, EXACT_TERMS - 301, 10 * big)
        assert 0.9 < first <= 1.0 and 0.9 < exact <= 1.0

    def test_a_counter_gone_wrong_never_gives_a_probability_outside_0_and_1(self) -> None:
        assert 0.0 <= beats(50, 10, 0, 10) <= 1.0


class TestArms:
    """Shard totals are summed per arm; rates divide by the contacts exposed."""

    def test_fields_of_every_shard_are_summed_and_unknown_ones_ignored(self) -> None:
        raw = {b"visitors:0:impressions:a": b"2", b"contacts:9:impressions:a": b"3", b"x:y": b"1",
               b"contacts:9:bogus:a": b"4"}
        assert sum_fields(raw)["a"]["impressions"] == 5 and set(sum_fields(raw)) == {"a"}

    def test_arms_without_counts_are_listed_with_zeros_and_no_chance(self) -> None:
        stats = arm_stats("c", {}, ["a", "b"], has_holdout=True)
        assert [(a.arm, a.contacts, a.conversion_rate, a.beats_holdout) for a in stats.arms] == [
            ("a", 0, 0.0, None), ("b", 0, 0.0, None), ("holdout", 0, 0.0, None)]
