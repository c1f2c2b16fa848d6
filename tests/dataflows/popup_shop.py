"""A visitor shard and a contact shard driven with a fixed clock, for popup and decision-document tests."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from dataflows.io.outputs import DecisionDocWrite, DecisionPush, Handoff, Routed, ShardControl, TallyWrite
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.stages import ContactConfig, contact_logic, visitor_logic
from state import keys
from state.campaigns import Campaign, Variant
from state.config import ActiveConfig
from state.decisions import DecisionDoc, PopupContent, decode_doc
from state.events import Identify, Page, Track
from state.workflows import MessagingPolicy
from tests.factories import FIXED_NOW

T0 = FIXED_NOW.timestamp()
NO_CAPS = MessagingPolicy(quiet_hours=None, caps={})


def campaign(campaign_id: str = "promo", *variants: str, **fields: Any) -> Campaign:
    """A campaign with the given variants (one called `a` by default), each with a title naming it."""
    arms = [Variant(id=v, content=PopupContent(title=f"{campaign_id} {v}")) for v in variants or ("a",)]
    return Campaign(id=campaign_id, variants=arms, **fields)


def at(seconds: float) -> Any:
    return FIXED_NOW + timedelta(seconds=seconds)


def event(seconds: float, who: str, name: str, user_id: str | None = None, context: dict[str, Any] | None = None,
          **props: Any) -> Track:
    moment = at(seconds)
    return Track(message_id=str(uuid.uuid4()), anonymous_id=who, user_id=user_id, event=name, timestamp=moment,
                 received_at=moment, properties=props, context=context or {})


def page_view(seconds: float, who: str, url: str = "https://shop.example/", **context: Any) -> Page:
    moment = at(seconds)
    return Page(message_id=str(uuid.uuid4()), anonymous_id=who, timestamp=moment, received_at=moment,
                properties={"url": url}, context=context)


def identify(seconds: float, who: str, user_id: str) -> Identify:
    moment = at(seconds)
    return Identify(message_id=str(uuid.uuid4()), anonymous_id=who, user_id=user_id, timestamp=moment,
                    received_at=moment)


def shown(seconds: float, who: str, campaign_id: str = "promo", variant: str = "a", what: str = "Shown",
          **more: Any) -> Track:
    return event(seconds, who, f"Popup {what}", campaign=campaign_id, variant=variant, **more)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Shop:
    """One visitor shard and one contact shard under a configuration with campaigns (and maybe workflows)."""

    def __init__(self, *campaigns: Campaign, messaging: MessagingPolicy = NO_CAPS, **config: Any) -> None:
        self.clock = Clock()
        self.loader = ConfigLoader(None)
        self.loader.put(ActiveConfig(version=1, campaigns=list(campaigns), messaging=messaging, **config))
        settings = ContactConfig(cart_idle_s=3600)
        self.visitors = visitor_logic(settings, self.loader, self.clock)(None)
        self.contacts = contact_logic(settings, self.loader, self.clock)(None)
        self.visitors.on_batch([ShardControl(1, "0")])
        self.contacts.on_batch([ShardControl(1, "0")])
        self.outputs: list[Any] = []

    def send(self, *events: Any) -> list[Any]:
        """Events in one activation; the clock moves to the latest event's time first."""
        self.clock.now = max([self.clock.now, *(e.timestamp.timestamp() for e in events)])
        out, _ = self.visitors.on_batch(list(events))
        onward: list[Routed | Handoff | ShardControl] = [o for o in out if isinstance(o, Routed | Handoff)]
        more, _ = self.contacts.on_batch(onward) if onward else ([], None)
        result = [*out, *more]
        self.outputs += result
        return result

    def at(self, seconds: float) -> list[Any]:
        """Let the clock reach T0 + seconds, firing every timer on the way."""
        out: list[Any] = []
        target = T0 + seconds
        for logic in (self.visitors, self.contacts):
            while (due := logic.notify_at()) is not None and due.timestamp() <= target:
                self.clock.now = max(self.clock.now, due.timestamp())
                fired, _ = logic.on_notify()
                out += list(fired)
        self.clock.now = target
        self.outputs += out
        return out

    def doc(self, any_id: str) -> DecisionDoc | None:
        """The document stored under `any_id` now (the last one written there)."""
        written = [o for o in self.outputs if isinstance(o, DecisionDocWrite) and any_id in o.ids]
        return decode_doc(written[-1].doc_json) if written else None

    def offered(self, any_id: str) -> list[tuple[str, str]]:
        """(campaign, variant) of the popups the document under `any_id` offers now."""
        doc = self.doc(any_id)
        return [] if doc is None else [(p.campaign, p.variant) for p in doc.popups]

    def stats(self, campaign_id: str) -> dict[str, int]:
        """A campaign's counters as the API sums them from the shards' totals (last value per field)."""
        fields: dict[str, int] = {}
        for o in self.outputs:
            if isinstance(o, TallyWrite) and o.key == keys.campaign_stats(campaign_id):
                fields[o.field] = o.value
        totals: dict[str, int] = defaultdict(int)
        for name, value in fields.items():
            totals[name.split(":", 2)[2]] += value
        return dict(totals)

    def pushes(self, outputs: Iterable[Any]) -> list[DecisionPush]:
        return [o for o in outputs if isinstance(o, DecisionPush)]
