"""The state the dataflow keeps for one contact.

A plain mutable msgspec Struct: cheap to update in place on the hot path and
encoded to msgpack in one C call when Bytewax snapshots. Each capability
module owns its own compact sub-struct (windows, sessions, orders, scoring)
and the functions that update it; this module only holds them together.
"""

from __future__ import annotations

import msgspec

from dataflows.dedup import SeenIds
from dataflows.orders import OrderStats
from dataflows.scoring import ScoreState
from dataflows.sessions import SessionState
from dataflows.windows import ActivityLog
from state.profile import CartLine, Counters


class Tallies(msgspec.Struct, array_like=True, gc=False):
    """All-time counts, as `state.profile.Counters` but stored without field names."""

    events: int = 0
    page_views: int = 0
    product_views: int = 0
    product_views_by_category: dict[str, int] = msgspec.field(default_factory=dict)
    cart_adds: int = 0
    cart_removes: int = 0
    checkouts: int = 0
    orders: int = 0
    revenue: float = 0.0
    sign_ups: int = 0
    form_submits: int = 0
    email_opens: int = 0
    email_clicks: int = 0

    def public(self) -> Counters:
        """The same counts as the profile shows them."""
        return Counters(**msgspec.structs.asdict(self))


class ContactState(msgspec.Struct, kw_only=True, array_like=True):
    """Everything the dataflow knows about one contact.

    Encoded without field names (`array_like`) to keep snapshots small:
    new fields go at the end, with a default.
    """

    contact_id: str
    anonymous_ids: list[str] = msgspec.field(default_factory=list)
    user_id: str | None = None
    traits: dict[str, object] = msgspec.field(default_factory=dict)
    first_seen: float = 0.0
    last_seen: float = 0.0
    counters: Tallies = msgspec.field(default_factory=Tallies)
    cart: dict[str, CartLine] = msgspec.field(default_factory=dict)
    cart_updated_at: float | None = None
    cart_abandoned: bool = False
    activity: ActivityLog = msgspec.field(default_factory=ActivityLog)
    session: SessionState = msgspec.field(default_factory=SessionState)
    orders: OrderStats = msgspec.field(default_factory=OrderStats)
    scoring: ScoreState = msgspec.field(default_factory=ScoreState)
    tags: list[str] = msgspec.field(default_factory=list)
    lists: list[str] = msgspec.field(default_factory=list)
    segments: list[str] = msgspec.field(default_factory=list)
    stage: str = "awareness"
    # Numbers each segment change, so change ids are deterministic under replay.
    segment_changes: int = 0
    late_events: int = 0
    # Unused since message ids are remembered in `seen`; kept so older snapshots still decode.
    recent_ids: list[int] = msgspec.field(default_factory=list)
    # When this contact next needs attention without a new event.
    due_at: float | None = None
    # CRC32 of the last decision pushed to the visitor's browser.
    pushed_digest: int = 0
    updated_at: float = 0.0
    # Message ids applied lately (`dedup`): resends are counted once.
    seen: SeenIds = msgspec.field(default_factory=SeenIds)
