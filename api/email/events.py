"""The events an e-mail's links append: `Email Opened`, `Email Link Clicked`, `Unsubscribed`.

They are ordinary `track` events with the Segment e-mail names, appended
server-side to the contact's ingest stream, so scoring, segments, tags and
workflows see them like any event (an unsubscribe exits workflows and stops
e-mail to the contact; opens and clicks feed engagement).

What counts once: the `messageId` is derived from the link's purpose and
token, and the dataflow drops a repeated `messageId`
(docs/protocol.md §1.6). So an open counts once per e-mail, a click once
per e-mail and link (the token covers the URL), an unsubscribe once per
e-mail — within the de-duplication window (48 h and 2 000 events of the
contact by default). A pixel loaded again after that is a new open, which
is what it is: the reader came back to the message.

The event is addressed the way the dataflow keys the contact now (it may
have been identified or merged since the e-mail was sent); a contact with
no profile any more is addressed by the ids the e-mail was sent to.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Final

import redis.asyncio as aioredis

from api.email.links import LinkClaims, Purpose
from state.contacts import event_ids, resolve_contact
from state.events import EMAIL_LINK_CLICKED, EMAIL_OPENED, UNSUBSCRIBED, Track

EVENT_NAMES: Final[dict[Purpose, str]] = {"open": EMAIL_OPENED, "click": EMAIL_LINK_CLICKED,
                                          "unsubscribe": UNSUBSCRIBED}
MAX_USER_AGENT_CHARS: Final = 512
LIBRARY: Final = {"name": "attimo-email", "version": "1"}


def message_id(purpose: Purpose, token: str) -> str:
    """The `messageId` of the event a link appends: the same link, the same event."""
    return f"email-{purpose}-{hashlib.sha256(f'{purpose}:{token}'.encode()).hexdigest()[:40]}"


async def contact_address(client: aioredis.Redis, claims: LinkClaims) -> tuple[str | None, str | None]:
    """(anonymousId, userId) that reach the contact the e-mail went to, as the dataflow keys it now."""
    ref = await resolve_contact(client, claims.contact_id)
    if ref is not None:
        return event_ids(ref, claims.contact_id)
    user_id = claims.user_id
    return (None, user_id) if user_id is not None else (claims.contact_id, None)


def engagement_event(purpose: Purpose, token: str, claims: LinkClaims, address: tuple[str | None, str | None],
                     now: datetime, url: str | None = None, user_agent: str | None = None) -> Track:
    """The track event for one use of a link, with the e-mail's action, workflow and step as properties."""
    properties: dict[str, Any] = {"action_id": claims.action_id, "workflow_id": claims.workflow_id,
                                  "workflow_version": claims.workflow_version, "step_id": claims.step_id,
                                  "channel": "email"}
    if claims.branch is not None:
        properties["branch"] = claims.branch
    if url is not None:
        properties["link_url"] = url
    context: dict[str, Any] = {"library": LIBRARY}
    if user_agent:
        context["userAgent"] = user_agent[:MAX_USER_AGENT_CHARS]
    anonymous_id, user_id = address
    return Track(event=EVENT_NAMES[purpose], message_id=message_id(purpose, token), anonymous_id=anonymous_id,
                 user_id=user_id, timestamp=now, received_at=now, properties=properties, context=context)
