"""Which open sockets belong to which visitor, so decisions can be pushed.

A socket is learnt under every anonymousId / userId it sent events for; a
decision addressed to any of those ids goes to it. The ids per socket are
capped, so a client spraying ids cannot grow the registry without bound.
A socket may also have proved one user id at its handshake (a signature,
`api.decisions.identity`): a signed-in user's decisions go only to sockets
verified for that user, since anyone can put a user id in an event.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

S = TypeVar("S", bound=Hashable)


class Connections(Generic[S]):
    """Registry of live sockets by visitor id (one per gateway process)."""

    def __init__(self, max_ids_per_socket: int = 16) -> None:
        self.max_ids_per_socket = max_ids_per_socket
        self._by_id: dict[str, set[S]] = {}
        self._ids_of: dict[S, set[str]] = {}
        self._verified: dict[str, set[S]] = {}
        self._verified_as: dict[S, str] = {}

    def learn(self, socket: S, ids: Iterable[str]) -> None:
        """Remember that `socket` speaks for these visitor ids."""
        known = self._ids_of.setdefault(socket, set())
        for visitor_id in ids:
            if visitor_id in known or len(known) >= self.max_ids_per_socket:
                continue
            known.add(visitor_id)
            self._by_id.setdefault(visitor_id, set()).add(socket)

    def verify(self, socket: S, user_id: str) -> None:
        """Remember that `socket` proved it speaks for the user `user_id` (one user per socket)."""
        self.forget_verification(socket)
        self._verified_as[socket] = user_id
        self._verified.setdefault(user_id, set()).add(socket)

    def forget_verification(self, socket: S) -> None:
        """The socket no longer counts as verified for any user."""
        user_id = self._verified_as.pop(socket, None)
        if user_id is not None:
            sockets = self._verified[user_id]
            sockets.discard(socket)
            if not sockets:
                del self._verified[user_id]

    def verified_for(self, user_id: str) -> set[S]:
        """The open sockets verified for this user id."""
        return set(self._verified.get(user_id, ()))

    def forget(self, socket: S) -> None:
        """Drop a closed socket and every id it was known by."""
        self.forget_verification(socket)
        for visitor_id in self._ids_of.pop(socket, ()):
            sockets = self._by_id.get(visitor_id)
            if sockets is None:
                continue
            sockets.discard(socket)
            if not sockets:
                del self._by_id[visitor_id]

    def sockets_for(self, ids: Iterable[str]) -> set[S]:
        """Every open socket known by any of these ids."""
        found: set[S] = set()
        for visitor_id in ids:
            found |= self._by_id.get(visitor_id, set())
        return found

    def ids_of(self, socket: S) -> frozenset[str]:
        """The ids a socket is known by (empty when unknown)."""
        return frozenset(self._ids_of.get(socket, ()))

    def __len__(self) -> int:
        return len(self._ids_of)
