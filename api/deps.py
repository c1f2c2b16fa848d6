"""FastAPI dependencies, as `Annotated` aliases routes put in their signatures.

Process-wide objects (settings, the Redis client, caches) live on
`app.state`, created once by the lifespan in `api.app`. Every dependency is
`async def` on purpose: FastAPI runs a plain `def` dependency in a thread
pool, which cost the decisions route most of its CPU (thread hand-offs).
"""

from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, Request
from redis.exceptions import RedisError

from api.appender import StreamAppender
from api.backpressure import Backpressure
from api.dashboard.session import COOKIE, has_session, same_origin, token_matches
from api.errors import AdminAuthError, MissingWriteKeyError
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
    if found is None:
        raise UnknownWriteKeyError("unknown write key")
    if not found.allows_origin(origin):
        raise OriginNotAllowedError(f"origin {origin!r} is not allowed for this write key")
    return found


async def require_write_key(request: Request, cache: WriteKeysDep) -> WriteKey:
    """The write key from `?key=` or the `X-Attimo-Key` header (public read routes)."""
    key = request.query_params.get("key") or request.headers.get(WRITE_KEY_HEADER)
    return await resolve_write_key(cache, key, request.headers.get("origin"))


async def require_admin(request: Request, settings: SettingsDep) -> None:
    """Admin routes need `Authorization: Bearer <admin token>`, or the dashboard's session cookie.

    A cookie-authenticated write must come from the API's own pages
    (`api.dashboard.session.same_origin`): a bearer token is never sent by a
    browser on its own, a cookie is.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token_matches(token, settings.admin_token):
        return
    if COOKIE in request.cookies:
        try:
            logged_in = await has_session(request.app.state.redis, request)
        except RedisError as exc:
            raise StoreError(f"session lookup failed: {exc}") from exc
        if logged_in and (request.method in ("GET", "HEAD") or same_origin(request)):
            return
    raise AdminAuthError("admin bearer token required")


WriteKeyDep = Annotated[WriteKey, Depends(require_write_key)]
AdminDep = Annotated[None, Depends(require_admin)]
