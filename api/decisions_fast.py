"""The decisions read path as a bare ASGI handler in front of FastAPI.

`GET /v1/decisions/{id}` is called on every page view of every visitor, so
it skips FastAPI's routing, dependency injection and middleware stack (about
three quarters of a request's CPU on this path) and does only what the
answer needs: the write key check (cached), one Redis round trip
(`api.decisions.read`), the identity check, and the CORS header for the
site's origin. The FastAPI route with the same behaviour stays for the
OpenAPI docs and is reached only if this layer is bypassed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec
from fastapi import FastAPI
from redis.exceptions import RedisError

from api.decisions.answer import DecisionService
from api.deps import resolve_write_key
from api.errors import InvalidBodyError, status_for
from api.models import ErrorBody
from state.errors import AttimoError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX: Final = "/v1/decisions/"
MAX_PRODUCT_ID: Final = 200
"""Longest `product` accepted (an id is at most 200 characters, as events' ids are)."""
_encoder: Final = msgspec.json.Encoder()
_WANTED: Final = frozenset((b"origin", b"x-attimo-key", b"x-attimo-signature"))


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
        headers = {k: v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        key = query.get("key") or headers.get(b"x-attimo-key")
        sig = query.get("sig") or headers.get(b"x-attimo-signature")
        origin = headers.get(b"origin")
        state = self.app.state
        service: DecisionService = state.decisions
        # The site's pages may read the answer, errors included (a missing `sig` is for them to
        # see), once the key allows their origin; before that, nothing.
        readable_by: str | None = None
        try:
            await resolve_write_key(state.write_keys, key, origin)
            readable_by = origin
            product = query.get("product") or None
            if product is not None and len(product) > MAX_PRODUCT_ID:
                raise InvalidBodyError(f"query.product: at most {MAX_PRODUCT_ID} characters")
            body = await service.answer(visitor_id, product, sig)
        except AttimoError as exc:
            await _respond(send, status_for(exc), _encoder.encode(ErrorBody(str(exc))), readable_by)
            return
        except (RedisError, OSError):
            await _respond(send, 503, _encoder.encode(ErrorBody("store unavailable")), readable_by)
            return
        await _respond(send, 200, body, readable_by)


async def _respond(send: Send, status: int, body: bytes, readable_by: str | None) -> None:
    """Send the answer; `readable_by` is the origin whose pages may read it (CORS), if any."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    if readable_by is not None:
        headers += [(b"access-control-allow-origin", readable_by.encode("latin-1")), (b"vary", b"Origin")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
