"""Admin: workflows (create, change, enable, delete, stats, manual entry) and recipes (list, import).

Workflows are part of the live configuration: every change publishes a new
configuration version the dataflow switches to within a second. Changing a
workflow counts its own `version`; contacts already inside finish on the
version they entered with (kept under `retired_workflows`, the newest
`RETIRED_KEPT` per workflow), unless the new one sets `migrate`. Deleting
retires the last version the same way. Enabling and disabling keep the
version: a disabled workflow enters nobody new.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from fastapi import APIRouter, Request, Response

from api.deps import AdminDep, RedisDep, SettingsDep
from api.errors import InvalidBodyError, NotFoundError
from api.models import Accepted, ErrorBody
from api.openapi import Responses, request_body, response
from api.responses import ADMIN_ERRORS, WRITE_ERRORS, convert, decode, json_response
from api.routes.admin_config import change_config
from api.workflow_counters import read_counters
from api.workflow_models import (
    ManualEntry,
    RecipeImport,
    RecipeInfo,
    RecipesPage,
    WorkflowBody,
    WorkflowDeleted,
    WorkflowPublished,
    WorkflowsPage,
    WorkflowStats,
    workflow_of,
)
from state.config import ActiveConfig, Identifier
from state.config_store import current_config
from state.contacts import event_ids, resolve_contact
from state.events import WorkflowEntry
from state.recipes import RECIPES, build
from state.streams import append_events
from state.workflows import Workflow

router = APIRouter(prefix="/v1/admin", tags=["admin: workflows"])

RETIRED_KEPT: Final = 5
_NO_WORKFLOW: Final[Responses] = {404: response(ErrorBody, "No such workflow.")}


def _find(config: ActiveConfig, workflow_id: str) -> Workflow:
    for workflow in config.workflows:
        if workflow.id == workflow_id:
            return workflow
    raise NotFoundError(f"no workflow {workflow_id!r}")


def _retire(config: ActiveConfig, old: Workflow) -> list[Workflow]:
    """The retired versions with `old` added, the newest `RETIRED_KEPT` per workflow."""
    retired = [w for w in config.retired_workflows if (w.id, w.version) != (old.id, old.version)] + [old]
    mine = sorted((w for w in retired if w.id == old.id), key=lambda w: w.version)[-RETIRED_KEPT:]
    return [w for w in retired if w.id != old.id] + mine


def _replace(config: ActiveConfig, workflow: Workflow) -> tuple[ActiveConfig, bool]:
    """`config` with `workflow` in place of its previous version (retired), or added."""
    previous = next((w for w in config.workflows if w.id == workflow.id), None)
    if previous is None:
        return msgspec.structs.replace(config, workflows=[*config.workflows, workflow]), True
    workflows = [workflow if w.id == workflow.id else w for w in config.workflows]
    retired = _retire(config, previous) if previous.version != workflow.version else config.retired_workflows
    return msgspec.structs.replace(config, workflows=workflows, retired_workflows=retired), False


async def _publish(request: Request, settings: SettingsDep, client: RedisDep,
                   make: Any) -> Response:
    """Publish the workflow `make(config)` returns (201 when it is new)."""
    created = False

    def change(config: ActiveConfig) -> tuple[ActiveConfig, Any]:
        nonlocal created
        workflow = make(config)
        updated, created = _replace(config, workflow)
        return updated, WorkflowPublished(0, workflow, created)

    answer = await change_config(request, settings, client, change)
    if created and answer.status_code == 200:
        answer.status_code = 201
    return answer


@router.get("/workflows", response_class=Response,
            responses={200: response(WorkflowsPage, "Every workflow."), **ADMIN_ERRORS})
async def list_workflows(_admin: AdminDep, client: RedisDep) -> Response:
    """Every workflow in force (the configuration version is in the ETag)."""
    config = await current_config(client)
    return json_response(WorkflowsPage(config.workflows, len(config.workflows)),
                         headers={"ETag": f'"{config.version}"'})


@router.get("/workflows/{workflow_id}", response_class=Response,
            responses={200: response(Workflow, "The workflow."), **ADMIN_ERRORS, **_NO_WORKFLOW})
async def get_workflow(workflow_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """One workflow."""
    return json_response(_find(await current_config(client), workflow_id))


@router.put("/workflows/{workflow_id}", response_class=Response, openapi_extra=request_body(WorkflowBody),
            responses={200: response(WorkflowPublished, "Changed (a new version)."),
                       201: response(WorkflowPublished, "Created."), **WRITE_ERRORS})
async def put_workflow(workflow_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                       client: RedisDep) -> Response:
    """Create or change a workflow: a trigger, steps, a goal, a re-entry rule; 201 when created."""
    raw = await request.body()

    def make(config: ActiveConfig) -> Workflow:
        wid = convert(workflow_id, Identifier, "workflow id")
        body = decode(raw, WorkflowBody)
        if body.id is not None and body.id != wid:
            raise InvalidBodyError(f"body id {body.id!r} differs from the path's {wid!r}")
        previous = next((w for w in config.workflows if w.id == wid), None)
        known = [w.version for w in config.retired_workflows if w.id == wid]
        version = max([previous.version if previous else 0, *known]) + 1
        return workflow_of(wid, body, version)

    return await _publish(request, settings, client, make)


def _switch(enabled: bool) -> Any:
    async def switch(workflow_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                     client: RedisDep) -> Response:
        return await _publish(request, settings, client,
                              lambda config: msgspec.structs.replace(_find(config, workflow_id), enabled=enabled))

    switch.__doc__ = ("Enable the workflow: it enters contacts again." if enabled else
                      "Disable the workflow: it enters nobody new; contacts inside go on.")
    return switch


for _action, _enabled in (("enable", True), ("disable", False)):
    router.add_api_route(f"/workflows/{{workflow_id}}/{_action}", _switch(_enabled), methods=["POST"],
                         response_class=Response, name=f"{_action}-workflow",
                         responses={200: response(WorkflowPublished, "Published."), **WRITE_ERRORS,
                                    **_NO_WORKFLOW})


@router.delete("/workflows/{workflow_id}", response_class=Response,
               responses={200: response(WorkflowDeleted, "Deleted."), **WRITE_ERRORS, **_NO_WORKFLOW})
async def delete_workflow(workflow_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                          client: RedisDep) -> Response:
    """Delete a workflow; contacts inside finish on its last version (refused while another enters it)."""

    def change(config: ActiveConfig) -> tuple[ActiveConfig, Any]:
        workflow = _find(config, workflow_id)
        remaining = [w for w in config.workflows if w.id != workflow_id]
        return (msgspec.structs.replace(config, workflows=remaining, retired_workflows=_retire(config, workflow)),
                WorkflowDeleted(0, workflow_id))

    return await change_config(request, settings, client, change)


@router.get("/workflows/{workflow_id}/stats", response_class=Response,
            responses={200: response(WorkflowStats, "Exact counters."), **ADMIN_ERRORS, **_NO_WORKFLOW})
async def workflow_stats(workflow_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """Entered, at each step, actions queued / held / skipped, per branch, converted, ended."""
    config = await current_config(client)
    if all(w.id != workflow_id for w in [*config.workflows, *config.retired_workflows]):
        raise NotFoundError(f"no workflow {workflow_id!r}")
    return json_response(WorkflowStats(workflow_id, await read_counters(client, workflow_id)))


@router.post("/workflows/{workflow_id}/enter", response_class=Response, status_code=202,
             openapi_extra=request_body(ManualEntry),
             responses={202: response(Accepted, "Entries appended."), **WRITE_ERRORS, **_NO_WORKFLOW})
async def enter_workflow(workflow_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                         client: RedisDep) -> Response:
    """Enter contacts into a workflow by hand (its re-entry rule applies): 202 `{"accepted": n}`."""
    body = decode(await request.body(), ManualEntry)
    _find(await current_config(client), workflow_id)
    given = list(dict.fromkeys(body.contacts))
    refs = await asyncio.gather(*(resolve_contact(client, any_id) for any_id in given))
    now = datetime.now(UTC)
    events = []
    for any_id, ref in zip(given, refs, strict=True):
        anonymous_id, user_id = event_ids(ref, any_id)
        events.append(WorkflowEntry(message_id=str(uuid.uuid4()), anonymous_id=anonymous_id, user_id=user_id,
                                    timestamp=now, received_at=now, workflow=workflow_id))
    return json_response(Accepted(await append_events(client, events, settings.stream_shards)), 202)


@router.get("/recipes", response_class=Response,
            responses={200: response(RecipesPage, "Every recipe."), **ADMIN_ERRORS})
async def list_recipes(_admin: AdminDep) -> Response:
    """The seed recipes, with their parameters and defaults."""
    data = [RecipeInfo(r.name, r.description, dict(r.parameters)) for r in RECIPES.values()]
    return json_response(RecipesPage(data, len(data)))


@router.post("/recipes/{name}/import", response_class=Response, openapi_extra=request_body(RecipeImport),
             responses={200: response(WorkflowPublished, "Replaced a workflow."),
                        201: response(WorkflowPublished, "Created."), **WRITE_ERRORS,
                        404: response(ErrorBody, "No such recipe.")})
async def import_recipe(name: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                        client: RedisDep) -> Response:
    """Publish a recipe as a workflow (then edit it like any other): `{"endpoint": "...", "parameters": {}}`."""
    if name not in RECIPES:
        raise NotFoundError(f"no recipe {name!r}")
    body = decode(await request.body(), RecipeImport)

    def make(config: ActiveConfig) -> Workflow:
        try:
            workflow = build(name, body.workflow_id, body.endpoint, body.parameters, body.enabled)
        except KeyError as exc:
            raise InvalidBodyError(str(exc.args[0])) from exc
        previous = next((w for w in config.workflows if w.id == workflow.id), None)
        known = [w.version for w in config.retired_workflows if w.id == workflow.id]
        return msgspec.structs.replace(workflow, version=max([previous.version if previous else 0, *known]) + 1)

    return await _publish(request, settings, client, make)
