"""Telling known bots' events apart at ingest, so they never reach scoring, segments or workflows.

Crawlers that run JavaScript (Googlebot, headless Chrome, uptime checkers,
scrapers) execute the tracker like a shopper: left alone they would count as
visitors, sit in the dashboard's active set, and enter welcome or
abandoned-cart workflows. The cheapest correct spot to stop them is the edge:
a bot's event is acked (the client must not resend it) and then dropped
instead of appended, so it costs the streams and the dataflow nothing and
needs no flag anywhere downstream. `accept_bots` keeps them instead.

What counts as a bot is `crawlerdetect`'s list (a maintained port of the
PHP CrawlerDetect patterns, ~1 000 of them; headless Chrome included). Whose
user agent is judged:

- each event's `context.userAgent`, which the tracker and Segment's
  libraries fill in from `navigator.userAgent`, and server-side senders
  pass on from the browser they speak for;
- on the websocket, also the handshake's own `User-Agent` when the socket
  is a browser's (it has an `Origin`): page scripts cannot change it, so a
  bot that edits its events' context is still caught. Not on HTTP: server
  senders (the shop's back end, curl) may send an `Origin` too, and their
  HTTP library's agent, which the list calls a bot, says nothing of the
  shopper.

A check runs the pattern list (~150 µs); answers are cached per distinct
user agent (bounded), so each event costs a dict look-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final

from crawlerdetect import CrawlerDetect

from state.events import Event

MAX_AGENT_CHARS: Final = 1024
_detector: CrawlerDetect | None = None


@lru_cache(maxsize=4096)
def is_bot(user_agent: str) -> bool:
    """Whether `user_agent` is a known bot's (an empty one is not: it says nothing)."""
    global _detector
    if not user_agent:
        return False
    if _detector is None:
        _detector = CrawlerDetect()
    return bool(_detector.isCrawler(user_agent[:MAX_AGENT_CHARS]))


def event_agent(event: Event) -> str:
    """The user agent an event's context names ("" when none)."""
    agent = event.context.get("userAgent")
    return agent if isinstance(agent, str) else ""


def without_bots(events: Sequence[Event], connection_agent: str | None) -> tuple[list[Event], int]:
    """The events to keep and how many were bots'.

    `connection_agent` is the browser connection's user agent (None for a
    server-side sender); when it is a bot's, every event of it is.
    """
    if connection_agent and is_bot(connection_agent):
        return [], len(events)
    kept = [event for event in events if not is_bot(event_agent(event))]
    return kept, len(events) - len(kept)
