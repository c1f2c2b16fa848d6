"""Admin: the dataflow's counters, the quarantine's size and the ingest lag, in one read.

The counters (late events, identity merges, anonymous purges, quarantined
items …) are written by the dataflow as it goes; like every count of
effects that a crash replays, they may count a replayed item twice.
"""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Response

from api.deps import AdminDep, RedisDep, SettingsDep
from api.models import Stats
from api.openapi import response
from api.responses import ADMIN_ERRORS, json_response
from state import keys
from state.quarantine import QUARANTINE
from state.streams import ingest_lag_seconds

router = APIRouter(prefix="/v1/admin", tags=["admin: stats"])


@router.get("/stats", response_class=Response,
            responses={200: response(Stats, "Counters, quarantine size, lag."), **ADMIN_ERRORS})
async def stats(_admin: AdminDep, settings: SettingsDep, client: RedisDep) -> Response:
    """`{"counters": {name: n}, "quarantined": n, "ingest_lag_s": x}`."""
    raw = cast("dict[bytes, bytes]", await client.hgetall(keys.metrics()))
    counters = {name.decode(): int(value) for name, value in raw.items()}
    return json_response(Stats(counters, await QUARANTINE.count(client),
                               await ingest_lag_seconds(client, settings.stream_shards)))
