"""Check an event as the ingest will, before sending it, and say which field is wrong.

The replay uses the ingest's own validator (`state.validation`, the msgspec
schema of `state.events` and the bounds of `state.json_bounds`) with the
limits from the same settings, so a line refused here would have been
refused by the API, and the user learns it without the round trip. The
API still checks everything again; its per-event answers are reported the
same way.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from state.errors import InvalidEventError
from state.validation import EventValidator, Limits

# Where the reason names the field: msgspec says "… - at `$.userId`" or "missing required field `event`";
# the validator's own messages start with the field in backticks ("`properties.price` must be …").
_AT_PATH: Final = re.compile(r"at `\$\.?([^`]*)`")
_REQUIRED: Final = re.compile(r"field `([^`]+)`")
_QUOTED: Final = re.compile(r"`([^`]+)`")


class Rejected(msgspec.Struct, frozen=True, omit_defaults=True):
    """One refused event, as printed and as written to the `--rejects` file (one JSON object a line).

    `line` (NDJSON) or `event` (1-based position in an array) says where it
    is; `by` is "replay" when the local check refused it (it was not sent)
    or "api" when the API answered the refusal; `text` is the event as read.
    """

    reason: str
    by: Literal["replay", "api"]
    line: int | None = None
    event: int | None = None
    field: str | None = None
    text: str | None = None


def field_of(reason: str) -> str | None:
    """The field a refusal's reason names (`userId`, `properties.price` …), or None when it names none."""
    found = _AT_PATH.search(reason)
    if found:
        return found.group(1) or None
    if reason.startswith(("not valid JSON", "Expected ")):  # the event as a whole: not JSON, not an object
        return None
    for pattern in (_REQUIRED, _QUOTED):
        found = pattern.search(reason)
        if found:
            return found.group(1) or None
    return None


class Checker:
    """The ingest's validation of one event, answering with the reason instead of raising."""

    def __init__(self, limits: Limits) -> None:
        self._validator = EventValidator(limits)

    def problem(self, payload: bytes) -> str | None:
        """Why the ingest would refuse this event now, or None when it would take it."""
        try:
            self._validator.validate_one(payload, datetime.now(UTC))
        except InvalidEventError as exc:
            return exc.reason
        return None
