"""When a message may go out: the contact's time zone and quiet hours.

Shared by every workflow: a message due during quiet hours (in the
contact's own time zone) waits for their end. Time zones are IANA names
from the contact's `timezone` trait, else the policy's default. The
frequency caps, shared with popups, are kept in one ledger per contact
(`capabilities.touches`).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from state.workflows import MessagingPolicy


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo | None:
    """The time zone called `name`, or None when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def contact_zone(timezone_trait: object, policy: MessagingPolicy) -> ZoneInfo:
    """The contact's time zone: its `timezone` trait when valid, else the policy's default (else UTC)."""
    if isinstance(timezone_trait, str) and (found := zone(timezone_trait)) is not None:
        return found
    return zone(policy.default_timezone) or ZoneInfo("UTC")


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def next_time_of_day(now: float, at: str, tz: ZoneInfo) -> float:
    """The next moment (after `now`) when the contact's clock shows `at` (HH:MM)."""
    local = datetime.fromtimestamp(now, UTC).astimezone(tz)
    candidate = datetime.combine(local.date(), _clock(at), tz)
    if candidate.timestamp() <= now:
        candidate = datetime.combine(local.date() + timedelta(days=1), _clock(at), tz)
    return candidate.timestamp()


def quiet_until(now: float, policy: MessagingPolicy, tz: ZoneInfo, channel: str) -> float | None:
    """When quiet hours end, if `now` falls in them for `channel`; None when a message may go now."""
    quiet = policy.quiet_hours
    if quiet is None or channel not in policy.quiet_channels or quiet.start == quiet.end:
        return None
    local = datetime.fromtimestamp(now, UTC).astimezone(tz).time()
    start, end = _clock(quiet.start), _clock(quiet.end)
    inside = (start <= local or local < end) if start > end else (start <= local < end)
    return next_time_of_day(now, quiet.end, tz) if inside else None

