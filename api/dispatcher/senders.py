"""Senders: one per kind of action, all answering an attempt the same way, so retries are handled once.

A sender makes one attempt to deliver one action and says how it went:
`delivered`; `retry` (worth trying again later — a timeout, a 5xx, a
connection refused — optionally no sooner than `retry_after_s`); or
`permanent` (trying again cannot help — the endpoint is disabled or gone,
no SMTP server is configured — so the action is dead-lettered now). The
dispatcher owns everything else: order per contact, the schedule, the
attempt timeout, dead letters, counters.

Webhooks are sent by `api.dispatcher.webhook.WebhookSender`; e-mails by
`EmailSender` below, which calls `api.email.send_email` (SMTP). A new
channel is one more Sender and one more entry in
`api.dispatcher.service.build_senders`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from api.email import send_email
from state.actions import Action
from state.settings import Settings

Outcome = Literal["delivered", "retry", "permanent"]


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How one attempt went (`status`: the HTTP status or SMTP reply code, when there was one)."""

    outcome: Outcome
    reason: str
    status: int | None = None
    retry_after_s: float | None = None


class Sender(Protocol):
    """Makes one attempt to deliver an action."""

    async def send(self, action: Action) -> AttemptResult:
        """Try once; never raise for a delivery failure (say it in the result)."""
        ...


class Senders:
    """The sender for each kind of action."""

    def __init__(self, by_kind: Mapping[str, Sender]) -> None:
        self._by_kind = dict(by_kind)

    async def send(self, action: Action) -> AttemptResult:
        """One attempt by the sender of the action's kind (permanent failure when there is none)."""
        sender = self._by_kind.get(action.kind)
        if sender is None:
            return AttemptResult("permanent", f"this dispatcher has no sender for {action.kind!r} actions")
        return await sender.send(action)


class EmailSender:
    """E-mail actions through SMTP: `api.email.send_email`, its `EmailResult` read as an attempt's result."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, action: Action) -> AttemptResult:
        """One SMTP attempt (the same message, same Message-ID, at every attempt)."""
        result = await send_email(action, self._settings)
        return AttemptResult(result.outcome, result.reason, result.smtp_code)
