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
from api.rate_limits import limits_of
from state.errors import AttimoError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX: Final = "/v1/decisions/"
MAX_PRODUCT_ID: Final = 200
"""Longest `product` accepted (an id is at most 200 characters, as events' ids are)."""
_encoder: Final = msgspec.json.Encoder()


class DecisionsFastPath:
    """Answers decisions requests itself; passes everything else to the app."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The server has percent-decoded the path already: an id may contain "/" (sent as %2F).
        if (scope["type"] != "http" or scope["method"] != "GET" or len(path := scope["path"]) <= len(PREFIX)
                or not path.startswith(PREFIX)):
            await self.app(scope, receive, send)
            return
        query = parse_query(scope.get("query_string", b""))
        origin: str | None = None
        header_key: str | None = None
        header_sig: str | None = None
        forwarded: str | None = None
        for name, value in scope["headers"]:  # the last of a repeated header counts
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"x-attimo-key":
                header_key = value.decode("latin-1")
            elif name == b"x-attimo-signature":
                header_sig = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded = value.decode("latin-1")
        # Reads per client IP (api.rate_limits), before any look-up: a flood costs no Redis round trip.
        limits = limits_of(self.app.state)
        if limits.reads.rate.enabled:
            client = scope.get("client")
            wait = limits.reads.wait_s(limits.proxies.client_ip(client[0] if client else None, forwarded))
            if wait:
                refusal = limits.reads.refusal(wait)
                await _respond(send, 429, _encoder.encode(ErrorBody(str(refusal))), None,
                               (b"retry-after", b"%d" % refusal.retry_after_s))
                return
        key = query.get("key") or header_key
        sig = query.get("sig") or header_sig
        state = self.app.state
        service: DecisionService = state.decisions
        # The site's pages may read the answer, errors included (a missing `sig` is for them to
        # see), once the key allows their origin; before that, nothing.
        readable_by: str | None = None
        try:
            write_key = await resolve_write_key(state.write_keys, key, origin)
            readable_by = origin
            product = query.get("product") or None
            if product is not None and len(product) > MAX_PRODUCT_ID:
                raise InvalidBodyError(f"query.product: at most {MAX_PRODUCT_ID} characters")
            body = await service.answer(path[len(PREFIX):], product, sig, write_key.identity_secrets)
        except AttimoError as exc:
            await _respond(send, status_for(exc), _encoder.encode(ErrorBody(str(exc))), readable_by)
            return
        except (RedisError, OSError):
            await _respond(send, 503, _encoder.encode(ErrorBody("store unavailable")), readable_by)
            return
        await _respond(send, 200, body, readable_by)


def parse_query(query_string: bytes) -> dict[str, str]:
    """The query's parameters, as `dict(parse_qsl(...))` gives them (the last of a repeated name wins).

    Most queries (`key=…&sig=…`) have nothing to decode: those are split here
    in a fraction of `parse_qsl`'s time, with its rules (fields split on "&",
    a field without "=" or with an empty value left out).
    """
    text = query_string.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text))
    found: dict[str, str] = {}
    for field in text.split("&"):
        name, equals, value = field.partition("=")
        if equals and value:
            found[name] = value
    return found


_CONTENT_TYPE: Final = (b"content-type", b"application/json")
_NO_STORE: Final = (b"cache-control", b"no-store")
_VARY: Final = (b"vary", b"Origin")


async def _respond(send: Send, status: int, body: bytes, readable_by: str | None,
                   *extra: tuple[bytes, bytes]) -> None:
    """Send the answer; `readable_by` is the origin whose pages may read it (CORS), if any."""
    headers = [_CONTENT_TYPE, (b"content-length", b"%d" % len(body)), _NO_STORE, *extra]
    if readable_by is not None:
        headers += [(b"access-control-allow-origin", readable_by.encode("latin-1")), _VARY]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
