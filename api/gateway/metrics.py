"""The gateway's Prometheus metrics (served on `gateway_metrics_port`, default registry).

Counted per frame or per push, never per event: a frame's events are added
in one increment.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

EVENTS: Final = Counter("attimo_gateway_events", "Events received over websockets, by outcome.", ["outcome"])
EVENTS_ACCEPTED: Final = EVENTS.labels("accepted")
EVENTS_REJECTED: Final = EVENTS.labels("rejected")
EVENTS_BOT: Final = EVENTS.labels("bot")  # acked, dropped: a known bot's (api.bots)
FRAMES: Final = Counter("attimo_gateway_frames",
                        "Frames received, by reply (ack; error for an unusable frame; limited).", ["reply"])
FRAMES_ACKED: Final = FRAMES.labels("ack")
FRAMES_REFUSED: Final = FRAMES.labels("error")
FRAMES_LIMITED: Final = FRAMES.labels("limited")  # over a rate limit: not stored, not acked
CONNECTIONS: Final = Gauge("attimo_gateway_connections", "Websocket connections open now.")
DECISION_FRAMES: Final = Counter("attimo_gateway_decision_frames_pushed",
                                 "Decision frames pushed to browsers (one per socket reached).")
