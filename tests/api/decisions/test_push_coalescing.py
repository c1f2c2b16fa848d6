"""The gateway composes one push per contact however many changes queued up before it got to it."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from api.decisions.read import DecisionRead
from api.gateway import push as push_module
from api.gateway.connections import Connections
from api.gateway.push import DecisionPusher
from state.decisions import DecisionDoc, encode_doc
from state.frames import DecisionPush, encode_push


class CountingService:
    """Stands in for the decisions service: counts reads, answers an anonymous contact with nothing."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    async def read(self, any_id: str, product: str | None = None) -> DecisionRead:
        self.reads.append(any_id)
        await asyncio.sleep(0)
        return DecisionRead(None)


def message(contact: str, *ids: str) -> bytes:
    return encode_push(DecisionPush(list(ids), msgspec.Raw(encode_doc(DecisionDoc(contact_id=contact)))))


async def test_pushes_queued_for_one_contact_are_composed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three changes of one contact in one turn: one read, one frame; another contact still gets its own."""
    sent: list[tuple[Any, str]] = []
    monkeypatch.setattr(push_module, "broadcast", lambda sockets, frame: sent.extend((s, frame) for s in sockets))
    connections: Connections[Any] = Connections()
    connections.learn("socket-a", ["anon-a"])
    connections.learn("socket-b", ["anon-b"])
    service = CountingService()
    pusher = DecisionPusher(connections, service)  # type: ignore[arg-type]
    for _ in range(3):
        pusher.on_message(message("anon-a", "anon-a"))
    pusher.on_message(message("anon-b", "anon-b"))
    pusher.on_message(message("nobody-here", "anon-z"))  # no socket: not even read
    await pusher.drain()
    assert service.reads == ["anon-a", "anon-b"]
    assert pusher.coalesced == 2
    assert sorted(s for s, _ in sent) == ["socket-a", "socket-b"]
