"""`GET /metrics`: the API process's Prometheus metrics (text exposition of the default registry).

Like every process's metrics it carries counts and timings, never ids or
secrets; keep it off the public internet at the load balancer all the same.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response,
            responses={200: {"description": "Prometheus text exposition format.",
                             "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics() -> Response:
    """Every metric of this API process, in the format Prometheus scrapes."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
