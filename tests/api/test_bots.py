"""Which events count as a known bot's: by their context's user agent, or by a browser socket's own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from api.bots import is_bot, without_bots
from state.events import Event
from state.validation import EventValidator, Limits

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def events(*agents: Any) -> list[Event]:
    raws = [msgspec.json.encode({"type": "page", "messageId": f"m{n}", "anonymousId": f"a{n}",
                                 **({"context": {"userAgent": agent}} if agent is not None else {})})
            for n, agent in enumerate(agents)]
    return EventValidator(Limits()).validate_all(raws, datetime.now(UTC)).accepted


class TestWithoutBots:
    """Bots' events are left out and counted; everything else is kept in order."""

    def test_events_whose_context_names_a_bot_are_left_out(self) -> None:
        batch = events(CHROME, GOOGLEBOT, None, HEADLESS, "", CHROME, 42)
        kept, bots = without_bots(batch, None)
        assert bots == 2
        assert [e.message_id for e in kept] == ["m0", "m2", "m4", "m5", "m6"]

    def test_a_bot_socket_drops_every_event_whatever_its_context_says(self) -> None:
        kept, bots = without_bots(events(CHROME, CHROME), HEADLESS)
        assert kept == [] and bots == 2

    def test_a_shoppers_frame_is_returned_as_is(self) -> None:
        batch = events(CHROME, CHROME, None)
        kept, bots = without_bots(batch, CHROME)
        assert kept is batch and bots == 0

    def test_server_libraries_are_bots_but_an_empty_agent_is_not(self) -> None:
        assert is_bot("python-requests/2.31") and is_bot("curl/8.0") and is_bot(GOOGLEBOT)
        assert not is_bot("") and not is_bot(CHROME)
