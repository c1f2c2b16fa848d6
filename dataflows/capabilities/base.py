"""One shape for every per-contact capability.

A capability (counters, orders, cart, sessions, windows, scoring, tags,
segments …) owns one *part* of a contact's state — a msgspec Struct, stored
in the contact's snapshot — and says, through the hooks below, how that
part changes and what it shows:

| hook       | when                                            | default   |
|------------|-------------------------------------------------|-----------|
| `apply`    | a client event of the contact, in stream order  | nothing   |
| `admin`    | an internal admin event (tags, lists)           | nothing   |
| `tick`     | its deadline (or another's) has passed          | nothing   |
| `merge`    | a visitor's part joins its known contact's      | nothing   |
| `evaluate` | once per changed contact per activation, with a view of all parts; may emit outputs | nothing |
| `due`      | after evaluation: its next deadline, if any     | None      |
| `render`   | its fields of the profile                       | none      |
| `retire`   | the contact ceases to exist (merged, purged)    | nothing   |

A new capability is one module with a `Capability` subclass plus one line
in the registry (`dataflows.capabilities.registry.CAPABILITIES`); the contact shard
loops over the registry for everything else — applying, merging,
snapshotting, scheduling and rendering.

Hooks that read the rest of the contact get a `ContactView`
(`dataflows.capabilities.view.StateView`); hooks that change a part get a
`Context` with the configuration in force and the event's times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import msgspec

from dataflows.rules.live_config import LiveConfig
from state.events import Event, InternalEvent

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView
    from dataflows.io.outputs import Output

P = TypeVar("P", bound=msgspec.Struct)


@dataclass(frozen=True)
class ContactSettings:
    """Deployment settings capabilities read (from `ATTIMO_*`)."""

    cart_idle_s: float = 30 * 60
    event_log_size: int = 30


@dataclass(slots=True)
class Context:
    """What a changing hook may read besides its own part; one per contact shard.

    The shard sets `at` (event time) and `received` before each `apply`, and
    `now` before each `tick` and `merge`. `counts` gathers counters for the
    dataflow's metrics (late events …), drained once per activation.
    """

    live: LiveConfig
    settings: ContactSettings = field(default_factory=ContactSettings)
    at: float = 0.0
    received: float = 0.0
    now: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, metric: str, amount: int = 1) -> None:
        """Add to a dataflow counter."""
        self.counts[metric] = self.counts.get(metric, 0) + amount


class Capability(Generic[P]):
    """Base of every capability; subclasses set `name` and `part` and override the hooks they need."""

    name: ClassVar[str]
    """The part's attribute on the contact state (unique in the registry)."""
    part: type[P]
    """The part's type: a default-constructible msgspec Struct (appended fields need defaults)."""

    def apply(self, part: P, event: Event, ctx: Context) -> None:
        """Fold one (de-duplicated) client event into the part."""

    def admin(self, part: P, event: InternalEvent, ctx: Context) -> None:
        """Fold one internal admin event into the part."""

    def tick(self, part: P, ctx: Context) -> None:
        """What the clock alone changes, at `ctx.now`."""

    def merge(self, into: P, other: P, ctx: Context) -> None:
        """Fold a visitor's part (`other`) into its known contact's (`into`)."""

    def evaluate(self, part: P, view: StateView) -> Sequence[Output]:
        """Derive what depends on the whole contact at `view.now`; outputs to emit."""
        return ()

    def due(self, part: P, view: StateView) -> float | None:
        """The earliest moment the part (or what it shows) changes with no new event."""
        return None

    def render(self, part: P, view: StateView) -> Mapping[str, Any]:
        """The part's fields of the profile (names of `state.profile.Profile`, else `extensions`)."""
        return {}

    def retire(self, part: P, contact_id: str, at: float) -> Sequence[Output]:
        """Outputs owed when the contact ceases to exist (merged into another, or purged)."""
        return ()


def overrides(capability: Capability[Any], hook: str) -> bool:
    """Whether the capability implements `hook` (the shard skips the others)."""
    return getattr(type(capability), hook) is not getattr(Capability, hook)
