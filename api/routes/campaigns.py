"""Admin: popup campaigns (create, change, enable, disable, delete) and their stats per variant.

Campaigns are part of the live configuration: every change publishes a new
configuration version, which the dataflow switches to within a second and
re-evaluates every contact under — a new campaign reaches the contacts it
targets without waiting for their next event. Changing a campaign counts
its own `version`; the contacts' arms and what they saw are kept (an arm
whose variant was removed is drawn again).
"""

from __future__ import annotations

from typing import Any, Final, cast

import msgspec
from fastapi import APIRouter, Request, Response

from api.campaign_models import CampaignBody, CampaignDeleted, CampaignPublished, CampaignsPage, campaign_of
from api.campaign_stats import CampaignStats, arm_stats, sum_fields
from api.deps import AdminDep, RedisDep, SettingsDep
from api.errors import InvalidBodyError, NotFoundError
from api.models import ErrorBody
from api.openapi import Responses, request_body, response
from api.responses import ADMIN_ERRORS, WRITE_ERRORS, convert, decode, json_response
from api.routes.admin_config import change_config
from state import keys
from state.campaigns import Campaign
from state.config import ActiveConfig, Identifier
from state.config_store import current_config

router = APIRouter(prefix="/v1/admin", tags=["admin: campaigns"])

_NO_CAMPAIGN: Final[Responses] = {404: response(ErrorBody, "No such campaign.")}


def _find(config: ActiveConfig, campaign_id: str) -> Campaign:
    for campaign in config.campaigns:
        if campaign.id == campaign_id:
            return campaign
    raise NotFoundError(f"no campaign {campaign_id!r}")


async def _publish(request: Request, settings: SettingsDep, client: RedisDep, make: Any) -> Response:
    """Publish the campaign `make(config)` returns in place of its previous version (201 when new)."""
    created = False

    def change(config: ActiveConfig) -> tuple[ActiveConfig, Any]:
        nonlocal created
        campaign: Campaign = make(config)
        created = all(c.id != campaign.id for c in config.campaigns)
        campaigns = [*config.campaigns, campaign] if created else [
            campaign if c.id == campaign.id else c for c in config.campaigns]
        return msgspec.structs.replace(config, campaigns=campaigns), CampaignPublished(0, campaign, created)

    answer = await change_config(request, settings, client, change)
    if created and answer.status_code == 200:
        answer.status_code = 201
    return answer


@router.get("/campaigns", response_class=Response,
            responses={200: response(CampaignsPage, "Every campaign."), **ADMIN_ERRORS})
async def list_campaigns(_admin: AdminDep, client: RedisDep) -> Response:
    """Every campaign in force (the configuration version is in the ETag)."""
    config = await current_config(client)
    return json_response(CampaignsPage(config.campaigns, len(config.campaigns)),
                         headers={"ETag": f'"{config.version}"'})


@router.get("/campaigns/{campaign_id}", response_class=Response,
            responses={200: response(Campaign, "The campaign."), **ADMIN_ERRORS, **_NO_CAMPAIGN})
async def get_campaign(campaign_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """One campaign."""
    return json_response(_find(await current_config(client), campaign_id))


@router.put("/campaigns/{campaign_id}", response_class=Response, openapi_extra=request_body(CampaignBody),
            responses={200: response(CampaignPublished, "Changed (a new version)."),
                       201: response(CampaignPublished, "Created."), **WRITE_ERRORS})
async def put_campaign(campaign_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                       client: RedisDep) -> Response:
    """Create or change a campaign: variants, layout, page triggers, targeting, frequency; 201 when created."""
    raw = await request.body()

    def make(config: ActiveConfig) -> Campaign:
        cid = convert(campaign_id, Identifier, "campaign id")
        body = decode(raw, CampaignBody)
        if body.id is not None and body.id != cid:
            raise InvalidBodyError(f"body id {body.id!r} differs from the path's {cid!r}")
        previous = next((c for c in config.campaigns if c.id == cid), None)
        return campaign_of(cid, body, previous.version + 1 if previous else 1)

    return await _publish(request, settings, client, make)


def _switch(enabled: bool) -> Any:
    async def switch(campaign_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                     client: RedisDep) -> Response:
        return await _publish(request, settings, client,
                              lambda config: msgspec.structs.replace(_find(config, campaign_id), enabled=enabled))

    switch.__doc__ = ("Enable the campaign: targeted contacts are offered it again." if enabled else
                      "Disable the campaign: nobody is offered it; what contacts saw is kept.")
    return switch


for _action, _enabled in (("enable", True), ("disable", False)):
    router.add_api_route(f"/campaigns/{{campaign_id}}/{_action}", _switch(_enabled), methods=["POST"],
                         response_class=Response, name=f"{_action}-campaign",
                         responses={200: response(CampaignPublished, "Published."), **WRITE_ERRORS,
                                    **_NO_CAMPAIGN})


@router.delete("/campaigns/{campaign_id}", response_class=Response,
               responses={200: response(CampaignDeleted, "Deleted."), **WRITE_ERRORS, **_NO_CAMPAIGN})
async def delete_campaign(campaign_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                          client: RedisDep) -> Response:
    """Delete a campaign; its stats stay readable."""

    def change(config: ActiveConfig) -> tuple[ActiveConfig, Any]:
        _find(config, campaign_id)
        remaining = [c for c in config.campaigns if c.id != campaign_id]
        return msgspec.structs.replace(config, campaigns=remaining), CampaignDeleted(0, campaign_id)

    return await change_config(request, settings, client, change)


@router.get("/campaigns/{campaign_id}/stats", response_class=Response,
            responses={200: response(CampaignStats, "Exact counters per arm, rates, chance to beat the holdout."),
                       **ADMIN_ERRORS, **_NO_CAMPAIGN})
async def campaign_stats(campaign_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """Per variant and the holdout: impressions, clicks, closes, contacts, conversions, rates, P(beats holdout)."""
    config = await current_config(client)
    campaign = next((c for c in config.campaigns if c.id == campaign_id), None)
    raw = cast("dict[bytes, bytes]", await client.hgetall(keys.campaign_stats(campaign_id)))
    if campaign is None and not raw:
        raise NotFoundError(f"no campaign {campaign_id!r}")
    variants = [v.id for v in campaign.variants] if campaign is not None else []
    has_holdout = campaign is not None and campaign.holdout_percent > 0
    return json_response(arm_stats(campaign_id, sum_fields(raw), variants, has_holdout))
