"""What the dispatcher and the admin API keep in Redis about delivery, one msgspec Struct each.

- `WebhookEndpoint`: where an endpoint's webhooks go and the secrets that
  sign them (written by the admin API, read by dispatchers);
- `EndpointHealth`: since when it has been failing, and whether it was
  disabled and why (written by dispatchers, cleared by the admin API);
- `DeliveryState`: one action's delivery so far, so that a restarted or
  another dispatcher continues its schedule instead of starting over;
- `DeadLetter`: an action whose delivery was given up, for operators.

Only `api` processes (the dispatcher and the API) read them, so they live
here rather than in `state/`; their JSON is documented in docs/protocol.md.
"""

from __future__ import annotations

from typing import Final

import msgspec

from state.actions import Action


class EndpointSecret(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One signing secret (`whsec_…`); a rotated-out one signs until `expires_at` (epoch seconds)."""

    secret: str
    created_at: float
    expires_at: float | None = None


class WebhookEndpoint(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A receiver of webhooks: its URL and its secrets, newest first."""

    id: str
    url: str
    secrets: list[EndpointSecret]
    created_at: float
    updated_at: float
    description: str = ""

    def signing_secrets(self, now: float) -> list[str]:
        """The secrets that sign a webhook sent at `now`: the current one and those still in their grace period."""
        return [s.secret for s in self.secrets if s.expires_at is None or s.expires_at > now]


class EndpointHealth(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How an endpoint has been answering: failing since when (no success since), disabled or not."""

    failing_since: float | None = None
    disabled_at: float | None = None
    disabled_reason: str | None = None

    @property
    def disabled(self) -> bool:
        """Whether webhooks to it are dead-lettered without being sent."""
        return self.disabled_at is not None


class DeliveryState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One action's delivery so far.

    `attempts` counts attempts begun: it is written before each attempt, so an
    attempt cut short by a crash still counts (a poison action cannot be
    retried forever). `failures` counts attempts that ended badly. `next_at`
    (epoch seconds) is when the next attempt may begin.
    """

    attempts: int = 0
    failures: int = 0
    next_at: float = 0.0
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None
    last_status: int | None = None
    last_error: str | None = None


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An action whose delivery was given up: why, after how many attempts, and the action itself.

    `target` is `webhook:<endpoint id>` or `email`.
    """

    id: str
    target: str
    reason: str
    attempts: int
    dead_at: float
    action: Action
    first_attempt_at: float | None = None
    last_status: int | None = None


_encoder: Final = msgspec.json.Encoder()
_endpoint: Final = msgspec.json.Decoder(WebhookEndpoint)
_state: Final = msgspec.json.Decoder(DeliveryState)
_letter: Final = msgspec.json.Decoder(DeadLetter)


def encode(record: msgspec.Struct) -> bytes:
    """Any of these records as stored."""
    return _encoder.encode(record)


def decode_endpoint(raw: bytes) -> WebhookEndpoint:
    """A stored endpoint."""
    return _endpoint.decode(raw)


def decode_state(raw: bytes) -> DeliveryState:
    """A stored delivery state."""
    return _state.decode(raw)


def decode_dead_letter(raw: bytes) -> DeadLetter:
    """A stored dead letter."""
    return _letter.decode(raw)


def decode_health(fields: dict[bytes, bytes]) -> EndpointHealth:
    """An endpoint's health from its hash (absent fields are absent facts)."""

    def number(name: bytes) -> float | None:
        value = fields.get(name)
        return float(value) if value is not None else None

    reason = fields.get(b"disabled_reason")
    return EndpointHealth(failing_since=number(b"failing_since"), disabled_at=number(b"disabled_at"),
                          disabled_reason=reason.decode() if reason is not None else None)


def target_of(action: Action) -> str:
    """What an action is counted under: `webhook:<endpoint>` or `email`."""
    return f"webhook:{action.endpoint}" if action.kind == "webhook" else action.kind
