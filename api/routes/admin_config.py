"""Admin: the live configuration (scoring, thresholds, stages, tag rules, segments).

Every change reads the configuration in force, replaces one part, validates
the whole, and publishes it as a new immutable version
(`state.config_store.publish_config`): the dataflow switches to it at a
well-defined position of every ingest stream, within a second, without a
restart.

Bodies are decoded with msgspec from the raw bytes, so a bad body gets 422
with msgspec's exact message (`Expected `float`, got `str` - at
`$[0].points``). Rules that span parts are checked too: unknown score
groups, warm above hot, a stage rule that tests the stage, and segments
that refer to unknown segments or to themselves through a cycle.

GETs return the part exactly as a PUT accepts it, with the version in an
`ETag`; a PUT or DELETE with `If-Match: <version>` is refused with 412 when
someone published in between (optimistic concurrency across API processes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

import msgspec
from fastapi import APIRouter, Request, Response

from api.deps import AdminDep, RedisDep, SettingsDep
from api.errors import InvalidBodyError, NotFoundError, PreconditionFailedError
from api.models import ErrorBody, Published, SegmentDeleted, SegmentPublished, SegmentsPage
from api.openapi import Responses, request_body, response
from api.responses import ADMIN_ERRORS, WRITE_ERRORS, convert, decode, json_response
from state.config import (
    AbsenceRule,
    ActiveConfig,
    Condition,
    Identifier,
    ScoreGroup,
    ScoringRule,
    SegmentDef,
    StageRule,
    TagRule,
    Thresholds,
    decode_config,
    encode_config,
)
from state.config_rules import config_problem
from state.config_store import current_config, publish_config
from state.segment_graph import references
from state.workflows import MessagingPolicy

router = APIRouter(prefix="/v1/admin", tags=["admin: configuration"])

_NO_SEGMENT: Final[Responses] = {404: response(ErrorBody, "No such segment.")}

Change = Callable[[ActiveConfig], tuple[ActiveConfig, Any]]
"""A change to the configuration in force: the new configuration and the response body."""


# ---- publishing ----------------------------------------------------------------

def _lock(request: Request) -> asyncio.Lock:
    # One read-modify-publish at a time per process; If-Match covers other processes.
    lock: asyncio.Lock | None = getattr(request.app.state, "admin_config_lock", None)
    if lock is None:
        lock = request.app.state.admin_config_lock = asyncio.Lock()
    return lock


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def _check_not_stale(request: Request, current: ActiveConfig) -> None:
    wanted = request.headers.get("if-match")
    if wanted is None or wanted.strip() == "*" or wanted.strip().strip('"') == str(current.version):
        return
    raise PreconditionFailedError(f"configuration is at version {current.version}, not {wanted.strip()}")


def check_publishable(updated: ActiveConfig) -> None:
    """Refuse (InvalidBodyError → 422) a configuration that would not read back or breaks a cross-part rule.

    The one check every publish runs; a segment count preview runs it on the
    configuration its segment would make, so it refuses exactly what saving would.
    """
    try:  # what is published must read back: every field as its schema says
        decode_config(encode_config(updated))
    except msgspec.ValidationError as exc:
        raise InvalidBodyError(str(exc)) from exc
    if (problem := config_problem(updated)) is not None:
        raise InvalidBodyError(problem)


async def change_config(request: Request, settings: SettingsDep, client: RedisDep, change: Change,
                        status: int = 200) -> Response:
    """Apply `change` to the current configuration, validate it (`state.config_rules`) and publish it.

    `change` raises InvalidBodyError (→ 422) or NotFoundError (→ 404);
    `If-Match` naming another version is a PreconditionFailedError (→ 412).
    """
    async with _lock(request):
        current = await current_config(client)
        _check_not_stale(request, current)
        updated, body = change(current)
        check_publishable(updated)
        published = await publish_config(client, updated, settings.stream_shards)
    return json_response(msgspec.structs.replace(body, version=published.version), status,
                         _etag(published.version))


def _part_routes(path: str, field: str, kind: Any, what: str) -> None:
    """GET and PUT for one part of the configuration."""
    published = msgspec.defstruct(f"{''.join(w.title() for w in field.split('_'))}Published",
                                  [("version", int), (field, kind)], bases=(Published,), frozen=True)

    async def get_part(_admin: AdminDep, client: RedisDep) -> Response:
        config = await current_config(client)
        return json_response(getattr(config, field), headers=_etag(config.version))

    async def put_part(request: Request, _admin: AdminDep, settings: SettingsDep,
                       client: RedisDep) -> Response:
        raw = await request.body()

        def change(config: ActiveConfig) -> tuple[ActiveConfig, Any]:
            value = decode(raw, kind)
            return msgspec.structs.replace(config, **{field: value}), published(version=0, **{field: value})

        return await change_config(request, settings, client, change)

    get_part.__doc__ = f"The {what} in force (the version is in the ETag)."
    put_part.__doc__ = f"Replace the {what}; publishes a new configuration version."
    name = field.replace("_", "-")
    router.add_api_route(path, get_part, methods=["GET"], response_class=Response, name=f"get-{name}",
                         summary=f"Get the {what}",
                         responses={200: response(kind, f"The {what}."), **ADMIN_ERRORS})
    router.add_api_route(path, put_part, methods=["PUT"], response_class=Response, name=f"put-{name}",
                         summary=f"Replace the {what}", openapi_extra=request_body(kind),
                         responses={200: response(published, "Published as a new version."), **WRITE_ERRORS})


_part_routes("/scoring/rules", "scoring_rules", list[ScoringRule], "scoring rules")
_part_routes("/scoring/absence-rules", "absence_rules", list[AbsenceRule], "absence rules")
_part_routes("/scoring/groups", "score_groups", dict[str, ScoreGroup], "score groups (decay)")
_part_routes("/thresholds", "thresholds", Thresholds, "temperature thresholds")
_part_routes("/stages", "stages", list[StageRule], "journey stage rules")
_part_routes("/tag-rules", "tag_rules", list[TagRule], "tag rules")
_part_routes("/messaging", "messaging", MessagingPolicy, "messaging policy (frequency caps, quiet hours)")


@router.get("/config", response_class=Response,
            responses={200: response(ActiveConfig, "The configuration in force."), **ADMIN_ERRORS})
async def get_config(_admin: AdminDep, client: RedisDep) -> Response:
    """The whole configuration in force, with its version."""
    config = await current_config(client)
    return json_response(config, headers=_etag(config.version))


# ---- segments ------------------------------------------------------------------

class SegmentBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A segment as PUT: the id comes from the path (a body id must equal it)."""

    when: Condition
    name: str = ""
    id: Identifier | None = None


def with_segment(config: ActiveConfig, segment: SegmentDef) -> tuple[ActiveConfig, bool]:
    """`config` with `segment` added or replacing the one of its id; True when added."""
    created = all(s.id != segment.id for s in config.segments)
    segments = [*config.segments, segment] if created else [
        segment if s.id == segment.id else s for s in config.segments]
    return msgspec.structs.replace(config, segments=segments), created


@router.get("/segments", response_class=Response,
            responses={200: response(SegmentsPage, "Every segment."), **ADMIN_ERRORS})
async def list_segments(_admin: AdminDep, client: RedisDep) -> Response:
    """Every segment definition: `{"data": [...], "count": n}`."""
    config = await current_config(client)
    return json_response(SegmentsPage(config.segments, len(config.segments)), headers=_etag(config.version))


@router.get("/segments/{segment_id}", response_class=Response,
            responses={200: response(SegmentDef, "The segment."), **ADMIN_ERRORS, **_NO_SEGMENT})
async def get_segment(segment_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """One segment definition."""
    config = await current_config(client)
    for segment in config.segments:
        if segment.id == segment_id:
            return json_response(segment, headers=_etag(config.version))
    raise NotFoundError(f"no segment {segment_id!r}")


@router.put("/segments/{segment_id}", response_class=Response, openapi_extra=request_body(SegmentBody),
            responses={200: response(SegmentPublished, "Replaced."), 201: response(SegmentPublished, "Created."),
                       **WRITE_ERRORS})
async def put_segment(segment_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                      client: RedisDep) -> Response:
    """Create or replace a segment: `{"when": condition, "name": "..."}`; 201 when created."""
    raw = await request.body()
    created = False

    def change(config: ActiveConfig) -> tuple[ActiveConfig, Any]:
        nonlocal created
        sid = convert(segment_id, Identifier, "segment id")
        body = decode(raw, SegmentBody)
        if body.id is not None and body.id != sid:
            raise InvalidBodyError(f"body id {body.id!r} differs from the path's {sid!r}")
        segment = SegmentDef(id=sid, when=body.when, name=body.name)
        updated, created = with_segment(config, segment)
        return updated, SegmentPublished(0, segment, created)

    # `created` is only known after the change ran, so the status is fixed up afterwards.
    answer = await change_config(request, settings, client, change)
    if created and answer.status_code == 200:
        answer.status_code = 201
    return answer


@router.delete("/segments/{segment_id}", response_class=Response,
               responses={200: response(SegmentDeleted, "Deleted."), **WRITE_ERRORS, **_NO_SEGMENT})
async def delete_segment(segment_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                         client: RedisDep) -> Response:
    """Delete a segment (refused with 422 while another segment or a stage rule refers to it)."""

    def change(config: ActiveConfig) -> tuple[ActiveConfig, Any]:
        remaining = [s for s in config.segments if s.id != segment_id]
        if len(remaining) == len(config.segments):
            raise NotFoundError(f"no segment {segment_id!r}")
        users = [s.id for s in remaining if segment_id in references(s.when)]
        users += [f"stage rule {r.stage!r}" for r in config.stages if segment_id in references(r.when)]
        if users:
            raise InvalidBodyError(f"segment {segment_id!r} is used by {', '.join(users)}")
        return msgspec.structs.replace(config, segments=remaining), SegmentDeleted(0, segment_id)

    return await change_config(request, settings, client, change)
