"""Lead scoring: rules as data, absence penalties, decay, merge and temperature."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from dataflows.capabilities.scoring import (
    HISTORY_CAP,
    ScoreState,
    apply_scoring,
    current_score,
    merge_scores,
    on_scoring_time,
    score_history,
    scoring_due,
    temperature_of,
)
from dataflows.rules.live_config import LiveConfig
from state.config import (
    DAY,
    AbsenceRule,
    ActiveConfig,
    EventMatch,
    PropertyCondition,
    ScoreGroup,
    ScoringRule,
    Thresholds,
)
from state.events import Event
from tests.factories import FIXED_NOW, page, track

T0 = FIXED_NOW.timestamp()
HOUR = 3600.0
NURTURE = ("nurture-1", "nurture-2", "nurture-3", "nurture-4")


def when(event: Event) -> float:
    assert event.timestamp is not None
    return event.timestamp.timestamp()


def at(seconds: float, name: str, **props: Any) -> Event:
    """A track event `seconds` after T0."""
    return track("anon-1", name, FIXED_NOW + timedelta(seconds=seconds), **props)


def email(name: str, email_id: str) -> EventMatch:
    return EventMatch(name, [PropertyCondition("email_id", "eq", email_id)])


def config(rules: Sequence[ScoringRule] = (), absences: Sequence[AbsenceRule] = (),
           half_life: float = 0.0, **groups: float) -> LiveConfig:
    """A configuration with decay off unless asked for (compiled, not validated: some tests break rules)."""
    score_groups = {"default": ScoreGroup(half_life), **{g: ScoreGroup(h) for g, h in groups.items()}}
    return LiveConfig.of(ActiveConfig(scoring_rules=list(rules), absence_rules=list(absences),
                                      score_groups=score_groups), validate=False)


def feed(state: ScoreState, cfg: LiveConfig, *events: Event) -> ScoreState:
    for event in events:
        apply_scoring(state, event, when(event), cfg)
    return state


def seed_config() -> LiveConfig:
    """The seed brief's example: scoring rules and the nurturing-e-mail absence rules."""
    rules = [
        ScoringRule("form", EventMatch("Form Submitted"), 25),
        ScoringRule("welcome-open", email("Email Opened", "welcome"), 5, mode="once"),
        ScoringRule("infographic", EventMatch("Infographic Downloaded"), 15),
        *(ScoringRule(f"{n}-open", email("Email Opened", n), 5, mode="once") for n in NURTURE),
    ]
    absences = [AbsenceRule(f"{n}-unopened", after=email("Email Sent", n), expect=email("Email Opened", n),
                            within_s=3 * DAY, points=points, correlate_on="email_id")
                for n, points in zip(NURTURE, (-5, -10, -15, -15), strict=True)]
    return config(rules, absences)


def warm_lead() -> list[Event]:
    """Form, welcome e-mail opened, infographic downloaded: 45 points."""
    return [at(0, "Form Submitted", form="demo"), at(60, "Email Opened", email_id="welcome"),
            at(120, "Infographic Downloaded", asset="2026-trends")]


class TestSeedWorkedExample:
    """The seed brief's example, with decay off."""

    def test_lead_who_opens_all_four_nurturing_emails_scores_65(self) -> None:
        """+25 form, +5 welcome, +15 infographic, +5 for each of four nurturing e-mails = 65."""
        cfg = seed_config()
        state = feed(ScoreState(), cfg, *warm_lead())
        for i, n in enumerate(NURTURE):
            sent = (i + 1) * DAY
            feed(state, cfg, at(sent, "Email Sent", email_id=n), at(sent + DAY, "Email Opened", email_id=n))
        assert scoring_due(state) is None
        on_scoring_time(state, T0 + 30 * DAY, cfg)
        assert current_score(state, T0 + 30 * DAY, cfg) == 65

    def test_lead_who_opens_no_nurturing_email_ends_at_0_once_every_deadline_passes(self) -> None:
        """45 points, then −5, −10, −15, −15 as each 3-day deadline passes: 0."""
        cfg = seed_config()
        state = feed(ScoreState(), cfg, *warm_lead())
        assert current_score(state, T0 + HOUR, cfg) == 45
        for i, n in enumerate(NURTURE):
            feed(state, cfg, at((i + 1) * DAY, "Email Sent", email_id=n))
        while (due := scoring_due(state)) is not None:
            assert on_scoring_time(state, due, cfg)
        # nurture-1's deadline (day 4) fired when nurture-4 was sent on day 4, the rest by timer
        assert score_history(state)[-4:] == [
            (T0 + 4 * DAY, 40), (T0 + 5 * DAY, 30), (T0 + 6 * DAY, 15), (T0 + 7 * DAY, 0)]
        assert current_score(state, T0 + 30 * DAY, cfg) == 0

    def test_unknown_track_name_is_accepted_and_scored(self) -> None:
        """A track name outside the e-commerce spec scores like any other."""
        cfg = seed_config()
        state = feed(ScoreState(), cfg, at(0, "Infographic Downloaded"))
        assert current_score(state, T0, cfg) == 15

    def test_opening_a_nurturing_email_twice_counts_once(self) -> None:
        """A once-rule per e-mail: re-opening adds nothing."""
        cfg = seed_config()
        state = feed(ScoreState(), cfg, at(0, "Email Opened", email_id="nurture-1"),
                     at(60, "Email Opened", email_id="nurture-1"))
        assert current_score(state, T0 + 60, cfg) == 5


class TestDecay:
    """Each group's points halve every half-life, folded in lazily."""

    def test_one_half_life_halves_and_two_quarter(self) -> None:
        """100 points read at one half-life are 50, at two 25."""
        cfg = config([ScoringRule("demo", EventMatch("Demo Requested"), 100)], half_life=7 * DAY)
        state = feed(ScoreState(), cfg, at(0, "Demo Requested"))
        assert current_score(state, T0 + 7 * DAY, cfg) == pytest.approx(50, abs=1e-9)
        assert current_score(state, T0 + 14 * DAY, cfg) == pytest.approx(25, abs=1e-9)

    def test_points_added_later_decay_from_their_own_time(self) -> None:
        """100 at t0 and 100 at one half-life read at two half-lives: 25 + 50."""
        cfg = config([ScoringRule("demo", EventMatch("Demo Requested"), 100)], half_life=DAY)
        state = feed(ScoreState(), cfg, at(0, "Demo Requested"), at(DAY, "Demo Requested"))
        assert current_score(state, T0 + 2 * DAY, cfg) == pytest.approx(75, abs=1e-9)

    def test_out_of_order_events_give_the_same_score_as_in_order(self) -> None:
        """Late points are decayed forward to the group's last change."""
        cfg = config([ScoringRule("view", EventMatch("Product Viewed"), 10)], half_life=DAY)
        events = [at(s, "Product Viewed") for s in (0, 5 * HOUR, 30 * HOUR, 31 * HOUR)]
        in_order = feed(ScoreState(), cfg, *events)
        shuffled = feed(ScoreState(), cfg, *(events[i] for i in (2, 0, 3, 1)))
        now = T0 + 3 * DAY
        assert current_score(shuffled, now, cfg) == pytest.approx(current_score(in_order, now, cfg), abs=1e-9)

    def test_groups_decay_with_their_own_half_life(self) -> None:
        """An `email` group with a 1-day half-life decays faster than the default one."""
        cfg = config([ScoringRule("visit", EventMatch("Product Viewed"), 40),
                      ScoringRule("open", EventMatch("Email Opened"), 40, group="email")],
                     half_life=4 * DAY, email=DAY)
        state = feed(ScoreState(), cfg, at(0, "Product Viewed"), at(0, "Email Opened"))
        assert current_score(state, T0 + 4 * DAY, cfg) == pytest.approx(20 + 2.5, abs=1e-9)

    def test_unknown_group_uses_the_default_groups_half_life(self) -> None:
        """A rule whose group is not configured decays like `default`."""
        cfg = config([ScoringRule("x", EventMatch("X"), 8, group="unlisted")], half_life=DAY)
        state = feed(ScoreState(), cfg, at(0, "X"))
        assert current_score(state, T0 + 3 * DAY, cfg) == pytest.approx(1, abs=1e-9)

    def test_half_life_zero_turns_decay_off(self) -> None:
        """With half-life 0 points stay forever."""
        cfg = config([ScoringRule("x", EventMatch("X"), 8)])
        state = feed(ScoreState(), cfg, at(0, "X"))
        assert current_score(state, T0 + 3650 * DAY, cfg) == 8


class TestOnceRules:
    """A `once` rule scores on its first match only."""

    def test_fires_once(self) -> None:
        """Three sign-ups score once."""
        cfg = config([ScoringRule("signup", EventMatch("Signed Up"), 15, mode="once")])
        state = ScoreState()
        results = [apply_scoring(state, e, when(e), cfg) for e in
                   (at(0, "Signed Up"), at(60, "Signed Up"), at(DAY, "Signed Up"))]
        assert results == [True, False, False]
        assert current_score(state, T0 + DAY, cfg) == 15


class TestAtMost:
    """An `at_most` rule scores at most N matches within any sliding window."""

    def rule_config(self, window: float = HOUR) -> ActiveConfig:
        return config([ScoringRule("view", EventMatch("page"), 1, mode="at_most", max_times=2,
                                   per_window_s=window)])

    def views(self, state: ScoreState, cfg: ActiveConfig, *seconds: float) -> list[bool]:
        return [apply_scoring(state, page("anon-1", FIXED_NOW + timedelta(seconds=s)), T0 + s, cfg)
                for s in seconds]

    def test_two_per_hour(self) -> None:
        """Views at 0, 10 and 50 min score twice; at 60 and 70 min the window has slid."""
        cfg, state = self.rule_config(), ScoreState()
        scored = self.views(state, cfg, 0, 600, 3000, 3600, 4200, 4300)
        assert scored == [True, True, False, True, True, False]
        assert current_score(state, T0 + 4300, cfg) == 4

    def test_window_zero_means_ever(self) -> None:
        """With no window, only the first N matches ever score."""
        cfg, state = self.rule_config(window=0), ScoreState()
        assert self.views(state, cfg, 0, DAY, 30 * DAY) == [True, True, False]

    def test_state_keeps_at_most_n_times(self) -> None:
        """The per-rule record is bounded by max_times."""
        cfg, state = self.rule_config(), ScoreState()
        self.views(state, cfg, *(i * HOUR for i in range(20)))
        assert len(state.capped["view"]) == 2


class TestAbsence:
    """Points when an expected event does not follow in time."""

    def unopened(self, points: float = -5, correlate: str | None = "email_id") -> AbsenceRule:
        return AbsenceRule("unopened", after=EventMatch("Email Sent"), expect=EventMatch("Email Opened"),
                           within_s=3 * DAY, points=points, correlate_on=correlate)

    def test_deadline_starts_at_the_after_event(self) -> None:
        """Sending an e-mail sets a deadline 3 days later."""
        cfg, state = config(absences=[self.unopened()]), ScoreState()
        assert apply_scoring(state, at(0, "Email Sent", email_id="a"), T0, cfg)
        assert scoring_due(state) == T0 + 3 * DAY

    def test_expected_event_in_time_cancels_the_deadline(self) -> None:
        """Opening within 3 days cancels the penalty."""
        cfg = config(absences=[self.unopened()])
        state = feed(ScoreState(), cfg, at(0, "Email Sent", email_id="a"),
                     at(2 * DAY, "Email Opened", email_id="a"))
        assert scoring_due(state) is None
        assert not on_scoring_time(state, T0 + 10 * DAY, cfg)
        assert current_score(state, T0 + 10 * DAY, cfg) == 0

    def test_deadline_passing_takes_points(self) -> None:
        """No open: −5 exactly at the deadline, not before."""
        cfg = config(absences=[self.unopened()])
        state = feed(ScoreState(), cfg, at(0, "Email Sent", email_id="a"))
        assert not on_scoring_time(state, T0 + 3 * DAY - 1, cfg)
        assert on_scoring_time(state, T0 + 3 * DAY, cfg)
        assert current_score(state, T0 + 3 * DAY, cfg) == -5
        assert scoring_due(state) is None

    def test_expected_event_after_the_deadline_does_not_cancel(self) -> None:
        """An open at 4 days fires the overdue penalty first, even without a timer."""
        cfg = config(absences=[self.unopened()])
        state = feed(ScoreState(), cfg, at(0, "Email Sent", email_id="a"),
                     at(4 * DAY, "Email Opened", email_id="a"))
        assert current_score(state, T0 + 4 * DAY, cfg) == -5

    def test_penalty_applies_at_the_deadline_for_decay(self) -> None:
        """Fired late by the timer, the penalty still decays from the deadline."""
        cfg = config(absences=[self.unopened(points=-8)], half_life=DAY)
        state = feed(ScoreState(), cfg, at(0, "Email Sent", email_id="a"))
        on_scoring_time(state, T0 + 5 * DAY, cfg)
        assert current_score(state, T0 + 5 * DAY, cfg) == pytest.approx(-2, abs=1e-9)

    def test_resending_pushes_the_deadline_back(self) -> None:
        """A second send restarts the wait; one deadline per rule and e-mail."""
        cfg = config(absences=[self.unopened()])
        state = feed(ScoreState(), cfg, at(0, "Email Sent", email_id="a"),
                     at(DAY, "Email Sent", email_id="a"))
        assert len(state.pending) == 1
        assert scoring_due(state) == T0 + 4 * DAY


class TestCorrelation:
    """`correlate_on` ties the expected event to the one that started the wait."""

    def test_opening_nurture_1_does_not_cancel_nurture_2(self) -> None:
        """Only the e-mail that was opened is excused."""
        rule = AbsenceRule("unopened", after=EventMatch("Email Sent"), expect=EventMatch("Email Opened"),
                           within_s=3 * DAY, points=-5, correlate_on="email_id")
        cfg = config(absences=[rule])
        state = feed(ScoreState(), cfg, at(0, "Email Sent", email_id="nurture-1"),
                     at(0, "Email Sent", email_id="nurture-2"), at(DAY, "Email Opened", email_id="nurture-1"))
        assert [(d[1], d[2]) for d in state.pending] == [("unopened", "nurture-2")]
        on_scoring_time(state, T0 + 3 * DAY, cfg)
        assert current_score(state, T0 + 3 * DAY, cfg) == -5

    def test_without_correlation_any_expected_event_cancels(self) -> None:
        """No `correlate_on`: any open excuses the pending send."""
        rule = AbsenceRule("unopened", after=EventMatch("Email Sent"), expect=EventMatch("Email Opened"),
                           within_s=3 * DAY, points=-5)
        cfg = config(absences=[rule])
        state = feed(ScoreState(), cfg, at(0, "Email Sent", email_id="a"),
                     at(DAY, "Email Opened", email_id="b"))
        assert scoring_due(state) is None


class TestConfigChange:
    """A new configuration applies from the next event on."""

    def test_new_points_apply_to_later_events_only(self) -> None:
        """+10 per demo, then +30: earlier points stay as they were."""
        old = config([ScoringRule("demo", EventMatch("Demo Requested"), 10)])
        new = config([ScoringRule("demo", EventMatch("Demo Requested"), 30)])
        state = feed(ScoreState(), old, at(0, "Demo Requested"))
        feed(state, new, at(60, "Demo Requested"))
        assert current_score(state, T0 + 60, new) == 40

    def test_added_rule_scores_later_events(self) -> None:
        """A rule added later does not score events before it."""
        old = config()
        new = config([ScoringRule("quote", EventMatch("Quote Requested"), 20)])
        state = feed(ScoreState(), old, at(0, "Quote Requested"))
        feed(state, new, at(60, "Quote Requested"))
        assert current_score(state, T0 + 60, new) == 20

    def test_deleted_absence_rule_takes_no_points(self) -> None:
        """A pending deadline whose rule was removed lapses without points."""
        rule = AbsenceRule("unopened", after=EventMatch("Email Sent"), expect=EventMatch("Email Opened"),
                           within_s=DAY, points=-5)
        state = feed(ScoreState(), config(absences=[rule]), at(0, "Email Sent"))
        assert on_scoring_time(state, T0 + DAY, config())
        assert current_score(state, T0 + DAY, config()) == 0


class TestMerge:
    """Merging two contacts' scores when they turn out to be one person."""

    def test_scores_add_up_each_decayed(self) -> None:
        """10 at t0 and 20 at one half-life, read at two half-lives: 2.5 + 10."""
        cfg = config([ScoringRule("x", EventMatch("X"), 10), ScoringRule("y", EventMatch("Y"), 20)],
                     half_life=DAY)
        anonymous = feed(ScoreState(), cfg, at(0, "X"))
        known = feed(ScoreState(), cfg, at(DAY, "Y"))
        merge_scores(known, anonymous, T0 + 2 * DAY, cfg)
        assert current_score(known, T0 + 2 * DAY, cfg) == pytest.approx(12.5, abs=1e-9)
        assert score_history(known)[-1] == (T0 + 2 * DAY, 12.5)
        assert score_history(known)[0] == (T0 + DAY, 20.0)  # its own past, not the other's

    def test_a_new_contact_keeps_the_visitors_score_chart(self) -> None:
        """A visitor signing in as a user with no score yet: the chart starts with the visitor's points."""
        cfg = config([ScoringRule("x", EventMatch("X"), 10)], half_life=0)
        anonymous = feed(ScoreState(), cfg, at(0, "X"), at(60, "X"))
        known = ScoreState()
        merge_scores(known, anonymous, T0 + 120, cfg)
        assert score_history(known) == [(T0, 10.0), (T0 + 60, 20.0), (T0 + 120, 20.0)]

    def test_once_rules_stay_once(self) -> None:
        """A once-rule that fired on either side does not fire again after the merge."""
        cfg = config([ScoringRule("signup", EventMatch("Signed Up"), 15, mode="once")])
        anonymous = feed(ScoreState(), cfg, at(0, "Signed Up"))
        known = ScoreState()
        merge_scores(known, anonymous, T0 + 60, cfg)
        feed(known, cfg, at(120, "Signed Up"))
        assert current_score(known, T0 + 120, cfg) == 15

    def test_at_most_counters_combine(self) -> None:
        """One view on each side uses up the 2-per-hour budget."""
        cfg = config([ScoringRule("demo", EventMatch("Demo Viewed"), 1, mode="at_most", max_times=2,
                                  per_window_s=HOUR)])
        a = feed(ScoreState(), cfg, at(0, "Demo Viewed"))
        b = feed(ScoreState(), cfg, at(60, "Demo Viewed"))
        merge_scores(a, b, T0 + 120, cfg)
        assert not apply_scoring(a, at(180, "Demo Viewed"), T0 + 180, cfg)
        assert a.capped["demo"] == [T0, T0 + 60]

    def test_pending_absences_are_kept(self) -> None:
        """A deadline started on the anonymous contact still fires after the merge."""
        rule = AbsenceRule("unopened", after=EventMatch("Email Sent"), expect=EventMatch("Email Opened"),
                           within_s=DAY, points=-5, correlate_on="email_id")
        cfg = config(absences=[rule])
        anonymous = feed(ScoreState(), cfg, at(0, "Email Sent", email_id="a"))
        known = ScoreState()
        merge_scores(known, anonymous, T0 + 60, cfg)
        assert scoring_due(known) == T0 + DAY
        on_scoring_time(known, T0 + DAY, cfg)
        assert current_score(known, T0 + DAY, cfg) == -5


class TestTemperature:
    """cold < warm ≤ warm < hot ≤ hot."""

    @pytest.mark.parametrize(("score", "expected"), [
        (-10, "cold"), (19.999, "cold"), (20, "warm"), (49.999, "warm"), (50, "hot"), (500, "hot")])
    def test_default_edges(self, score: float, expected: str) -> None:
        """Exactly 20 is warm and exactly 50 is hot."""
        assert temperature_of(score, Thresholds()) == expected

    def test_custom_thresholds(self) -> None:
        """MQL 50 / SQL 100 as configured."""
        assert [temperature_of(s, Thresholds(warm=50, hot=100)) for s in (49, 50, 100)] == [
            "cold", "warm", "hot"]


class TestHistoryAndSnapshot:
    """The chart's history and the msgpack snapshot."""

    def test_history_records_each_change_and_is_capped(self) -> None:
        """Every scoring change is charted; only the last 50 are kept."""
        cfg = config([ScoringRule("x", EventMatch("X"), 1)])
        state = feed(ScoreState(), cfg, *(at(i * 60, "X") for i in range(HISTORY_CAP + 10)))
        history = score_history(state)
        assert len(history) == HISTORY_CAP
        assert history[0] == (T0 + 10 * 60, 11)
        assert history[-1] == (T0 + (HISTORY_CAP + 9) * 60, HISTORY_CAP + 10)

    def test_events_that_change_nothing_are_not_charted(self) -> None:
        """An unmatched event returns False and adds no history."""
        cfg = config([ScoringRule("x", EventMatch("X"), 1)])
        state = ScoreState()
        assert not apply_scoring(state, at(0, "Y"), T0, cfg)
        assert score_history(state) == []

    def test_state_round_trips_through_msgpack(self) -> None:
        """A snapshot decodes to an equal state that keeps scoring identically."""
        cfg = seed_config()
        state = feed(ScoreState(), cfg, *warm_lead(), at(DAY, "Email Sent", email_id="nurture-1"))
        restored = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=ScoreState)
        assert restored == state
        on_scoring_time(restored, T0 + 10 * DAY, cfg)
        assert current_score(restored, T0 + 10 * DAY, cfg) == 40


class TestDecayCrossings:
    """Decay alone changes temperature and Score conditions, on time."""

    def test_single_group_crossing_is_exact(self) -> None:
        """40 points, half-life 10 d: below 20 just after exactly 10 d, below 10 after 20 d."""
        from dataflows.capabilities.scoring import CROSSING_MARGIN_S, next_score_crossing

        config = LiveConfig.of(ActiveConfig(score_groups={"default": ScoreGroup(half_life_s=10 * DAY)}))
        state = ScoreState(groups={"default": (40.0, 0.0)})
        assert next_score_crossing(state, [20.0, 50.0], 0.0, config) == 10 * DAY + CROSSING_MARGIN_S
        at = next_score_crossing(state, [10.0], 0.0, config)
        assert at is not None and abs(at - (20 * DAY + CROSSING_MARGIN_S)) < 1e-6

    def test_two_groups_decaying_differently_are_solved_by_bisection(self) -> None:
        """Groups with 1 d and 4 d half-lives: the crossing found really is where the sum meets 20."""
        from dataflows.capabilities.scoring import current_score, next_score_crossing

        config = LiveConfig.of(ActiveConfig(score_groups={"fast": ScoreGroup(half_life_s=DAY),
                                                          "slow": ScoreGroup(half_life_s=4 * DAY)}),
                               validate=False)
        state = ScoreState(groups={"fast": (30.0, 0.0), "slow": (10.0, 0.0)})
        at = next_score_crossing(state, [20.0], 0.0, config)
        assert at is not None
        assert current_score(state, at - 0.01, config) >= 20.0 > current_score(state, at, config)

    def test_no_decay_means_no_crossing(self) -> None:
        """Half-life 0: the score never moves by itself."""
        from dataflows.capabilities.scoring import next_score_crossing

        config = LiveConfig.of(ActiveConfig(score_groups={"default": ScoreGroup(half_life_s=0)}))
        assert next_score_crossing(ScoreState(groups={"default": (40.0, 0.0)}), [20.0], 0.0, config) is None
