"""Segment's own browser library (`@segment/analytics-next`) pointed at Attimo, unchanged.

A shop that already runs analytics-next changes two options — `cdnURL` (where
the library fetches its settings) and the `Segment.io` integration's
`apiHost` — and its events come here instead of to Segment. What the library
does, read from its source (`dist/pkg/browser/index.js`,
`plugins/segmentio/*.js`, version 1.84):

- at load, `GET {cdnURL}/v1/projects/{writeKey}/settings` (a CORS request
  from the shop's page): the integrations to run. Attimo answers with the
  `Segment.io` integration alone, pointing at its own host (`apiHost`
  `host:port/v1`, `protocol`), and no plan, middleware or destinations to
  load, so the library fetches nothing else; its remote metrics are off
  (`sampleRate` 0);
- each event: `POST {protocol}://{apiHost}/{letter}` — `t` track, `p` page,
  `i` identify, `a` alias, `g` group, `s` screen — one event as JSON with
  `writeKey` in it and the key again as HTTP Basic (so the browser sends a
  CORS pre-flight); with the `batching` delivery strategy
  `POST {apiHost}/b` with `{"writeKey", "batch", "sentAt"}`;
- a `429` with `Retry-After` is retried after that delay, other `4xx`
  (but 408) are dropped, `5xx` retried with back-off.

These routes are the Segment HTTP API routes under their short names: the
same validation, limits, bot filter and answers (`api.routes.ingest`).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

import msgspec
from fastapi import APIRouter, Request, Response

from api.deps import SettingsDep, WriteKeysDep, resolve_write_key
from api.models import BatchBody, ErrorBody
from api.openapi import request_body, response
from api.rate_limits import limits_of
from api.routes import ingest
from state.events import EVENT_TYPES

router = APIRouter(prefix="/v1", tags=["segment"])

# analytics-next's path letter → the Segment message type it sends there.
SHORT_ROUTES: Final = {"t": "track", "p": "page", "i": "identify", "a": "alias", "g": "group", "s": "screen"}


class SegmentIo(msgspec.Struct, frozen=True, rename="camel"):
    """The `Segment.io` integration's settings: where analytics-next sends events."""

    api_key: str
    api_host: str
    protocol: str
    add_bundled_metadata: bool = False
    unbundled_integrations: list[str] = msgspec.field(default_factory=list)
    maybe_bundled_config_ids: dict[str, list[str]] = msgspec.field(default_factory=dict)


class RemoteMetrics(msgspec.Struct, frozen=True, rename="camel"):
    """analytics-next's own telemetry: 0 sends none."""

    sample_rate: float = 0.0


class ProjectSettings(msgspec.Struct, frozen=True, rename="camel"):
    """What `GET /v1/projects/{writeKey}/settings` answers: the one integration, nothing else to load."""

    integrations: dict[str, SegmentIo]
    plan: dict[str, dict[str, dict[str, bool]]]
    edge_function: dict[str, str] = msgspec.field(default_factory=dict)
    analytics_next_enabled: bool = True
    middleware_settings: dict[str, str] = msgspec.field(default_factory=dict)
    enabled_middleware: dict[str, bool] = msgspec.field(default_factory=dict)
    metrics: RemoteMetrics = msgspec.field(default_factory=RemoteMetrics)
    legacy_video_plugins_enabled: bool = False
    remote_plugins: list[str] = msgspec.field(default_factory=list)


def api_host(api_url: str) -> tuple[str, str]:
    """analytics-next's `apiHost` (`host[:port]/v1`, no scheme) and `protocol` for this API's public URL."""
    url = urlsplit(api_url)
    return f"{url.netloc}{url.path.rstrip('/')}/v1", url.scheme or "https"


def project_settings(write_key: str, api_url: str) -> ProjectSettings:
    """The settings analytics-next loads for `write_key`: send everything to Attimo."""
    host, protocol = api_host(api_url)
    enabled = {"__default": {"enabled": True}}
    return ProjectSettings(
        integrations={"Segment.io": SegmentIo(write_key, host, protocol)},
        plan={"track": enabled, "identify": enabled, "group": enabled},
    )


_encoder: Final = msgspec.json.Encoder()


@router.get("/projects/{write_key}/settings", response_class=Response,
            responses={200: response(ProjectSettings, "analytics-next's settings, pointing at this API."),
                       401: response(ErrorBody, "Unknown write key."),
                       403: response(ErrorBody, "Origin not allowed for this write key."),
                       429: response(ErrorBody, "Over the reads rate limit per client IP.")})
async def segment_settings(write_key: str, request: Request, settings: SettingsDep,
                           write_keys: WriteKeysDep) -> Response:
    """The settings analytics-next asks its CDN for (`cdnURL`): the `Segment.io` integration, aimed here.

    Readable by the pages of the origins the write key allows (CORS), as the
    decisions are; counted against the reads limit per client IP.
    """
    limits = limits_of(request.app.state)
    peer = request.client.host if request.client else None
    limits.reads.check(limits.proxies.client_ip(peer, request.headers.get("x-forwarded-for")))
    origin = request.headers.get("origin")
    await resolve_write_key(write_keys, write_key, origin)
    headers = {"Cache-Control": "public, max-age=60"}
    if origin is not None:
        headers |= {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return Response(_encoder.encode(project_settings(write_key, settings.api_url)),
                    media_type="application/json", headers=headers)


router.add_api_route("/b", ingest.batch, methods=["POST"], response_class=Response, name="segment_batch",
                     openapi_extra=request_body(BatchBody), responses=ingest.INGEST_RESPONSES,
                     summary="Append a batch (analytics-next's `batching` strategy; as `/v1/batch`)")
for _letter, _kind in SHORT_ROUTES.items():
    router.add_api_route(f"/{_letter}", ingest.single_event_route(_kind), methods=["POST"], response_class=Response,
                         name=f"segment_{_kind}", openapi_extra=request_body(EVENT_TYPES[_kind]),
                         responses=ingest.INGEST_RESPONSES,
                         summary=f"Append one `{_kind}` event (analytics-next's `/{_letter}`; as `/v1/{_kind}`)")
