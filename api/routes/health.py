"""Liveness (`/healthz`: the API process answers) and readiness (`/readyz`: see `api.readiness`)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from redis.exceptions import RedisError

from api.deps import RedisDep, SettingsDep
from api.models import Health
from api.openapi import response
from api.readiness import Readiness, check_readiness
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


@router.get("/readyz", response_class=Response,
            responses={200: response(Readiness, "Redis answers, the dataflow keeps up, a dispatcher runs."),
                       503: response(Readiness, "Not ready: `failed` names each failed check, its `detail` why.")})
async def readyz(settings: SettingsDep, client: RedisDep) -> Response:
    """Whether this Attimo can serve: `{"status": "ready" | "not ready", "checks": [...], "failed": [...]}`."""
    readiness = await check_readiness(client, shards=settings.stream_shards, max_lag_s=settings.ready_max_lag_s,
                                      require_dispatcher=settings.ready_require_dispatcher,
                                      timeout_s=settings.redis_timeout_s)
    # Process ids and memory are for operators (`attimo status`, the dashboard), not for any caller.
    public = Readiness(readiness.status, readiness.checks, readiness.failed)
    return json_response(public, 200 if not readiness.failed else 503)
