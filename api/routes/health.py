"""Liveness and readiness: is Redis reachable, how far behind is the dataflow."""

from __future__ import annotations

from fastapi import APIRouter, Response
from redis.exceptions import RedisError

from api.deps import RedisDep, SettingsDep
from api.models import Health
from api.openapi import response
from api.responses import json_response
from state.streams import ingest_lag_seconds

router = APIRouter(tags=["health"])


@router.get("/healthz", response_class=Response,
            responses={200: response(Health, "Redis answers; the dataflow's lag."),
                       503: response(Health, "Redis is unreachable.")})
async def healthz(settings: SettingsDep, client: RedisDep) -> Response:
    """`{"status": "ok", "redis": true, "ingest_lag_s": x}`, or 503 when Redis is down."""
    try:
        await client.ping()
        lag = await ingest_lag_seconds(client, settings.stream_shards)
    except (RedisError, OSError) as exc:
        return json_response(Health("unavailable", False, error=str(exc)), 503)
    return json_response(Health("ok", True, ingest_lag_s=lag))
