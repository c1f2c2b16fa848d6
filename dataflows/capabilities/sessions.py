"""Visits: a session ends after `session_idle_s` without activity or `session_max_s` in all.

The defaults (30 min idle, 24 h max) are what Snowplow, PostHog, RudderStack
and Mautic use, so Attimo's session counts agree with the analytics a shop
already has. Sessions follow event time; a late event never reopens or
starts a session, and never moves a time backwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from dataflows.capabilities.base import Capability, Context
from state.config import WindowSettings
from state.events import Event, Page, Screen
from state.profile import SessionsSummary

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView


class SessionState(msgspec.Struct, array_like=True, gc=False):
    """How many sessions a contact had, and the current (latest) one."""

    count: int = 0
    started_at: float = 0.0
    last_at: float = 0.0
    pages: int = 0


def apply_session(state: SessionState, at: float, is_page: bool, settings: WindowSettings) -> bool:
    """Account for activity at `at`; True when it started a new session.

    A new session starts with the first event, after more than
    `session_idle_s` without activity, or once the current session is more
    than `session_max_s` old (exactly at either limit is still the same
    session). An event older than the last activity is late: it counts as a
    page of the current session if it falls inside it, and changes nothing
    else.
    """
    if state.count == 0:
        state.count = 1
        state.started_at = state.last_at = at
        state.pages = 1 if is_page else 0
        return True
    if at < state.last_at:
        if is_page and at >= state.started_at:
            state.pages += 1
        return False
    if at - state.last_at > settings.session_idle_s or at - state.started_at > settings.session_max_s:
        state.count += 1
        state.started_at = state.last_at = at
        state.pages = 1 if is_page else 0
        return True
    state.last_at = at
    if is_page:
        state.pages += 1
    return False


def session_ends_at(state: SessionState, settings: WindowSettings) -> float | None:
    """When the current session ends if nothing else happens (for a timer), or None without one."""
    if state.count == 0:
        return None
    return min(state.last_at + settings.session_idle_s, state.started_at + settings.session_max_s)


def session_summary(state: SessionState, now: float,
                    settings: WindowSettings | None = None) -> SessionsSummary:
    """Sessions for the profile: count, and pages and duration of the current session.

    With `settings`, a session that has ended by `now` (idle or too long)
    reports 0 pages and 0 s: there is no current session any more. Without,
    the latest session is reported as current. Duration runs from its first
    to its latest activity (a single-page visit lasts 0 s).
    """
    current = state.count > 0
    if current and settings is not None:
        ends_at = session_ends_at(state, settings)
        current = ends_at is not None and now <= ends_at
    return SessionsSummary(
        sessions=state.count,
        current_session_pages=state.pages if current else 0,
        current_session_duration_s=round(state.last_at - state.started_at, 3) if current else 0.0,
        returning=state.count > 1,
        new_visitor=state.count <= 1,
    )


def merge_sessions(into: SessionState, other: SessionState) -> None:
    """Fold `other` into `into` (identity merge).

    Counts add up, except that two current sessions overlapping in time (the
    same visit seen under two ids, e.g. before and after login) are one
    session: their spans and pages are combined. Otherwise the later session
    becomes the current one. Overlap is judged on the activity spans alone,
    without idle time, since this has no settings.
    """
    if other.count == 0:
        return
    if into.count == 0:
        into.count, into.started_at, into.last_at, into.pages = (
            other.count, other.started_at, other.last_at, other.pages)
        return
    count = into.count + other.count
    if into.started_at <= other.last_at and other.started_at <= into.last_at:
        into.count = count - 1
        into.started_at = min(into.started_at, other.started_at)
        into.last_at = max(into.last_at, other.last_at)
        into.pages += other.pages
        return
    into.count = count
    if other.last_at > into.last_at:
        into.started_at, into.last_at, into.pages = other.started_at, other.last_at, other.pages


class SessionsCapability(Capability[SessionState]):
    """Visits (30 min idle / 24 h max by default); the profile's `sessions`."""

    name = "sessions"
    part = SessionState

    def apply(self, part: SessionState, event: Event, ctx: Context) -> None:
        apply_session(part, ctx.at, isinstance(event, Page | Screen), ctx.live.config.windows)

    def merge(self, into: SessionState, other: SessionState, ctx: Context) -> None:
        merge_sessions(into, other)

    def render(self, part: SessionState, view: StateView) -> Mapping[str, Any]:
        return {"sessions": session_summary(part, view.now, view.live.config.windows)}
