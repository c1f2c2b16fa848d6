"""The state the dataflow keeps for one contact: core fields plus one part per capability.

`ContactCore` holds what the shard machinery itself needs (ids, presence,
the message ids seen, the next deadline, the last pushed decision). The
`Registry` builds the concrete contact type from it, appending one field per
registered capability, in registry order — so the whole contact is one
msgspec Struct, updated in place on the hot path and encoded to msgpack in
one C call. Encoded without field names (`array_like`): new capabilities go
at the end of the registry, so snapshots written before still decode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, cast

import msgspec

from dataflows.capabilities.base import Capability, overrides
from dataflows.shard.dedup import SeenIds

CORE_FIELDS: Final = ("contact_id", "anonymous_ids", "user_id", "first_seen", "last_seen", "seen", "due_at",
                      "pushed_digest", "updated_at")


class ContactCore(msgspec.Struct, kw_only=True, array_like=True):
    """What the shard machinery keeps for every contact, whatever capabilities are registered."""

    contact_id: str
    anonymous_ids: list[str] = msgspec.field(default_factory=list)
    user_id: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    # Message ids applied lately (`dedup`): resends are counted once.
    seen: SeenIds = msgspec.field(default_factory=SeenIds)
    # When this contact next needs attention without a new event.
    due_at: float | None = None
    # CRC32 of the last decision pushed to the visitor's browser.
    pushed_digest: int = 0
    updated_at: float = 0.0


Hook = Callable[..., Any]


class Registry:
    """The capabilities a dataflow runs, in order, and the contact type they make."""

    def __init__(self, capabilities: Sequence[Capability[Any]]) -> None:
        names = [c.name for c in capabilities]
        clash = sorted({n for n in names if names.count(n) > 1 or n in CORE_FIELDS})
        if clash:
            raise ValueError(f"capability names must be unique and not core fields: {clash}")
        self.capabilities = tuple(capabilities)
        fields = [(c.name, c.part, msgspec.field(default_factory=c.part)) for c in capabilities]
        self.state_type = cast("type[ContactCore]", msgspec.defstruct(
            "ContactState", fields, bases=(ContactCore,), kw_only=True, array_like=True, module=__name__))
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(self.state_type)
        self.appliers = self._hooks("apply")
        self.admins = self._hooks("admin")
        self.tickers = self._hooks("tick")
        self.mergers = self._hooks("merge")
        self.evaluators = self._hooks("evaluate")
        self.schedulers = self._hooks("due")
        self.renderers = self._hooks("render")
        self.retirers = self._hooks("retire")

    def _hooks(self, hook: str) -> tuple[tuple[str, Hook], ...]:
        """(part name, bound hook) of every capability that implements `hook`, in order."""
        return tuple((c.name, getattr(c, hook)) for c in self.capabilities if overrides(c, hook))

    def new(self, contact_id: str, user_id: str | None = None) -> ContactCore:
        """A contact with every part empty."""
        return self.state_type(contact_id=contact_id, user_id=user_id)

    def encode(self, state: ContactCore) -> bytes:
        """A contact's committed form (msgpack)."""
        return self._encoder.encode(state)

    def decode(self, raw: bytes) -> ContactCore:
        """A contact from its committed form."""
        return self._decoder.decode(raw)
