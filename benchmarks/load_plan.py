"""What a load phase sends: shoppers' sessions cut into websocket frames and HTTP batches.

Batches are encoded before the clock starts, so the generator spends its CPU
on the protocol, not on building JSON. A visitor always uses the same
connection, as a browser would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.shoppers import ShopperModel, Tally, encode


@dataclass
class Plan:
    """What one load phase sends: frames per connection and server-side HTTP batches."""

    frames: list[list[bytes]]  # per connection, each a JSON array of events
    frame_events: list[list[int]]
    http_batches: list[bytes] = field(default_factory=list)
    http_events: list[int] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)

    @property
    def ws_events(self) -> int:
        return sum(sum(c) for c in self.frame_events)

    @property
    def events(self) -> int:
        return self.ws_events + sum(self.http_events)


def build_plan(
    model: ShopperModel,
    visitors: int,
    connections: int,
    frame_size: int,
    http_batch: int = 20,
    max_events: int | None = None,
) -> Plan:
    """Sessions of `visitors` shoppers as frames; a visitor always uses the same connection."""
    streams: list[list[bytes]] = [[] for _ in range(connections)]
    server: list[bytes] = []
    tally = Tally()
    assigned: dict[str, int] = {}
    total = 0
    for session in model.sessions(visitors):
        conn = assigned.setdefault(session.visitor.anonymous_id, len(assigned) % connections)
        for event in session.browser:
            streams[conn].append(encode(event))
            tally.add(event)
        for event in session.server:
            server.append(encode(event))
            tally.add(event)
        total += len(session.browser) + len(session.server)
        if max_events is not None and total >= max_events:
            break
    plan = Plan([], [], tally=tally)
    for stream in streams:
        chunks = [stream[i : i + frame_size] for i in range(0, len(stream), frame_size)]
        plan.frames.append([b"[" + b",".join(c) + b"]" for c in chunks])
        plan.frame_events.append([len(c) for c in chunks])
    for i in range(0, len(server), http_batch):
        chunk = server[i : i + http_batch]
        plan.http_batches.append(b'{"batch":[' + b",".join(chunk) + b"]}")
        plan.http_events.append(len(chunk))
    return plan
