"""The state the dataflow keeps for one contact, and its public profile.

A plain mutable msgspec Struct: cheap to update in place on the hot path and
encoded to msgpack in one C call when Bytewax snapshots. Each capability
module owns a few fields and a function that applies an event to them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec

from state.profile import CartLine, Counters, Profile

RECENT_IDS: Final = 32


class ContactState(msgspec.Struct, kw_only=True):
    """Everything the dataflow knows about one contact."""

    contact_id: str
    anonymous_ids: list[str] = msgspec.field(default_factory=list)
    user_id: str | None = None
    traits: dict[str, object] = msgspec.field(default_factory=dict)
    first_seen: float = 0.0
    last_seen: float = 0.0
    counters: Counters = msgspec.field(default_factory=Counters)
    cart: dict[str, CartLine] = msgspec.field(default_factory=dict)
    cart_updated_at: float | None = None
    cart_abandoned: bool = False
    score: float = 0.0
    # CRC32s of the last message ids: retries and resends are counted once.
    recent_ids: list[int] = msgspec.field(default_factory=list)
    # When this contact next needs attention without a new event.
    due_at: float | None = None
    # CRC32 of the last decision pushed to the visitor's browser.
    pushed_digest: int = 0
    updated_at: float = 0.0

    def remember(self, message_hash: int) -> bool:
        """Record a message id; False when it was seen recently (a duplicate)."""
        if message_hash in self.recent_ids:
            return False
        self.recent_ids.append(message_hash)
        if len(self.recent_ids) > RECENT_IDS:
            del self.recent_ids[0]
        return True


def _moment(epoch_s: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_s, UTC) if epoch_s else None


def temperature(score: float, warm_at: float = 20.0, hot_at: float = 50.0) -> str:
    """cold < warm_at ≤ warm < hot_at ≤ hot."""
    if score >= hot_at:
        return "hot"
    return "warm" if score >= warm_at else "cold"


def to_profile(state: ContactState) -> Profile:
    """The public view of a contact, as the API serves it."""
    cart = list(state.cart.values())
    email = state.traits.get("email")
    return Profile(
        contact_id=state.contact_id,
        anonymous_ids=list(state.anonymous_ids),
        user_id=state.user_id,
        email=email if isinstance(email, str) else None,
        traits=dict(state.traits),
        first_seen=_moment(state.first_seen),
        last_seen=_moment(state.last_seen),
        counters=state.counters,
        cart=cart,
        cart_value=round(sum(line.price * line.quantity for line in cart), 2),
        cart_updated_at=_moment(state.cart_updated_at),
        score=round(state.score, 3),
        temperature=temperature(state.score),
        extra={"cart_abandoned": state.cart_abandoned} if state.cart_abandoned else {},
        updated_at=_moment(state.updated_at),
    )
