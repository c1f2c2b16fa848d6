"""Sessions: 30 min idle, 24 h max, late events, summary and merge."""

from __future__ import annotations

import msgspec
from msgspec.structs import asdict

from dataflows.capabilities.sessions import (
    SessionState,
    apply_session,
    merge_sessions,
    session_ends_at,
    session_summary,
)
from state.config import DAY, WindowSettings
from tests.factories import FIXED_NOW

T0 = FIXED_NOW.timestamp()
MIN = 60.0
SETTINGS = WindowSettings()  # 30 min idle, 24 h max


def sessions_of(*moments: float, pages: bool = True) -> SessionState:
    """A session state after activity at each moment."""
    state = SessionState()
    for at in moments:
        apply_session(state, at, pages, SETTINGS)
    return state


class TestSessionStart:
    """When a new session starts."""

    def test_first_event_starts_a_session(self) -> None:
        """The very first event opens session 1."""
        state = SessionState()
        assert apply_session(state, T0, True, SETTINGS)
        assert (state.count, state.started_at, state.last_at, state.pages) == (1, T0, T0, 1)

    def test_exactly_30_min_idle_is_the_same_session(self) -> None:
        """A gap of exactly session_idle_s continues the session."""
        state = sessions_of(T0)
        assert not apply_session(state, T0 + 30 * MIN, True, SETTINGS)
        assert state.count == 1
        assert state.pages == 2

    def test_more_than_30_min_idle_starts_a_new_session(self) -> None:
        """A gap 1 ms longer than session_idle_s opens a new session."""
        state = sessions_of(T0)
        assert apply_session(state, T0 + 30 * MIN + 0.001, True, SETTINGS)
        assert (state.count, state.started_at, state.pages) == (2, T0 + 30 * MIN + 0.001, 1)

    def test_a_session_longer_than_24_h_is_cut(self) -> None:
        """Activity every 20 min: the event after 24 h opens a new session."""
        state = sessions_of(*(T0 + i * 20 * MIN for i in range(73)))  # up to exactly 24 h
        assert state.count == 1
        assert apply_session(state, T0 + DAY + 20 * MIN, True, SETTINGS)
        assert (state.count, state.started_at) == (2, T0 + DAY + 20 * MIN)

    def test_non_page_events_keep_the_session_alive_without_counting_pages(self) -> None:
        """A track event extends the session but is not a page."""
        state = sessions_of(T0)
        apply_session(state, T0 + 20 * MIN, False, SETTINGS)
        assert not apply_session(state, T0 + 45 * MIN, True, SETTINGS)
        assert (state.count, state.pages) == (1, 2)


class TestLateEvents:
    """Late events never start sessions nor move times back."""

    def test_late_event_does_not_start_a_session_or_move_times(self) -> None:
        """An event 2 h older than the last activity changes no time and no count."""
        state = sessions_of(T0, T0 + 10 * MIN)
        assert not apply_session(state, T0 - 2 * 3600, True, SETTINGS)
        assert (state.count, state.started_at, state.last_at, state.pages) == (1, T0, T0 + 10 * MIN, 2)

    def test_late_page_inside_the_current_session_counts_as_its_page(self) -> None:
        """A page that happened during the current session, arriving late, is one of its pages."""
        state = sessions_of(T0, T0 + 10 * MIN)
        assert not apply_session(state, T0 + 5 * MIN, True, SETTINGS)
        assert (state.pages, state.last_at) == (3, T0 + 10 * MIN)


class TestSummary:
    """What the profile shows about sessions."""

    def test_new_visitor_in_first_session(self) -> None:
        """One session: new visitor, its pages and duration."""
        state = sessions_of(T0, T0 + 5 * MIN, T0 + 12 * MIN)
        assert asdict(session_summary(state, T0 + 12 * MIN)) == {
            "sessions": 1, "current_session_pages": 3, "current_session_duration_s": 720.0,
            "returning": False, "new_visitor": True}

    def test_returning_visitor_after_a_second_session(self) -> None:
        """Two sessions: returning, current session is the second."""
        state = sessions_of(T0, T0 + 2 * 3600)
        summary = asdict(session_summary(state, T0 + 2 * 3600))
        assert summary["returning"] is True
        assert summary["new_visitor"] is False
        assert (summary["sessions"], summary["current_session_pages"]) == (2, 1)

    def test_ended_session_reports_no_current_session_when_given_settings(self) -> None:
        """Past the idle timeout the current session is over: 0 pages, 0 s."""
        state = sessions_of(T0, T0 + 5 * MIN)
        assert session_ends_at(state, SETTINGS) == T0 + 35 * MIN
        summary = asdict(session_summary(state, T0 + 35 * MIN + 1, SETTINGS))
        assert (summary["current_session_pages"], summary["current_session_duration_s"]) == (0, 0.0)
        assert asdict(session_summary(state, T0 + 35 * MIN, SETTINGS))["current_session_pages"] == 2

    def test_never_seen_has_no_sessions(self) -> None:
        """An empty state: zero sessions, no end time."""
        assert asdict(session_summary(SessionState(), T0))["sessions"] == 0
        assert session_ends_at(SessionState(), SETTINGS) is None

    def test_state_round_trips_through_msgpack(self) -> None:
        """A snapshot decodes to an equal state."""
        state = sessions_of(T0, T0 + 60)
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=SessionState) == state


class TestMerge:
    """Identity merge of sessions."""

    def test_overlapping_current_sessions_are_one_visit(self) -> None:
        """The same visit seen under two ids counts once, with both spans and pages."""
        anonymous = sessions_of(T0 - DAY, T0, T0 + 5 * MIN)   # 2 sessions
        known = sessions_of(T0 + 2 * MIN, T0 + 8 * MIN)         # 1 session, overlapping
        merge_sessions(anonymous, known)
        assert (anonymous.count, anonymous.started_at, anonymous.last_at, anonymous.pages) == (
            2, T0, T0 + 8 * MIN, 4)

    def test_separate_sessions_add_up_and_the_latest_is_current(self) -> None:
        """Disjoint histories: counts add, the later session becomes current."""
        first = sessions_of(T0, T0 + 60)
        later = sessions_of(T0 + DAY)
        merge_sessions(first, later)
        assert (first.count, first.started_at, first.pages) == (2, T0 + DAY, 1)

    def test_merge_into_empty_copies(self) -> None:
        """An empty state takes the other's sessions."""
        empty = SessionState()
        merge_sessions(empty, sessions_of(T0))
        assert (empty.count, empty.started_at) == (1, T0)
