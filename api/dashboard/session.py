"""Dashboard login sessions: the admin token is exchanged once for an HttpOnly cookie.

The token must never sit in a URL (it would reach history, logs and
Referer headers) nor in localStorage (any script on the page could read it).
`POST /dashboard/login` checks it and sets a random session id in a cookie
that scripts cannot read (HttpOnly) and that the browser sends only on
requests started from the API's own pages (SameSite=Strict), so another site
cannot make an operator's browser act with it. Sessions live in Redis, so
every API process accepts them and they survive a restart; only the SHA-256
of the id is stored, with the scopes of the token that logged in (a
read-only token's session cannot write) and that token's id, so revoking
the token ends its sessions too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Final

import msgspec
import redis.asyncio as aioredis
from starlette.requests import HTTPConnection
from starlette.responses import Response

from state import keys
from state.admin_tokens import ALL, find_token


class SessionRecord(msgspec.Struct, frozen=True):
    """What a session may do: its token's scopes, and the token's id ("" for the dev token)."""

    scopes: list[str]
    token_id: str = ""

COOKIE: Final = "attimo_session"
SESSION_TTL_S: Final = 12 * 3600
"""An operator logs in again after 12 hours."""


def token_matches(given: str, admin_token: str) -> bool:
    """Constant-time comparison of a submitted token with the configured one."""
    return hmac.compare_digest(given.strip().encode(), admin_token.encode())


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def open_session(client: aioredis.Redis, response: Response, secure: bool,
                       scopes: Sequence[str] = ("admin",), token_id: str = "") -> None:
    """Start a session with `scopes` and set its cookie on `response` (`secure` when served over https)."""
    session_id = secrets.token_urlsafe(32)
    record = msgspec.json.encode(SessionRecord(sorted(scopes), token_id))
    await client.set(keys.dashboard_session(_digest(session_id)), record, ex=SESSION_TTL_S)
    response.set_cookie(COOKIE, session_id, max_age=SESSION_TTL_S, path="/", httponly=True,
                        samesite="strict", secure=secure)


async def has_session(client: aioredis.Redis, connection: HTTPConnection) -> bool:
    """Whether the request carries the cookie of a live session."""
    session_id = connection.cookies.get(COOKIE)
    if not session_id or len(session_id) > 128:
        return False
    return bool(await client.exists(keys.dashboard_session(_digest(session_id))))


async def session_scopes(client: aioredis.Redis, connection: HTTPConnection) -> frozenset[str] | None:
    """The scopes of the request's live session, or None (no session, or its token was revoked)."""
    session_id = connection.cookies.get(COOKIE)
    if not session_id or len(session_id) > 128:
        return None
    raw = await client.get(keys.dashboard_session(_digest(session_id)))
    if raw is None:
        return None
    if raw == b"1":  # a session opened before scopes existed: the dev token's
        return frozenset({"admin"})
    record = msgspec.json.decode(raw, type=SessionRecord)
    if record.token_id and not await client.hexists(keys.admin_token_index(), record.token_id):
        return None
    return frozenset(record.scopes)


async def close_session(client: aioredis.Redis, connection: HTTPConnection, response: Response) -> None:
    """End the request's session (if any) and clear its cookie."""
    session_id = connection.cookies.get(COOKIE)
    if session_id and len(session_id) <= 128:
        await client.delete(keys.dashboard_session(_digest(session_id)))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def same_origin(connection: HTTPConnection) -> bool:
    """Whether a state-changing request came from the API's own pages.

    SameSite=Strict already keeps the cookie off cross-site requests; this
    second check refuses a cookie-authenticated write whose Origin (sent by
    browsers on every POST/PUT/DELETE) names another site.
    """
    origin = connection.headers.get("origin")
    if origin is None:
        return connection.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    host = connection.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def login_scopes(client: aioredis.Redis, token: str, admin_token: str) -> SessionRecord | None:
    """What a session opened with `token` may do: the dev token's every scope, an API token's own; None: refused."""
    token = token.strip()
    if token_matches(token, admin_token):
        return SessionRecord([ALL])
    found = await find_token(client, token)
    return SessionRecord(list(found.scopes), found.id) if found is not None else None
