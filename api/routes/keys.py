"""Admin: sites and their write keys, and admin tokens (scope `keys:manage`).

A site is created with a public key (pages), a secret key (the shop's back
end) and an identity secret (signs user ids); the three are shown once.
Keys are listed (secret keys by hint only), rotated — the old key keeps
working for a grace period, so pages and servers can move — revoked, and
their allowed origins and trust of browser identity changed. Admin tokens
are made with scopes, listed by hint, and revoked; a token can only make
tokens with scopes it holds itself, so `keys:manage` cannot mint `admin`.
"""

from __future__ import annotations

import secrets
import time
from typing import Final

import msgspec
from fastapi import APIRouter, Request, Response

from api.deps import KeysDep, RedisDep, SettingsDep
from api.errors import InvalidBodyError, NotFoundError, ScopeError
from api.models import ErrorBody
from api.openapi import Responses, request_body, response
from api.responses import ADMIN_ERRORS, convert, decode, json_response
from state.access_models import (
    KeyBody,
    KeyMade,
    KeyPublic,
    KeysPage,
    RotateKeyBody,
    SiteBody,
    SiteCreated,
    SitePublic,
    SitesPage,
    TokenBody,
    TokenMade,
    TokenPublic,
    TokensPage,
)
from state.admin_tokens import AdminToken, create_token, grants, list_tokens, revoke_token
from state.config import Identifier
from state.sites import Site, create_site, get_key, get_site, list_keys, list_sites, replace_key, revoke_key, rotate_key
from state.writekeys import WriteKey

router = APIRouter(prefix="/v1/admin", tags=["admin: keys and tokens"])

_ERRORS: Final[Responses] = {
    **ADMIN_ERRORS,
    403: response(ErrorBody, "The token lacks the scope `keys:manage` (or a scope it tries to grant)."),
    422: response(ErrorBody, "Invalid body or id; the message names the field."),
}
_NO_KEY: Final[Responses] = {404: response(ErrorBody, "No such key (or its grace period is over).")}


def key_public(record: WriteKey) -> KeyPublic:
    """A key as the API shows it (a secret key's record holds only its hint)."""
    return KeyPublic(record.id, record.site, record.kind, record.key, list(record.origins),
                     record.trust_browser_identity, record.created_at, record.expires_at)


def site_public(site: Site) -> SitePublic:
    """A site without its secret."""
    return SitePublic(site.id, site.name, site.trust_browser_identity, site.created_at, bool(site.identity_secret))


def token_public(record: AdminToken) -> TokenPublic:
    """A token's record without the token."""
    return TokenPublic(record.id, record.name, list(record.scopes), record.hint, record.created_at)


# ---- sites and write keys -------------------------------------------------------


@router.post("/sites/{site_id}", response_class=Response, status_code=201, openapi_extra=request_body(SiteBody),
             responses={201: response(SiteCreated, "Created: the keys and identity secret, shown this once."),
                        **_ERRORS})
async def create_site_route(site_id: str, request: Request, _keys: KeysDep, client: RedisDep) -> Response:
    """Create a site `{"origins": [...], "name"?, "trust_browser_identity"?}` with its public and secret keys."""
    sid = convert(site_id, Identifier, "site id")
    body = decode(await request.body(), SiteBody)
    if await get_site(client, sid) is not None:
        raise InvalidBodyError(f"site id: a site {sid!r} exists already (rotate its keys instead)")
    now = time.time()
    site = Site(sid, body.name, "idsec_" + secrets.token_urlsafe(32), body.trust_browser_identity, now)
    public, secret = await create_site(client, site, list(body.origins), now)
    created = SiteCreated(site_public(site), public.key, secret.key, site.identity_secret,
                          [key_public(public.record), key_public(secret.record)])
    return json_response(created, 201)


@router.get("/sites", response_class=Response, responses={200: response(SitesPage, "Every site."), **_ERRORS})
async def list_sites_route(_keys: KeysDep, client: RedisDep) -> Response:
    """Every site (never its identity secret)."""
    rows = [site_public(s) for s in await list_sites(client)]
    return json_response(SitesPage(rows, len(rows)))


@router.get("/keys", response_class=Response, responses={200: response(KeysPage, "Every write key."), **_ERRORS})
async def list_keys_route(_keys: KeysDep, client: RedisDep) -> Response:
    """Every write key: public keys in full, secret keys by hint; a rotated key with its `expires_at`."""
    rows = [key_public(k) for k in await list_keys(client)]
    return json_response(KeysPage(rows, len(rows)))


async def _found_key(client: RedisDep, key_id: str) -> tuple[str, WriteKey]:
    found = await get_key(client, key_id)
    if found is None:
        raise NotFoundError(f"no write key {key_id!r}")
    return found


@router.patch("/keys/{key_id}", response_class=Response, openapi_extra=request_body(KeyBody),
              responses={200: response(KeyPublic, "Changed."), **_ERRORS, **_NO_KEY})
async def change_key(key_id: str, request: Request, _keys: KeysDep, client: RedisDep) -> Response:
    """Change a key's allowed origins (public keys) or its trust of browser identity; absent fields stay."""
    body = decode(await request.body(), KeyBody)
    name, record = await _found_key(client, key_id)
    if body.origins is not None and record.kind == "secret":
        raise InvalidBodyError("origins: a secret key is never used from a browser, so it has no origins")
    changed = msgspec.structs.replace(
        record,
        origins=list(body.origins) if body.origins is not None else record.origins,
        trust_browser_identity=(body.trust_browser_identity if body.trust_browser_identity is not None
                                else record.trust_browser_identity))
    await replace_key(client, name, changed)
    return json_response(key_public(changed))


@router.post("/keys/{key_id}/rotate", response_class=Response, openapi_extra=request_body(RotateKeyBody),
             responses={200: response(KeyMade, "The new key, shown this once; the old one works until its "
                                               "`expires_at`."), **_ERRORS, **_NO_KEY})
async def rotate_key_route(key_id: str, request: Request, _keys: KeysDep, settings: SettingsDep,
                           client: RedisDep) -> Response:
    """Make a new key like this one; the old one keeps working `grace_s` (default: the setting) seconds."""
    raw = await request.body()
    body = decode(raw, RotateKeyBody) if raw.strip() else RotateKeyBody()
    grace = settings.key_rotation_grace_s if body.grace_s is None else body.grace_s
    made = await rotate_key(client, key_id, grace, time.time())
    if made is None:
        raise NotFoundError(f"no write key {key_id!r}")
    return json_response(KeyMade(made.key, key_public(made.record)))


@router.delete("/keys/{key_id}", status_code=204, response_class=Response,
               responses={204: {"description": "Revoked."}, **_ERRORS, **_NO_KEY})
async def revoke_key_route(key_id: str, _keys: KeysDep, client: RedisDep) -> Response:
    """Revoke a key now (every process stops taking it within `ATTIMO_WRITE_KEY_CACHE_TTL_S`)."""
    if not await revoke_key(client, key_id):
        raise NotFoundError(f"no write key {key_id!r}")
    return Response(status_code=204)


# ---- admin tokens ---------------------------------------------------------------


@router.post("/tokens", response_class=Response, status_code=201, openapi_extra=request_body(TokenBody),
             responses={201: response(TokenMade, "The token, shown this once."), **_ERRORS})
async def create_token_route(request: Request, _keys: KeysDep, client: RedisDep) -> Response:
    """Make an admin token `{"scopes": [...], "name"?}`; only scopes the caller holds may be granted."""
    body = decode(await request.body(), TokenBody)
    held: frozenset[str] = getattr(request.state, "admin_scopes", frozenset())
    beyond = sorted(s for s in body.scopes if not grants(tuple(held), s))
    if beyond:
        raise ScopeError(f"scopes: cannot grant {beyond}, which this token does not hold")
    token, record = await create_token(client, list(body.scopes), body.name, time.time())
    return json_response(TokenMade(token, token_public(record)), 201)


@router.get("/tokens", response_class=Response, responses={200: response(TokensPage, "Every token."), **_ERRORS})
async def list_tokens_route(_keys: KeysDep, client: RedisDep) -> Response:
    """Every admin token made through the API: id, name, scopes, hint (never the token)."""
    rows = [token_public(t) for t in await list_tokens(client)]
    return json_response(TokensPage(rows, len(rows)))


@router.delete("/tokens/{token_id}", status_code=204, response_class=Response,
               responses={204: {"description": "Revoked."}, **_ERRORS,
                          404: response(ErrorBody, "No such token.")})
async def revoke_token_route(token_id: str, _keys: KeysDep, client: RedisDep) -> Response:
    """Revoke a token: it, and every dashboard session it opened, stops working at once."""
    if not await revoke_token(client, token_id):
        raise NotFoundError(f"no admin token {token_id!r}")
    return Response(status_code=204)
