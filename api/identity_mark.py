"""Marks how far each incoming event is trusted, before it enters the stream.

The write key in a page is public, so a browser event's `userId` is only a
claim. The ingest (HTTP and websocket alike) decides once, here, what each
event's ids are worth and writes it in the event's `trust` field
(`state.events.Trust`), which the client cannot set (validation clears it):

- sent with the site's secret key (HTTP, the shop's back end): `server`;
- from a browser, carrying `context.userHash` — the hex HMAC-SHA256 of its
  `userId` under the site's identity secret (or `ATTIMO_IDENTITY_SECRETS`),
  the same signature decisions ask for — or sent with a key that trusts
  browser identity (the old behaviour, a per-key setting): `verified`;
- any other browser event: `browser`. The dataflow keeps such an event on
  the anonymous visitor (no merge into the user, no change of the user's
  traits). A browser event with a `userId` and no `anonymousId` would have
  nowhere to go, and an unproved `alias` says nothing else: both are
  refused with the reason.

`context.userHash` is always removed: a signature has no business in the
stream, the profile or a webhook body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec

from api.decisions.identity import IdentityVerifier
from state.events import BROWSER, SERVER, VERIFIED, Alias, Event, Trust
from state.settings import Settings
from state.validation import DecodedBatch, Rejection
from state.writekeys import WriteKey

USER_HASH: Final = "userHash"
"""The `context` field that carries the user id's signature (`attimo('identify', id, traits, {userHash})`)."""
NEEDS_ANONYMOUS_ID: Final = ("a browser event with a `userId` needs its `anonymousId`, or `context.userHash` "
                             "(the user id's signature) to be believed")
UNPROVED_ALIAS: Final = "a browser `alias` needs `context.userHash` (the user id's signature) to be believed"


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a request: its write key, and whether it used it as a server (the secret key)."""

    key: WriteKey
    trust_browsers: bool

    @property
    def server(self) -> bool:
        """Whether the events came with the site's secret key."""
        return self.key.kind == "secret"


def _mark_one(event: Event, sender: Sender, verifier: IdentityVerifier) -> tuple[Event | str, bool]:
    """The event marked (or why it is refused), and whether its userId was proved by its signature."""
    context = event.context
    given = context.get(USER_HASH) if context else None
    if given is not None:
        context = {k: v for k, v in context.items() if k != USER_HASH}
    trust: Trust
    signed = False
    if sender.server:
        trust = SERVER
    elif sender.trust_browsers:
        trust = VERIFIED
    elif event.user_id is not None and isinstance(given, str) and verifier.valid(
            event.user_id, given, sender.key.identity_secrets):
        trust, signed = VERIFIED, True
    else:
        trust = BROWSER
        if isinstance(event, Alias):
            return UNPROVED_ALIAS, False
        if event.user_id is not None and event.anonymous_id is None:
            return NEEDS_ANONYMOUS_ID, False
    if given is None:
        return msgspec.structs.replace(event, trust=trust), signed
    return msgspec.structs.replace(event, trust=trust, context=context), signed


def mark_batch(decoded: DecodedBatch, sender: Sender, verifier: IdentityVerifier) -> set[str]:
    """Mark every accepted event in place (refusals move to `rejected`); the user ids proved by signature."""
    if not decoded.accepted:
        return set()
    rejected_at = {r.index for r in decoded.rejected}
    positions = [i for i in range(len(decoded.accepted) + len(decoded.rejected)) if i not in rejected_at]
    kept: list[Event] = []
    proved_ids: set[str] = set()
    refused: list[Rejection] = []
    for position, event in zip(positions, decoded.accepted, strict=True):
        marked, signed = _mark_one(event, sender, verifier)
        if isinstance(marked, str):
            refused.append(Rejection(position, marked))
            continue
        if signed and marked.user_id is not None:
            proved_ids.add(marked.user_id)
        kept.append(marked)
    decoded.accepted = kept
    if refused:
        decoded.rejected = sorted([*decoded.rejected, *refused], key=lambda r: r.index)
    return proved_ids


def sender_of(key: WriteKey, default_trust: bool) -> Sender:
    """The sender for a resolved key, with the trust setting that applies to it."""
    return Sender(key, key.trusts_browser_identity(default_trust))



UNKNOWN_SENDER: Final = Sender(WriteKey("", []), trust_browsers=False)
"""Whom to assume when a socket's key was not recorded: a stranger's browser (never trusted by default)."""


def settings_trust(settings: Settings) -> bool:
    """The default trust of browser identity for keys that do not set their own."""
    return settings.trust_browser_identity
