"""Actions: what workflows make the outside world do, and the durable outbox they wait in.

The dataflow decides an action (a webhook to the shop's e-mail / SMS / CRM
tool, or an e-mail Attimo sends itself) and appends it to the outbox — one
Redis stream per outbox shard, `keys.outbox(shard)`, sharded by contact so
one dispatcher owns a contact's actions and delivers them in order. The
dispatcher (`attimo dispatcher`) sends each action and records its outcome.

Exactly once: an action's `id` is derived from (contact, workflow, version,
step, trigger occurrence), so the dataflow's replay after a crash decides
the same ids, and the outbox accepts each id once (`keys.outbox_seen(id)`,
set with the append, atomically). The id is the webhook's `webhook-id` and
the e-mail's `Message-ID`: the receiver's idempotency key.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from state.profile import CartLine

OUTBOX_FIELD: Final = b"a"

ActionKind = Literal["webhook", "email"]
Outcome = Literal["delivered", "retrying", "dead", "held", "skipped"]


class ActionContact(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who an action is about, as the receiver needs it."""

    contact_id: str
    user_id: str | None = None
    anonymous_ids: list[str] = msgspec.field(default_factory=list)
    email: str | None = None
    traits: dict[str, Any] = msgspec.field(default_factory=dict)


class ProductInterest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A product the contact showed interest in lately: how many of its events named it (views, adds …)
    within the longest window, and its category."""

    product_id: str
    events: int
    category: str | None = None


class EmailContent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An e-mail Attimo sends itself (SMTP): subject and bodies already rendered for the contact."""

    to: str
    subject: str
    text: str
    html: str | None = None


class Action(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One effect a workflow decided, once.

    `endpoint` names the webhook endpoint (`webhook`); `email` holds the
    message (`email`). `channel` (e-mail, sms, crm, push …) is what the
    per-contact frequency cap counted it under. What the receiver needs to
    write the message: `cart` (the lines now), `products` (the ones the
    contact viewed most within the longest window — browse abandonment),
    `trigger` (the properties of the event that entered the contact into
    the workflow: an order's products and categories for a post-purchase
    e-mail), and the step's own `payload` (template, coupon …).
    """

    id: str
    kind: ActionKind
    channel: str
    contact: ActionContact
    workflow_id: str
    workflow_version: int
    step_id: str
    created_at: float
    endpoint: str | None = None
    branch: str | None = None
    cart: list[CartLine] = msgspec.field(default_factory=list)
    products: list[ProductInterest] = msgspec.field(default_factory=list)
    trigger: dict[str, Any] = msgspec.field(default_factory=dict)
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    email: EmailContent | None = None


class WebhookBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The JSON body of a webhook: the Standard Webhooks shape (`type`, `timestamp`, `data`)."""

    type: str
    timestamp: str
    data: Action


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Action)


def encode_action(action: Action) -> bytes:
    """An action as stored in the outbox."""
    return _encoder.encode(action)


def decode_action(raw: bytes) -> Action:
    """An outbox entry's action."""
    return _decoder.decode(raw)
