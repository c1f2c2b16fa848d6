"""Admin: webhook endpoints, their secrets, dead letters, and delivery counters.

Endpoints are where workflow actions of kind `webhook` go (a workflow step
names its endpoint by id). A secret is generated when none is given and
shown once; listings never show secrets. Rotating a secret keeps the old
one signing for `ATTIMO_WEBHOOK_SECRET_GRACE_S`, so receivers can switch
without missing a webhook. A URL that reaches a private, loopback or
link-local address is refused here (422) and again at every send.

Dead letters are actions whose delivery was given up: listed newest first,
replayed into the outbox with a fresh schedule (202), or deleted.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Final

import msgspec
from fastapi import APIRouter, Query, Request, Response

from api.deps import AdminDep, RedisDep, SettingsDep
from api.dispatcher.addresses import AddressPolicy, check_configured_url
from api.dispatcher.dead_letters import DEAD_LETTERS, list_dead_letters, replay_dead_letter
from api.dispatcher.endpoints import EndpointStore, rotated
from api.dispatcher.ledger import read_stats
from api.dispatcher.records import DeadLetter, EndpointHealth, EndpointSecret, WebhookEndpoint
from api.dispatcher.signing import new_secret, secret_key
from api.errors import NotFoundError
from api.models import (
    DeadLettersPage,
    DeliveryCounts,
    DeliveryStats,
    EndpointPublic,
    EndpointSaved,
    EndpointsPage,
    ErrorBody,
    Replayed,
    SecretRotated,
)
from api.openapi import Responses, request_body, response
from api.responses import ADMIN_ERRORS, convert, decode, json_response
from state import keys
from state.config import Identifier
from state.settings import Settings

router = APIRouter(prefix="/v1/admin/webhooks", tags=["admin: webhooks"])

MAX_PAGE: Final = 500
_NO_ENDPOINT: Final[Responses] = {404: response(ErrorBody, "No such endpoint.")}
_NO_LETTER: Final[Responses] = {404: response(ErrorBody, "No such dead letter.")}
_INVALID: Final[Responses] = {422: response(ErrorBody, "Invalid body or id; the message names the field.")}


class EndpointBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An endpoint as PUT: its URL, optionally its secret (`whsec_…`; generated when absent), a description.

    Replacing an endpoint without `secret` keeps its secrets; with one,
    that secret alone signs from now on (rotate instead to keep the old one
    signing for a while).
    """

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    secret: str | None = None
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class RotateBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The new secret (`whsec_…`), or nothing to have one generated."""

    secret: str | None = None


def public(endpoint: WebhookEndpoint, health: EndpointHealth, now: float) -> EndpointPublic:
    """What operators see of an endpoint."""
    signing = [s for s in endpoint.secrets if s.expires_at is None or s.expires_at > now]
    ends = [s.expires_at for s in signing if s.expires_at is not None]
    return EndpointPublic(id=endpoint.id, url=endpoint.url, description=endpoint.description,
                          created_at=endpoint.created_at, updated_at=endpoint.updated_at, secrets=len(signing),
                          rotation_ends_at=max(ends) if ends else None, disabled=health.disabled,
                          disabled_at=health.disabled_at, disabled_reason=health.disabled_reason,
                          failing_since=health.failing_since)


def _policy(settings: Settings) -> AddressPolicy:
    return AddressPolicy.from_setting(settings.webhook_allowed_networks)


async def _found(store: EndpointStore, endpoint_id: str) -> tuple[WebhookEndpoint, EndpointHealth]:
    found = await store.get(endpoint_id)
    if found is None:
        raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")
    return found


# ---- endpoints -----------------------------------------------------------------


@router.put("/endpoints/{endpoint_id}", response_class=Response, openapi_extra=request_body(EndpointBody),
            responses={200: response(EndpointSaved, "Replaced."), 201: response(EndpointSaved, "Created."),
                       **ADMIN_ERRORS, **_INVALID})
async def put_endpoint(endpoint_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                       client: RedisDep) -> Response:
    """Create or replace an endpoint: `{"url", "secret"?, "description"?}`; 201 with the generated secret when new."""
    eid = convert(endpoint_id, Identifier, "endpoint id")
    body = decode(await request.body(), EndpointBody)
    if body.secret is not None:
        secret_key(body.secret)
    await check_configured_url(_policy(settings), body.url)
    now = time.time()
    generated: str | None = None
    created = False

    def change(old: WebhookEndpoint | None) -> WebhookEndpoint:
        nonlocal generated, created
        created = old is None
        generated = None
        if body.secret is not None:
            secrets = [EndpointSecret(secret=body.secret, created_at=now)]
        elif old is not None:
            secrets = old.secrets
        else:
            generated = new_secret()
            secrets = [EndpointSecret(secret=generated, created_at=now)]
        return WebhookEndpoint(id=eid, url=body.url, description=body.description, secrets=secrets,
                               created_at=old.created_at if old is not None else now, updated_at=now)

    store = EndpointStore(client)
    endpoint = await store.update(eid, change)
    _, health = await _found(store, eid)
    saved = EndpointSaved(endpoint=public(endpoint, health, now), created=created, secret=generated)
    return json_response(saved, 201 if created else 200)


@router.get("/endpoints", response_class=Response,
            responses={200: response(EndpointsPage, "Every endpoint."), **ADMIN_ERRORS})
async def list_endpoints(_admin: AdminDep, client: RedisDep) -> Response:
    """Every endpoint, by id: `{"data": [endpoint], "count": n}`."""
    now = time.time()
    rows = [public(e, h, now) for e, h in await EndpointStore(client).all()]
    return json_response(EndpointsPage(rows, len(rows)))


@router.get("/endpoints/{endpoint_id}", response_class=Response,
            responses={200: response(EndpointPublic, "The endpoint."), **ADMIN_ERRORS, **_NO_ENDPOINT})
async def get_endpoint(endpoint_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """One endpoint: URL, description, how many secrets sign now, whether it is disabled and why."""
    endpoint, health = await _found(EndpointStore(client), endpoint_id)
    return json_response(public(endpoint, health, time.time()))


@router.delete("/endpoints/{endpoint_id}", status_code=204, response_class=Response,
               responses={204: {"description": "Deleted."}, **ADMIN_ERRORS, **_NO_ENDPOINT})
async def delete_endpoint(endpoint_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """Delete an endpoint; actions still addressed to it are dead-lettered when their turn comes."""
    if not await EndpointStore(client).delete(endpoint_id):
        raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")
    return Response(status_code=204)


_ROTATE_BODY: Final[dict[str, Any]] = {"requestBody": {**request_body(RotateBody)["requestBody"], "required": False}}


@router.post("/endpoints/{endpoint_id}/rotate-secret", response_class=Response, openapi_extra=_ROTATE_BODY,
             responses={200: response(SecretRotated, "Rotated."), **ADMIN_ERRORS, **_NO_ENDPOINT, **_INVALID})
async def rotate_secret(endpoint_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                        client: RedisDep) -> Response:
    """Sign with a new secret (given, or generated and shown once); the old ones sign too for the grace period."""
    raw = await request.body()
    body = decode(raw, RotateBody) if raw.strip() else RotateBody()
    secret = body.secret if body.secret is not None else new_secret()
    secret_key(secret)
    now = time.time()

    def change(old: WebhookEndpoint | None) -> WebhookEndpoint:
        if old is None:
            raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")
        return rotated(old, secret, now, settings.webhook_secret_grace_s)

    store = EndpointStore(client)
    endpoint = await store.update(endpoint_id, change)
    _, health = await _found(store, endpoint_id)
    return json_response(SecretRotated(endpoint=public(endpoint, health, now), secret=secret))


@router.post("/endpoints/{endpoint_id}/enable", response_class=Response,
             responses={200: response(EndpointPublic, "Enabled."), **ADMIN_ERRORS, **_NO_ENDPOINT})
async def enable_endpoint(endpoint_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """Send to a disabled endpoint again (its failure clock starts over); replay its dead letters to resend them."""
    store = EndpointStore(client)
    await _found(store, endpoint_id)
    await store.enable(endpoint_id)
    endpoint, health = await _found(store, endpoint_id)
    return json_response(public(endpoint, health, time.time()))


# ---- dead letters --------------------------------------------------------------


@router.get("/dead-letters", response_class=Response,
            responses={200: response(DeadLettersPage, "A page of dead letters."), **ADMIN_ERRORS})
async def list_letters(
    _admin: AdminDep, settings: SettingsDep, client: RedisDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[float | None, Query(allow_inf_nan=False,
                                          description="Only actions given up before this epoch time.")] = None,
) -> Response:
    """Dead letters, newest first: `{"data": [letter], "count": total, "next_before": t | null}`."""
    letters, total = await list_dead_letters(client, limit, before, time.time(), settings.dead_letter_retention_s)
    next_before = letters[-1].dead_at if len(letters) == limit else None
    return json_response(DeadLettersPage(letters, total, next_before))


@router.get("/dead-letters/{action_id:path}", response_class=Response,
            responses={200: response(DeadLetter, "The dead letter."), **ADMIN_ERRORS, **_NO_LETTER})
async def get_letter(action_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """One dead letter: the action, why it was given up, after how many attempts."""
    letter = await DEAD_LETTERS.get(client, action_id)
    if letter is None:
        raise NotFoundError(f"no dead letter {action_id!r}")
    return json_response(letter)


@router.post("/dead-letters/{action_id:path}/replay", response_class=Response, status_code=202,
             responses={202: response(Replayed, "Back in the outbox."), **ADMIN_ERRORS, **_NO_LETTER})
async def replay_letter(action_id: str, _admin: AdminDep, settings: SettingsDep, client: RedisDep) -> Response:
    """Put the action back in the outbox with a fresh schedule (same id) and drop the letter: 202 `{"replayed": 1}`."""
    if not await replay_dead_letter(client, action_id, settings.outbox_shards):
        raise NotFoundError(f"no dead letter {action_id!r}")
    return json_response(Replayed(1), 202)


@router.delete("/dead-letters/{action_id:path}", status_code=204, response_class=Response,
               responses={204: {"description": "Forgotten."}, **ADMIN_ERRORS, **_NO_LETTER})
async def delete_letter(action_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """Forget a dead letter (its action is not delivered)."""
    if not await DEAD_LETTERS.delete(client, action_id):
        raise NotFoundError(f"no dead letter {action_id!r}")
    return Response(status_code=204)


# ---- counters ------------------------------------------------------------------


@router.get("/stats", response_class=Response,
            responses={200: response(DeliveryStats, "Counters per target."), **ADMIN_ERRORS})
async def delivery_stats(_admin: AdminDep, client: RedisDep) -> Response:
    """Delivered / retrying / dead per endpoint (and for e-mail), since the start; and dead letters kept."""
    counts = await read_stats(client)
    for endpoint, _ in await EndpointStore(client).all():
        counts.setdefault(f"webhook:{endpoint.id}", {})
    rows = []
    for target in sorted(counts):
        c = counts[target]
        kind, _, endpoint_id = target.partition(":")
        if kind not in ("webhook", "email"):
            continue
        rows.append(DeliveryCounts(target=target, endpoint=endpoint_id or None, delivered=c.get("delivered", 0),
                                   retrying=c.get("retrying", 0), dead=c.get("dead", 0),
                                   attempts=c.get("attempts", 0), failed_attempts=c.get("failed_attempts", 0)))
    letters = int(await client.zcard(keys.dead_letters()))
    return json_response(DeliveryStats(rows, letters))
