"""Liveness and readiness: is Redis reachable, how far behind is the dataflow."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Response
from redis.exceptions import RedisError

from api.deps import RedisDep, SettingsDep
from state.streams import ingest_lag_seconds

router = APIRouter(tags=["health"])


@router.get("/healthz", response_class=Response,
            responses={503: {"description": "Redis is unreachable."}})
async def healthz(settings: SettingsDep, client: RedisDep) -> Response:
    """`{"status": "ok", "redis": true, "ingest_lag_s": x}`, or 503 when Redis is down."""
    try:
        await client.ping()
        lag = await ingest_lag_seconds(client, settings.stream_shards)
    except (RedisError, OSError) as exc:
        body = {"status": "unavailable", "redis": False, "error": str(exc)}
        return Response(orjson.dumps(body), status_code=503, media_type="application/json")
    body = {"status": "ok", "redis": True, "ingest_lag_s": lag}
    return Response(orjson.dumps(body), media_type="application/json")
