"""The decisions read path as a bare ASGI handler in front of FastAPI.

`GET /v1/decisions/{id}` is called on every page view of every visitor, so
it skips FastAPI's routing, dependency injection and middleware stack (about
three quarters of a request's CPU on this path) and does only what the
answer needs: the write key check (cached), one Redis GET, and the CORS
header for the site's origin. The FastAPI route with the same behaviour
stays for the OpenAPI docs and is reached only if this layer is bypassed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qs

import msgspec
from fastapi import FastAPI
from redis.exceptions import RedisError

from api.deps import resolve_write_key
from api.errors import status_for
from api.models import ErrorBody
from state.contacts import load_profile
from state.errors import AttimoError
from state.profile import decisions_for

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX: Final = "/v1/decisions/"
_encoder: Final = msgspec.json.Encoder()


class DecisionsFastPath:
    """Answers decisions requests itself; passes everything else to the app."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        # The server has percent-decoded the path already: an id may contain "/" (sent as %2F).
        visitor_id = scope["path"][len(PREFIX):]
        if not visitor_id:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key", [None])[0]
        key = key or headers.get("x-attimo-key")
        origin = headers.get("origin")
        state = self.app.state
        try:
            await resolve_write_key(state.write_keys, key, origin)
            profile = await load_profile(state.redis, visitor_id)
        except AttimoError as exc:
            await _respond(send, status_for(exc), _encoder.encode(ErrorBody(str(exc))), origin)
            return
        except (RedisError, OSError):
            await _respond(send, 503, _encoder.encode(ErrorBody("store unavailable")), origin)
            return
        await _respond(send, 200, _encoder.encode(decisions_for(profile)), origin)


async def _respond(send: Send, status: int, body: bytes, origin: str | None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    if origin is not None and status == 200:
        # Only an answer for a valid key and an origin it allows may be read by that origin's pages.
        headers += [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
