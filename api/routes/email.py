"""The links in Attimo's e-mails: the open pixel, the click redirect, unsubscribe.

Every link is signed (`api.email.links`): an unknown, forged or altered
token — or a click whose destination is not the one signed — is 404 and
appends nothing. A valid one appends its event (`api.email.events`) to the
contact's ingest stream.

Reading the mail matters more than counting it: when the store cannot take
the event, the pixel is still served and the click still redirects (the
open or click is lost and logged). An unsubscribe is never lost: it answers
503 until the store has it, and the reader or the mail client tries again.
A `GET` of the unsubscribe link only shows a page with a button (link
scanners and prefetchers follow links); the button and mail clients'
one-click unsubscribe (RFC 8058) `POST`.
"""

from __future__ import annotations

import base64
import html
import logging
from datetime import UTC, datetime
from typing import Annotated, Final
from urllib.parse import quote

import redis.asyncio as aioredis
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from redis.exceptions import RedisError

from api.deps import RedisDep, SettingsDep
from api.email.errors import InvalidLinkError
from api.email.events import contact_address, engagement_event
from api.email.links import MAX_LINK_URL_CHARS, LinkClaims, LinkSigner, Purpose
from api.email.tracking import trackable
from api.logging import log
from api.models import ErrorBody
from api.openapi import Responses, response
from state.settings import Settings
from state.streams import append_events

router = APIRouter(prefix="/v1/email", tags=["e-mail links"])
logger: Final = logging.getLogger("attimo.api.email")

PIXEL: Final = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE: Final = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}
PAGE_HEADERS: Final = {**NO_STORE, "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
# Characters a Location header may keep as they are; the rest (spaces, non-ASCII) is percent-encoded.
_URL_SAFE: Final = ":/?#[]@!$&'()*+,;=%~"

_NOT_FOUND: Final[Responses] = {404: response(ErrorBody, "Unknown, forged or altered link: nothing appended.")}
_INVALID: Final[Responses] = {422: response(ErrorBody, "A required parameter is missing or too long.")}
_HTML: Final = {"text/html": {"schema": {"type": "string"}}}


async def _record(client: aioredis.Redis, settings: Settings, purpose: Purpose, token: str, claims: LinkClaims,
                  request: Request, url: str | None = None) -> None:
    address = await contact_address(client, claims)
    event = engagement_event(purpose, token, claims, address, datetime.now(UTC), url=url,
                             user_agent=request.headers.get("user-agent"))
    await append_events(client, [event], settings.stream_shards)


async def _record_if_possible(client: aioredis.Redis, settings: Settings, purpose: Purpose, token: str,
                              claims: LinkClaims, request: Request, url: str | None = None) -> None:
    """Record an open or a click; a store outage loses it (logged) rather than the reader's page."""
    try:
        await _record(client, settings, purpose, token, claims, request, url)
    except (RedisError, OSError) as exc:
        log(logger, logging.WARNING, "e-mail event not recorded", purpose=purpose, action_id=claims.action_id,
            error=str(exc))


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{html.escape(title)}</title></head>"
            f"<body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\">{body}</body></html>")


@router.get("/open/{token}.gif", response_class=Response,
            responses={200: {"description": "A 1×1 transparent GIF; the open was recorded.",
                             "content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}}},
                       **_NOT_FOUND})
async def email_opened(token: str, request: Request, settings: SettingsDep, client: RedisDep) -> Response:
    """The tracking pixel: appends `Email Opened` for the e-mail's contact (once per e-mail)."""
    claims = LinkSigner.from_settings(settings).verify("open", token)
    await _record_if_possible(client, settings, "open", token, claims, request)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get("/click/{token}", response_class=Response, status_code=302,
            responses={302: {"description": "Redirect to the link's destination; the click was recorded.",
                             "headers": {"Location": {"schema": {"type": "string"}}}},
                       **_NOT_FOUND, **_INVALID})
async def email_link_clicked(token: str, request: Request, settings: SettingsDep, client: RedisDep,
                             u: Annotated[str, Query(min_length=1, max_length=MAX_LINK_URL_CHARS,
                                                     description="The destination, as signed.")]) -> Response:
    """A link in an e-mail: appends `Email Link Clicked` (with the URL) and redirects to the signed URL only."""
    claims = LinkSigner.from_settings(settings).verify("click", token, u)
    if not trackable(u):  # never signed by Attimo; checked again so no redirect can go elsewhere
        raise InvalidLinkError("unknown or altered link")
    await _record_if_possible(client, settings, "click", token, claims, request, url=u)
    return Response(status_code=302, headers={"Location": quote(u, safe=_URL_SAFE), **NO_STORE})


@router.get("/unsubscribe/{token}", response_class=HTMLResponse,
            responses={200: {"description": "A page asking to confirm; nothing is recorded yet.", "content": _HTML},
                       **_NOT_FOUND})
async def unsubscribe_page(token: str, settings: SettingsDep) -> HTMLResponse:
    """The unsubscribe link: a page with a button that confirms (a GET changes nothing)."""
    LinkSigner.from_settings(settings).verify("unsubscribe", token)
    form = ("<h1>Unsubscribe</h1><p>Stop receiving these e-mails?</p><form method=\"post\">"
            "<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
            "<button type=\"submit\">Unsubscribe</button></form>")
    return HTMLResponse(_page("Unsubscribe", form), headers=PAGE_HEADERS)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse,
             responses={200: {"description": "Unsubscribed: `Unsubscribed` was appended.", "content": _HTML},
                        **_NOT_FOUND, 503: response(ErrorBody, "The store is unavailable; nothing recorded, retry.")})
async def unsubscribe(token: str, request: Request, settings: SettingsDep, client: RedisDep) -> HTMLResponse:
    """Confirm an unsubscribe (the page's button, or a mail client's one-click POST): appends `Unsubscribed`."""
    claims = LinkSigner.from_settings(settings).verify("unsubscribe", token)
    await _record(client, settings, "unsubscribe", token, claims, request)
    page = _page("Unsubscribed", "<h1>You are unsubscribed</h1><p>You will not receive these e-mails any more.</p>")
    return HTMLResponse(page, headers=PAGE_HEADERS)
