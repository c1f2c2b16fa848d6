"""FastAPI dependencies, as `Annotated` aliases routes put in their signatures.

Process-wide objects (settings, the Redis client, caches) live on
`app.state`, created once by the lifespan in `api.app`. Every dependency is
`async def` on purpose: FastAPI runs a plain `def` dependency in a thread
pool, which cost the decisions route most of its CPU (thread hand-offs).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Final

import redis.asyncio as aioredis
from fastapi import Depends, Request
from redis.exceptions import RedisError

from api.appender import StreamAppender
from api.backpressure import Backpressure
from api.dashboard.session import COOKIE, same_origin, session_scopes, token_matches
from api.errors import AdminAuthError, MissingWriteKeyError, ScopeError
from state.admin_tokens import ALL, SCOPES, Scope, find_token, grants
from state.errors import OriginNotAllowedError, StoreError, UnknownWriteKeyError
from state.settings import Settings
from state.writekeys import WriteKey, WriteKeyCache

WRITE_KEY_HEADER = "X-Attimo-Key"


async def get_settings(request: Request) -> Settings:
    """The process's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_redis(request: Request) -> aioredis.Redis:
    """The process's shared Redis client."""
    client: aioredis.Redis = request.app.state.redis
    return client


async def get_write_keys(request: Request) -> WriteKeyCache:
    """The process's write key cache."""
    cache: WriteKeyCache = request.app.state.write_keys
    return cache


async def get_backpressure(request: Request) -> Backpressure:
    """The process's ingest backpressure gauge."""
    gauge: Backpressure = request.app.state.backpressure
    return gauge


async def get_appender(request: Request) -> StreamAppender:
    """The process's coalescing stream appender."""
    appender: StreamAppender = request.app.state.appender
    return appender


SettingsDep = Annotated[Settings, Depends(get_settings)]
AppenderDep = Annotated[StreamAppender, Depends(get_appender)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]
WriteKeysDep = Annotated[WriteKeyCache, Depends(get_write_keys)]
BackpressureDep = Annotated[Backpressure, Depends(get_backpressure)]


async def resolve_write_key(cache: WriteKeyCache, key: str | None, origin: str | None) -> WriteKey:
    """The write key record for `key`, checked against the request's Origin."""
    if not key:
        raise MissingWriteKeyError("a write key is required")
    try:
        found = await cache.get(key)
    except RedisError as exc:
        raise StoreError(f"write key lookup failed: {exc}") from exc
    if found is None or found.expired(time.time()):
        raise UnknownWriteKeyError("unknown write key")
    if not found.allows_origin(origin):
        if found.kind == "secret":
            raise OriginNotAllowedError("a secret write key is for the shop's back end, never a browser: "
                                        "use the site's public key in pages")
        raise OriginNotAllowedError(f"origin {origin!r} is not allowed for this write key")
    return found


async def require_write_key(request: Request, cache: WriteKeysDep) -> WriteKey:
    """The write key from `?key=` or the `X-Attimo-Key` header (public read routes)."""
    key = request.query_params.get("key") or request.headers.get(WRITE_KEY_HEADER)
    return await resolve_write_key(cache, key, request.headers.get("origin"))


async def token_scopes(request: Request, settings: Settings) -> frozenset[str] | None:
    """The scopes of the admin credentials a request carries, or None when it carries none that work.

    A bearer token is the dev token (`ATTIMO_ADMIN_TOKEN`, compared in
    constant time, every scope) or a token made through the API (found by
    its SHA-256: `state.admin_tokens`). Without one, the dashboard's session
    cookie counts with the scopes of the token that logged in — for a write,
    only from the API's own pages (`api.dashboard.session.same_origin`): a
    bearer token is never sent by a browser on its own, a cookie is.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    client: aioredis.Redis = request.app.state.redis
    try:
        if scheme.lower() == "bearer" and token:
            token = token.strip()
            if token_matches(token, settings.admin_token):
                return frozenset({ALL})
            record = await find_token(client, token)
            return frozenset(record.scopes) if record is not None else None
        if COOKIE in request.cookies:
            scopes = await session_scopes(client, request)
            if scopes is not None and (request.method in ("GET", "HEAD") or same_origin(request)):
                return scopes
    except RedisError as exc:
        raise StoreError(f"admin token lookup failed: {exc}") from exc
    return None


def require_scope(scope: Scope) -> Callable[[Request, Settings], Awaitable[None]]:
    """A dependency that lets a request through only with admin credentials holding `scope` (or `admin`).

    401 without working credentials; 403 when they lack the scope, naming it.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(request: Request, settings: SettingsDep) -> None:
        scopes = await token_scopes(request, settings)
        if scopes is None:
            raise AdminAuthError("admin bearer token required")
        if not grants(tuple(scopes), scope):
            raise ScopeError(f"this admin token lacks the scope {scope!r}")
        request.state.admin_scopes = scopes

    check.__name__ = f"require_{scope.replace(':', '_')}"
    return check


# Admin routes written before scopes whose method alone does not say what they do: a POST that
# only reads, and the personal-data routes (erase, export, consent), which need `contacts:erase`.
_SCOPE_BY_PATH: Final[tuple[tuple[re.Pattern[str], Scope], ...]] = (
    (re.compile(r"^/v1/admin/segments/preview$"), "contacts:read"),
    (re.compile(r"^/v1/admin/contacts/.+/(erase|export|consent)$"), "contacts:erase"),
    (re.compile(r"^/v1/admin/erasures(/|$)"), "contacts:erase"),
)


def default_scope(method: str, path: str) -> Scope:
    """The scope an admin route that names none needs: by the table above, else reads vs writes."""
    for pattern, scope in _SCOPE_BY_PATH:
        if pattern.search(path):
            return scope
    return "contacts:read" if method in ("GET", "HEAD") else "config:write"


async def require_admin(request: Request, settings: SettingsDep) -> None:
    """The default for admin routes that do not name a scope (`default_scope`).

    Every admin route predating scopes uses this (`AdminDep`), which gives
    the sensible split — reads need `contacts:read`, writes `config:write`,
    personal data `contacts:erase` — without each route restating it; new
    routes say what they need with `require_scope` (`KeysDep`, `EraseDep` …).
    """
    await require_scope(default_scope(request.method, request.url.path))(request, settings)


WriteKeyDep = Annotated[WriteKey, Depends(require_write_key)]
AdminDep = Annotated[None, Depends(require_admin)]
ReadDep = Annotated[None, Depends(require_scope("contacts:read"))]
ConfigWriteDep = Annotated[None, Depends(require_scope("config:write"))]
KeysDep = Annotated[None, Depends(require_scope("keys:manage"))]
EraseDep = Annotated[None, Depends(require_scope("contacts:erase"))]
