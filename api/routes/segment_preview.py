"""Admin: how many contacts a segment's condition tree matches now, before it is saved.

The tree is validated exactly as `PUT /v1/admin/segments/{id}` validates it
(the same body, and the configuration it would make passes the same
publish check), then asked of the dataflow (`state.segment_preview`): every
contact shard evaluates it over the contacts it holds, with the code saved
segments run, and answers into a short-lived hash. The route waits until all
shards of both stages have answered, at most `timeout_s`, then answers 504
naming the shards that did not. Nothing is published and no contact changes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Final

import msgspec
from fastapi import APIRouter, Query, Request, Response

from api.deps import AdminDep, RedisDep, SettingsDep
from api.models import ErrorBody
from api.openapi import request_body, response
from api.responses import ADMIN_ERRORS, decode, json_response
from api.routes.admin_config import SegmentBody, check_publishable, with_segment
from state import keys
from state.config import SegmentDef
from state.config_store import current_config
from state.segment_preview import PreviewControl, expected_fields, read_answers, send_preview

router = APIRouter(prefix="/v1/admin", tags=["admin: segments"])

UNSAVED_ID: Final = "preview:unsaved"
"""The id the tree is checked under when the body names none (a new segment)."""
POLL_S: Final = 0.05


class SegmentPreview(msgspec.Struct, frozen=True):
    """How many contacts match the tree now, of how many evaluated (every contact the dataflow holds)."""

    matching: int
    evaluated: int
    # Contacts the tree could not be evaluated on (counted as not matching); normally 0.
    failed: int
    shards: int
    took_ms: float
    version: int


class PreviewTimedOut(msgspec.Struct, frozen=True):
    """Some contact shards did not answer in time (the dataflow is stopped or far behind)."""

    error: str
    missing: list[str]
    answered: int
    success: bool = False


@router.post("/segments/preview", response_class=Response, openapi_extra=request_body(SegmentBody),
             responses={200: response(SegmentPreview, "The count."), **ADMIN_ERRORS,
                        422: response(ErrorBody, "Invalid condition tree; the message names the field."),
                        504: response(PreviewTimedOut, "Not every contact shard answered in time.")})
async def preview_segment(
    request: Request, _admin: AdminDep, settings: SettingsDep, client: RedisDep,
    timeout_s: Annotated[float, Query(gt=0, le=30)] = 5.0,
) -> Response:
    """Count the contacts a segment body (`{"when": condition, ...}`, as a segment PUT takes) matches now.

    With an `id` of an existing segment the tree is checked as that segment's
    replacement (cycles through it are refused); without one, as a new segment.
    `{"matching", "evaluated", "failed", "shards", "took_ms", "version"}`.
    """
    started = time.monotonic()
    body = decode(await request.body(), SegmentBody)
    config = await current_config(client)
    segment = SegmentDef(id=body.id or UNSAVED_ID, when=body.when, name=body.name)
    updated, _ = with_segment(config, segment)
    check_publishable(updated)
    preview_id = uuid.uuid4().hex
    control = PreviewControl(preview_id, body.when, time.time() + timeout_s)
    await send_preview(client, control, settings.stream_shards)
    wanted = expected_fields(settings.contact_shards)
    key = keys.segment_preview(preview_id)
    deadline = started + timeout_s
    while int(await client.hlen(key)) < len(wanted) and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
    answers = await read_answers(client, preview_id)
    missing = [field for field in wanted if field not in answers]
    if missing:
        return json_response(PreviewTimedOut(
            f"{len(missing)} of {len(wanted)} contact shards did not answer within {timeout_s:g} s "
            "(is the dataflow running and keeping up?)", missing, len(wanted) - len(missing)), 504)
    await client.delete(key)
    got = [answers[field] for field in wanted]
    return json_response(SegmentPreview(
        matching=sum(a.matching for a in got), evaluated=sum(a.evaluated for a in got),
        failed=sum(a.failed for a in got), shards=len(wanted),
        took_ms=round((time.monotonic() - started) * 1000, 1), version=config.version))
