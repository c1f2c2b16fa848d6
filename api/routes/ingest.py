"""Segment-compatible HTTP ingest: `POST /v1/batch`, `/v1/track`, `/v1/page` …

Server-side senders (the shop's back end, an e-mail service, any Segment or
RudderStack library) and `navigator.sendBeacon` use this path. The body is
read raw — any Content-Type, optionally gzip — with a hard cap before and
after decompression, then validated with the same code as the gateway.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from fastapi import APIRouter, Request, Response

from api.bots import without_bots
from api.deps import AppenderDep, BackpressureDep, SettingsDep, WriteKeysDep, resolve_write_key
from api.errors import UnsupportedEncodingError
from api.identity_mark import mark_batch, sender_of
from api.metrics import INGEST_ACCEPTED, INGEST_EVENTS, INGEST_REJECTED
from api.models import BatchBody, ErrorBody, IngestOk, IngestPartial
from api.openapi import Responses, request_body, response
from api.rate_limits import limits_of
from api.responses import json_response
from state.errors import BatchTooLargeError, InvalidBatchError, InvalidEventError, StoreError
from state.events import EVENT_TYPES
from state.frames import RejectedEvent
from state.json_bounds import BoundsError, check_raw_event
from state.rates import HTTP
from state.validation import DecodedBatch, EventValidator

router = APIRouter(prefix="/v1", tags=["ingest"])

INGEST_BOTS: Final = INGEST_EVENTS.labels("bot")
SINGLE_EVENT_TYPES: Final = ("track", "page", "identify", "alias", "screen", "group")
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS
INGEST_RESPONSES: Final[Responses] = {
    200: response(IngestOk, "Every event was stored."),
    400: response(IngestPartial, "Some events (listed) or the whole body were refused.", ErrorBody),
    401: response(ErrorBody, "Write key missing or unknown."),
    403: response(ErrorBody, "Origin not allowed for this write key."),
    413: response(ErrorBody, "Body over the size limit."),
    415: response(ErrorBody, "Unsupported Content-Encoding."),
    429: response(ErrorBody, "Overloaded or over a rate limit (named): retry after `Retry-After` seconds."),
    503: response(ErrorBody, "Store unavailable: retry."),
}


def _too_large(limit: int) -> BatchTooLargeError:
    return BatchTooLargeError(f"body is over the {limit}-byte limit")


def inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """Decompress at most `limit` bytes; a bigger output (a zip bomb) is refused, never held."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InvalidBatchError(f"body is not valid compressed data: {exc}") from exc
    if len(out) > limit:
        raise _too_large(limit)
    if not inflater.eof:
        raise InvalidBatchError("compressed body is truncated")
    return out


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decoded per Content-Encoding, never more than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        return inflate(raw, _GZIP_WBITS, limit)
    if encoding == "deflate":
        return inflate(raw, zlib.MAX_WBITS, limit)
    raise UnsupportedEncodingError(f"Content-Encoding {encoding!r} is not supported (use gzip)")


def basic_username(authorization: str | None) -> str | None:
    """The username of an HTTP Basic header (Segment puts the write key there)."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def client_ip(request: Request) -> str:
    """The client a request counts as for rate limits: its peer, or who a trusted proxy says it is."""
    peer = request.client.host if request.client else None
    return limits_of(request.app.state).proxies.client_ip(peer, request.headers.get("x-forwarded-for"))


def _validator(request: Request) -> EventValidator:
    validator: EventValidator = request.app.state.validator
    return validator


async def _store(
    request: Request, key: str | None, decoded: DecodedBatch,
    settings: SettingsDep, appender: AppenderDep, write_keys: WriteKeysDep, backpressure: BackpressureDep,
) -> Response:
    """Authenticate, push back if overloaded, append the good events, report the bad ones."""
    origin = request.headers.get("origin")
    await resolve_write_key(write_keys, key, origin)
    # Trust marks: the secret key's events are the server's, a browser's user ids need their signature
    # (`api.identity_mark`). The key was just looked up: this second look-up is a cache hit.
    sender = sender_of(await resolve_write_key(write_keys, key, request.headers.get("origin")),
                       settings.trust_browser_identity)
    mark_batch(decoded, sender, request.app.state.decisions.verifier)
    if decoded.accepted:  # nothing to store, nothing to push back on: the rejections are the answer
        # Per request, not per event (api.rate_limits).
        limits_of(request.app.state).check_ingest(key or "", client_ip(request), len(decoded.accepted))
        events = decoded.accepted
        if not settings.accept_bots:  # acked and dropped (api.bots), judged by each event's context.userAgent
            events, bots = without_bots(events, None)
            INGEST_BOTS.inc(bots)
        if events:
            await backpressure.check()
            try:
                await appender.append(events, HTTP)
            except Exception as exc:  # any failure: 503, and the sender retries (de-duplication decides)
                raise StoreError(f"append failed: {exc!r}") from exc
            INGEST_ACCEPTED.inc(len(events))
    if decoded.rejected:
        INGEST_REJECTED.inc(len(decoded.rejected))
    if not decoded.rejected:
        return json_response(IngestOk())
    return json_response(IngestPartial(len(decoded.accepted),
                                       [RejectedEvent(r.index, r.error) for r in decoded.rejected]), 400)


@router.post("/batch", openapi_extra=request_body(BatchBody), response_class=Response, responses=INGEST_RESPONSES)
async def batch(
    request: Request, settings: SettingsDep, appender: AppenderDep,
    write_keys: WriteKeysDep, backpressure: BackpressureDep,
) -> Response:
    """Append a batch of Segment events: `{"batch": [...], "sentAt"?, "writeKey"?}`."""
    basic_key = basic_username(request.headers.get("authorization"))
    if basic_key is not None:
        # Refuse a bad key before spending CPU on its body.
        await resolve_write_key(write_keys, basic_key, request.headers.get("origin"))
    limits_of(request.app.state).check_room(basic_key, client_ip(request))  # nor on a client over its limit
    body = await read_body(request, settings.max_batch_bytes)
    envelope, decoded = _validator(request).decode_http_batch(body, datetime.now(UTC))
    key = basic_key or envelope.write_key
    return await _store(request, key, decoded, settings, appender, write_keys, backpressure)


def single_event_body(body: bytes, kind: str) -> tuple[bytes, str | None]:
    """One event's raw JSON with its `type` defaulted to `kind`, and the `writeKey` it carried.

    Depth is refused before decoding (a body nested deeper than the decoder's
    recursion limit must be a 400, not a 500); the event itself is then
    validated like any other.
    """
    try:
        check_raw_event(body)
        event: Any = msgspec.json.decode(body)
    except BoundsError as exc:
        raise InvalidEventError(0, str(exc)) from exc
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidBatchError(f"body: not valid JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise InvalidBatchError("body: expected a JSON object (one event)")
    body_key = event.pop("writeKey", None)
    if event.setdefault("type", kind) != kind:
        raise InvalidEventError(0, f"`type` {event['type']!r} sent to /v1/{kind}: use /v1/{event['type']} "
                                   "or /v1/batch")
    return msgspec.json.encode(event), body_key if isinstance(body_key, str) else None


def single_event_route(kind: str) -> Callable[..., Awaitable[Response]]:
    async def single_event(
        request: Request, settings: SettingsDep, appender: AppenderDep,
        write_keys: WriteKeysDep, backpressure: BackpressureDep,
    ) -> Response:
        limits_of(request.app.state).check_room(basic_username(request.headers.get("authorization")),
                                                client_ip(request))
        body = await read_body(request, settings.max_batch_bytes)
        raw, body_key = single_event_body(body, kind)
        key = basic_username(request.headers.get("authorization")) or body_key
        decoded = _validator(request).validate_all([raw], datetime.now(UTC))
        return await _store(request, key, decoded, settings, appender, write_keys, backpressure)

    single_event.__name__ = f"{kind}_event"
    single_event.__doc__ = f"Append one `{kind}` event (its `type` may be left out)."
    return single_event


for _kind in SINGLE_EVENT_TYPES:
    router.add_api_route(f"/{_kind}", single_event_route(_kind), methods=["POST"], response_class=Response,
                         openapi_extra=request_body(EVENT_TYPES[_kind]), responses=INGEST_RESPONSES)

