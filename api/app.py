"""The HTTP API application: ingest, decisions, admin, health.

`create_app(settings)` wires routers, CORS and the error handlers — every
error of every route becomes `api.models.ErrorBody` with the status from
`api.errors` — and documents msgspec bodies in OpenAPI; the lifespan owns the
process-wide resources (`api.resources`), shared in shape with the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from api import demo_shop, openapi
from api.dashboard import routes as dashboard_routes
from api.dashboard import stream as dashboard_stream
from api.decisions.answer import DecisionService
from api.decisions.identity import IdentityVerifier
from api.decisions.reader import DecisionReader
from api.decisions.redis_wire import PipelinedRedis
from api.decisions_fast import DecisionsFastPath
from api.deps import WRITE_KEY_HEADER
from api.errors import OverloadedError, RateLimitedError, status_for
from api.heartbeat import heartbeat_running
from api.http_server import HttpLimits, serve_http
from api.logging import configure_logging, log
from api.metrics import RequestMetrics
from api.request_ids import RequestIds, bind_request_ids_to_logs
from api.resources import open_resources
from api.responses import error_response
from api.rfm_refresh import run_rfm_refresher
from api.routes import (
    admin_config,
    campaigns,
    catalog,
    contacts,
    decisions,
    email,
    health,
    ingest,
    keys,
    metrics,
    privacy,
    quarantine,
    segment_compat,
    segment_preview,
    segments,
    stats,
    tags,
    tracker_script,
    webhooks,
    workflows,
)
from state.errors import AttimoError
from state.process_stats import start_process_reporter
from state.settings import Settings

logger = logging.getLogger("attimo.api")


async def _attimo_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AttimoError)
    status = status_for(exc)
    headers = ({"Retry-After": str(exc.retry_after_s)} if isinstance(exc, OverloadedError | RateLimitedError)
               else None)
    if status >= 500:
        log(logger, logging.ERROR, "request failed", path=request.url.path, error=str(exc))
    return error_response(status, str(exc), headers)


async def _redis_error(request: Request, exc: Exception) -> Response:
    log(logger, logging.ERROR, "redis unavailable", path=request.url.path, error=str(exc))
    return error_response(503, "store unavailable")


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own checks of path and query parameters, in the API's error shape."""
    assert isinstance(exc, RequestValidationError)
    problems = [f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
    return error_response(422, "; ".join(problems) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths (404), wrong methods (405) … in the API's error shape."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers) if exc.headers else None)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """A bug: logged with its traceback, answered 500 in the API's error shape."""
    log(logger, logging.ERROR, "unexpected error", exc_info=True, path=request.url.path, error=repr(exc))
    return error_response(500, "internal error")


def create_app(settings: Settings) -> FastAPI:
    """Build the API for these settings (Redis is connected when the lifespan starts)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = await open_resources(settings)
        app.state.settings = settings
        app.state.resources = resources
        app.state.redis = resources.redis
        app.state.appender = resources.appender
        app.state.write_keys = resources.write_keys
        app.state.backpressure = resources.backpressure
        app.state.validator = resources.validator
        # The hottest read gets its own lean, auto-pipelined connection (api.decisions.redis_wire).
        decisions_redis = PipelinedRedis.from_url(settings.redis_url, settings.redis_timeout_s)
        app.state.decisions = DecisionService(
            DecisionReader(decisions_redis, settings.decisions_hold_s, settings.decisions_max_held),
            IdentityVerifier.from_settings(settings))
        refresher = (asyncio.create_task(run_rfm_refresher(resources.redis, settings.stream_shards,
                                                           settings.rfm_refresh_s, settings.rfm_sample))
                     if settings.rfm_refresh_s > 0 else None)
        try:
            async with heartbeat_running(settings, resources.redis):
                yield
        finally:
            if refresher is not None:
                refresher.cancel()
            await decisions_redis.close()
            await resources.close()

    app = FastAPI(title="Attimo", version="1", lifespan=lifespan,
                  description="Real-time marketing automation: ingest, decisions, admin.")
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", WRITE_KEY_HEADER, "X-Attimo-Signature", "Content-Encoding"],
        max_age=600,
    )
    app.add_exception_handler(AttimoError, _attimo_error)
    app.add_exception_handler(RedisError, _redis_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    for router in (ingest.router, decisions.router, contacts.router, health.router, admin_config.router,
                   segments.router, tags.router, quarantine.router, stats.router, tracker_script.router,
                   email.router, demo_shop.router):
        app.include_router(router)
    app.include_router(keys.router)
    app.include_router(webhooks.router)
    app.include_router(workflows.router)
    app.include_router(catalog.router)
    app.include_router(campaigns.router)
    app.include_router(segment_preview.router)
    app.include_router(privacy.router)
    app.include_router(segment_compat.router)
    app.include_router(dashboard_stream.router)
    app.include_router(dashboard_routes.router)
    app.include_router(metrics.router)
    openapi.install(app)
    return app


def run_api(settings: Settings) -> None:
    """Serve the API with uvicorn and the head-limited httptools protocol until interrupted."""
    configure_logging()
    bind_request_ids_to_logs()
    start_process_reporter("api", settings.redis_url)
    limits = HttpLimits(head_timeout_s=settings.http_head_timeout_s, max_head_bytes=settings.http_max_head_bytes,
                        max_connections=settings.http_max_connections)
    # Outermost first: the request id, then the timing, so both cover the decisions fast path too.
    app = RequestIds(RequestMetrics(DecisionsFastPath(create_app(settings))))
    serve_http(app, host=settings.host, port=settings.api_port, limits=limits)
