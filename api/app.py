"""The HTTP API application: ingest, decisions, admin, health.

`create_app(settings)` wires routers, CORS and the error → status mapping;
the lifespan owns the process-wide Redis client and caches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from redis.exceptions import RedisError

from api import demo_shop
from api.appender import StreamAppender
from api.backpressure import Backpressure
from api.decisions_fast import DecisionsFastPath
from api.deps import WRITE_KEY_HEADER
from api.errors import OverloadedError, status_for
from api.http_server import HttpLimits, serve_http
from api.logging import configure_logging, log
from api.rfm_refresh import run_rfm_refresher
from api.routes import (
    admin_config,
    contacts,
    decisions,
    health,
    ingest,
    quarantine,
    segments,
    stats,
    tags,
    tracker_script,
)
from state.errors import AttimoError
from state.settings import Settings
from state.validation import EventValidator, limits_from
from state.writekeys import WriteKey, WriteKeyCache, save_write_key

logger = logging.getLogger("attimo.api")

# Routers written alongside this module; the app runs without them.
REDIS_TIMEOUT_S = 5.0


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"success": False, "error": message}), status_code=status,
                    media_type="application/json", headers=headers)


async def _attimo_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AttimoError)
    status = status_for(exc)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, OverloadedError) else None
    if status >= 500:
        log(logger, logging.ERROR, "request failed", path=request.url.path, error=str(exc))
    return _json_error(status, str(exc), headers)


async def _redis_error(request: Request, exc: Exception) -> Response:
    log(logger, logging.ERROR, "redis unavailable", path=request.url.path, error=str(exc))
    return _json_error(503, "store unavailable")


def create_app(settings: Settings) -> FastAPI:
    """Build the API for these settings (Redis is connected when the lifespan starts)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        app.state.settings = settings
        app.state.redis = client
        app.state.appender = StreamAppender(client, settings.stream_shards)
        app.state.write_keys = WriteKeyCache(client)
        app.state.backpressure = Backpressure(client, settings.stream_shards, settings.max_ingest_lag_s)
        app.state.validator = EventValidator(limits_from(settings))
        try:
            await save_write_key(client, WriteKey(settings.write_key, settings.origins))
        except (RedisError, OSError) as exc:
            # Start anyway: /healthz reports the outage and requests get 503.
            log(logger, logging.ERROR, "cannot save the default write key", error=str(exc))
        refresher = (asyncio.create_task(run_rfm_refresher(client, settings.stream_shards, settings.rfm_refresh_s,
                                                           settings.rfm_sample))
                     if settings.rfm_refresh_s > 0 else None)
        try:
            yield
        finally:
            if refresher is not None:
                refresher.cancel()
            await app.state.appender.close()
            await client.aclose()

    app = FastAPI(title="Attimo", version="1", lifespan=lifespan,
                  description="Real-time marketing automation: ingest, decisions, admin.")
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", WRITE_KEY_HEADER, "Content-Encoding"],
        max_age=600,
    )
    app.add_exception_handler(AttimoError, _attimo_error)
    app.add_exception_handler(RedisError, _redis_error)
    for router in (ingest.router, decisions.router, contacts.router, health.router, admin_config.router,
                   segments.router, tags.router, quarantine.router, stats.router, tracker_script.router,
                   demo_shop.router):
        app.include_router(router)
    return app


def run_api(settings: Settings) -> None:
    """Serve the API with uvicorn and the head-limited httptools protocol until interrupted."""
    configure_logging()
    limits = HttpLimits(head_timeout_s=settings.http_head_timeout_s, max_head_bytes=settings.http_max_head_bytes,
                        max_connections=settings.http_max_connections)
    serve_http(DecisionsFastPath(create_app(settings)), host=settings.host, port=settings.api_port, limits=limits)
