"""The ingest's trust marks: what each event's ids are worth, decided once, before the stream."""

from __future__ import annotations

import orjson

from api.decisions.identity import IdentityVerifier, sign_user_id
from api.identity_mark import NEEDS_ANONYMOUS_ID, UNPROVED_ALIAS, mark_batch, sender_of
from state.events import BROWSER, SERVER, VERIFIED
from state.validation import DecodedBatch, EventValidator, Limits
from state.writekeys import WriteKey
from tests.factories import FIXED_NOW

validator = EventValidator(Limits())
SITE_SECRET = "idsec_site"
PUBLIC = WriteKey("attimo_pk_x", ["https://shop.example"], kind="public", identity_secrets=[SITE_SECRET])
SECRET = WriteKey("attimo_sk_x…", [], kind="secret")
verifier = IdentityVerifier(["global-secret"])


def decoded(*raws: object) -> DecodedBatch:
    return validator.validate_all([orjson.dumps(r) if not isinstance(r, bytes) else r for r in raws], FIXED_NOW)


class TestMarks:
    """Secret key: server; a valid userHash or a trusting key: verified; anything else from a browser: browser."""

    def test_a_browser_event_is_proved_only_by_the_users_signature(self) -> None:
        batch = decoded(
            {"type": "identify", "anonymousId": "a", "userId": "u1", "context": {"userHash": "0" * 64, "ip": "x"}},
            {"type": "identify", "anonymousId": "a", "userId": "u1",
             "context": {"userHash": sign_user_id(SITE_SECRET, "u1")}},
            {"type": "identify", "anonymousId": "a", "userId": "u1",
             "context": {"userHash": sign_user_id("global-secret", "u1")}},
            {"type": "page", "anonymousId": "a"})
        proved = mark_batch(batch, sender_of(PUBLIC, False), verifier)
        assert [e.trust for e in batch.accepted] == [BROWSER, VERIFIED, VERIFIED, BROWSER]
        assert proved == {"u1"}
        # The hash never goes on; the rest of the context does.
        assert [e.context for e in batch.accepted][:3] == [{"ip": "x"}, {}, {}]

    def test_the_secret_key_and_a_trusting_key_are_believed(self) -> None:
        batch = decoded({"type": "identify", "userId": "u1"})
        mark_batch(batch, sender_of(SECRET, False), verifier)
        assert batch.accepted[0].trust == SERVER
        batch = decoded({"type": "identify", "anonymousId": "a", "userId": "u1"})
        mark_batch(batch, sender_of(PUBLIC, True), verifier)
        assert batch.accepted[0].trust == VERIFIED

    def test_a_clients_own_mark_is_discarded(self) -> None:
        batch = decoded({"type": "identify", "anonymousId": "a", "userId": "u1", "trust": "server"})
        assert batch.accepted[0].trust is None
        mark_batch(batch, sender_of(PUBLIC, False), verifier)
        assert batch.accepted[0].trust == BROWSER

    def test_refusals_keep_their_index_among_the_validators(self) -> None:
        """An unproved userId-only event or alias is refused at its own position in the batch."""
        batch = decoded({"type": "page", "anonymousId": "a"},
                        {"type": "track"},  # refused by validation: no event name, no id
                        {"type": "track", "userId": "u1", "event": "x"},
                        {"type": "alias", "previousId": "a", "userId": "u1"},
                        {"type": "page", "anonymousId": "b"})
        mark_batch(batch, sender_of(PUBLIC, False), verifier)
        rejected = {r.index: r.error for r in batch.rejected}
        assert sorted(rejected) == [1, 2, 3]
        assert (rejected[2], rejected[3]) == (NEEDS_ANONYMOUS_ID, UNPROVED_ALIAS)
        assert [e.anonymous_id for e in batch.accepted] == ["a", "b"]
