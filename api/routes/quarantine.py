"""Admin: what the dataflow could not process — list, inspect, replay, delete.

The dataflow never stops on an event it cannot take: it rolls the contact
back, writes a quarantine record (the event and the error, see
`state.quarantine`) and goes on. Operators see the records here. After a
fix, `replay` appends the event to its stream again — it was never applied,
so it is applied once, like a new event — and removes the record; if it
fails again it is quarantined again under the same id.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from fastapi import APIRouter, Query, Response

from api.deps import AdminDep, RedisDep, SettingsDep
from api.errors import InvalidBodyError, NotFoundError
from api.models import ErrorBody, QuarantinePage, Replayed
from api.openapi import Responses, response
from api.responses import ADMIN_ERRORS, json_response
from state.events import StreamEvent
from state.quarantine import QUARANTINE, QuarantineRecord
from state.streams import append_events

router = APIRouter(prefix="/v1/admin/quarantine", tags=["admin: quarantine"])

MAX_PAGE: Final = 500
_NOT_FOUND: Final[Responses] = {404: response(ErrorBody, "No such quarantine record.")}
_event_decoder: Final = msgspec.json.Decoder(StreamEvent)


@router.get("", response_class=Response,
            responses={200: response(QuarantinePage, "A page of records."), **ADMIN_ERRORS})
async def list_quarantine(
    _admin: AdminDep, client: RedisDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    # Finite only: NaN reached Redis as "(nan" and came back as a store outage (503).
    before: Annotated[float | None, Query(allow_inf_nan=False,
                                          description="Only records quarantined before this epoch time.")] = None,
) -> Response:
    """Quarantined items, newest first: `{"data": [record], "count": total, "next_before": t | null}`.

    Pass `next_before` back as `before` for the next page.
    """
    records = await QUARANTINE.page(client, limit, before)
    total = await QUARANTINE.count(client)
    next_before = records[-1].at if len(records) == limit else None
    return json_response(QuarantinePage(records, total, next_before))


@router.get("/{record_id:path}", response_class=Response,
            responses={200: response(QuarantineRecord, "The record."), **ADMIN_ERRORS, **_NOT_FOUND})
async def get_quarantined(record_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """One quarantine record: the item, the stage that could not take it, and the error."""
    record = await QUARANTINE.get(client, record_id)
    if record is None:
        raise NotFoundError(f"no quarantine record {record_id!r}")
    return json_response(record)


@router.post("/{record_id:path}/replay", response_class=Response, status_code=202,
             responses={202: response(Replayed, "Appended again."), **ADMIN_ERRORS, **_NOT_FOUND,
                        422: response(ErrorBody, "The record holds no replayable event.")})
async def replay_quarantined(record_id: str, _admin: AdminDep, settings: SettingsDep,
                             client: RedisDep) -> Response:
    """Append the quarantined event to its stream again and drop the record: 202 `{"replayed": 1}`."""
    record = await QUARANTINE.get(client, record_id)
    if record is None:
        raise NotFoundError(f"no quarantine record {record_id!r}")
    if not record.replayable:
        raise InvalidBodyError(f"record {record_id!r} holds no replayable event ({record.stage})")
    try:
        event = _event_decoder.decode(record.payload)
    except msgspec.DecodeError as exc:
        raise InvalidBodyError(f"record {record_id!r}: the event no longer decodes: {exc}") from exc
    await append_events(client, [event], settings.stream_shards)
    await QUARANTINE.delete(client, record_id)
    return json_response(Replayed(1), 202)


@router.delete("/{record_id:path}", status_code=204, response_class=Response,
               responses={204: {"description": "Forgotten."}, **ADMIN_ERRORS, **_NOT_FOUND})
async def delete_quarantined(record_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """Forget a quarantine record (its event is not applied)."""
    if not await QUARANTINE.delete(client, record_id):
        raise NotFoundError(f"no quarantine record {record_id!r}")
    return Response(status_code=204)
