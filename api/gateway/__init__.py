"""The websocket gateway: tracker frames in (acked after append), decisions out."""

from api.gateway.server import run_gateway, serve_gateway

__all__ = ["run_gateway", "serve_gateway"]
