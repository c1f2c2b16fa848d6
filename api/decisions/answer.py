"""A visitor's public decisions: one read, the identity check, and only what widgets need.

Shared by the decisions route (and its fast path) and by the gateway's
push, so a pushed `decision` frame is exactly what `GET /v1/decisions/{id}`
answers. The answer is built from the contact's `DecisionDoc` only: popups
already decided by the dataflow, strips composed from the products' lists,
and the fields some campaign marked public (`DecisionDoc.public`) — never
the profile, so segments, score or cart value cannot leak by accident.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final

from api.decisions.identity import IdentityVerifier
from api.decisions.read import DecisionRead, DocView
from api.decisions.reader import DecisionReader
from api.errors import IdentityRequiredError
from state.decisions import Seeds
from state.recommendations import compose_cards, strips_json

_EMPTY_SEEDS: Final = Seeds()


def public_decisions(read: DecisionRead, product: str | None = None) -> bytes:
    """The answer (a `PublicDecisions` in JSON) for what was read: popups, strips, public fields.

    Spliced from JSON already at hand — the document's popups and public
    fields as stored, each card's JSON as its held document keeps it — in
    `PublicDecisions`' field order, so it is byte for byte what encoding the
    struct gives (tests/api/decisions/test_answer.py compares the two).
    """
    doc = read.doc
    strips = strips_json(compose_cards(doc.seeds if doc is not None else _EMPTY_SEEDS, product,
                                       read.neighbours, read.trending))
    if doc is None:
        return b"".join((b'{"popups":[],"recommendations":', strips, b',"public":{}}'))
    return b"".join((b'{"popups":', doc.popups, b',"recommendations":', strips, b',"public":', doc.public, b"}"))


def authorize(doc: DocView | None, sig: str | None, verifier: IdentityVerifier,
              site_secrets: Sequence[str] = ()) -> None:
    """Raise unless whoever asks may see this contact's decisions.

    A contact with a user id needs that id's signature, whichever of its ids
    was asked for (an anonymous id that logged in belongs to the user now).
    A visitor with no state and an anonymous contact need none.
    """
    if doc is None or doc.user_id is None:
        return
    if not verifier.configured and not site_secrets:
        raise IdentityRequiredError("decisions of signed-in users are not served: no identity secret is "
                                    "configured (ATTIMO_IDENTITY_SECRETS)")
    verifier.check(doc.user_id, sig, site_secrets)


def is_email_lookup(any_id: str, doc: DocView) -> bool:
    """Whether `any_id` found this document through the contact's e-mail alias, not one of its own ids."""
    return "@" in any_id and any_id != doc.user_id and any_id != doc.contact_id


class DecisionService:
    """Reads and answers decisions for one process (the API or a gateway)."""

    def __init__(self, reader: DecisionReader, verifier: IdentityVerifier) -> None:
        self.reader = reader
        self.verifier = verifier

    async def read(self, any_id: str, product: str | None = None) -> DecisionRead:
        """Everything the answer for `any_id` needs, in one Redis round trip."""
        return await self.reader.read(any_id, product)

    async def answer(self, any_id: str, product: str | None, sig: str | None,
                     site_secrets: Sequence[str] = ()) -> bytes:
        """The JSON answer of `GET /v1/decisions/{any_id}` (raises the identity errors)."""
        read = await self.reader.read(any_id, product)
        if read.doc is not None and is_email_lookup(any_id, read.doc):
            # Look-ups by e-mail are never public: answered as for a stranger, so that an answer
            # does not even tell whether the address is a customer's (no 401 to tell it apart).
            read = dataclasses.replace(read, doc=None)
        authorize(read.doc, sig, self.verifier, site_secrets)
        return public_decisions(read, product)
