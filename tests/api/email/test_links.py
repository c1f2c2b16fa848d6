"""Signed e-mail links: only Attimo can make one, and each is good for one purpose, contact and destination."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.email.errors import InvalidLinkError
from api.email.links import LinkClaims, LinkSigner, claims_for, link_secrets
from tests.api.email.conftest import email_action, mail_settings
from tests.state.event_strategies import fuzz_settings

CLAIMS = LinkClaims(action_id="act-1", contact_id="user-7", known=True, workflow_id="abandoned-cart",
                    workflow_version=2, step_id="reminder-1", branch="B")
SIGNER = LinkSigner([b"secret-one"])


class TestTokens:
    """A token verifies only for what it was signed for."""

    def test_a_signed_token_verifies_and_returns_its_claims(self) -> None:
        assert SIGNER.verify("open", SIGNER.sign("open", CLAIMS)) == CLAIMS
        assert claims_for(email_action(branch="B")) == LinkClaims(
            action_id="act-0001", contact_id="user-7", known=True, workflow_id="abandoned-cart",
            workflow_version=2, step_id="reminder-1", branch="B")

    def test_claims_say_whether_the_contact_is_known_and_by_which_user_id(self) -> None:
        """The user id is written only when it differs from the contact id, so links stay short."""
        known = claims_for(email_action(contact_id="user-7", user_id="user-7"))
        assert (known.user_id, known.other_user_id) == ("user-7", None)
        anonymous = claims_for(email_action(contact_id="anon-9", user_id=None))
        assert (anonymous.known, anonymous.user_id) == (False, None)
        odd = claims_for(email_action(contact_id="anon-7", user_id="user-7"))
        assert (odd.user_id, odd.other_user_id) == ("user-7", "user-7")

    def test_a_token_is_refused_for_another_purpose(self) -> None:
        """An open pixel's token cannot unsubscribe, and a click token cannot count an open."""
        with pytest.raises(InvalidLinkError):
            SIGNER.verify("unsubscribe", SIGNER.sign("open", CLAIMS))
        with pytest.raises(InvalidLinkError):
            SIGNER.verify("open", SIGNER.sign("click", CLAIMS, "https://shop.example/"))

    def test_a_click_token_covers_its_destination(self) -> None:
        token = SIGNER.sign("click", CLAIMS, "https://shop.example/cart")
        assert SIGNER.verify("click", token, "https://shop.example/cart") == CLAIMS
        for other in ("https://evil.example/", "https://shop.example/cart/", "https://shop.example/car", ""):
            with pytest.raises(InvalidLinkError):
                SIGNER.verify("click", token, other)

    def test_claims_cannot_be_swapped_between_tokens(self) -> None:
        """The MAC of one contact's link does not vouch for another contact's claims."""
        mine = SIGNER.sign("unsubscribe", CLAIMS)
        theirs = SIGNER.sign("unsubscribe", LinkClaims(action_id="act-2", contact_id="user-8", known=True,
                                                               workflow_id="w", workflow_version=1, step_id="s"))
        forged = theirs.split(".")[0] + "." + mine.split(".")[1]
        with pytest.raises(InvalidLinkError):
            SIGNER.verify("unsubscribe", forged)

    def test_another_secret_does_not_verify_and_rotation_keeps_old_links(self) -> None:
        """Tokens of another deployment are refused; listing the old secret second keeps its links working."""
        old = LinkSigner([b"old"]).sign("open", CLAIMS)
        with pytest.raises(InvalidLinkError):
            SIGNER.verify("open", old)
        rotated = LinkSigner(link_secrets(mail_settings(25, email_link_secret="new, old")))
        assert rotated.verify("open", old) == CLAIMS
        with pytest.raises(InvalidLinkError):
            LinkSigner([b"old"]).verify("open", rotated.sign("open", CLAIMS))

    def test_without_a_secret_the_key_is_derived_from_the_admin_token_and_is_not_it(self) -> None:
        (derived,) = link_secrets(mail_settings(25, email_link_secret="", admin_token="adm-1"))
        (other,) = link_secrets(mail_settings(25, email_link_secret="", admin_token="adm-2"))
        assert derived != other and b"adm-1" not in derived and len(derived) == 32

    @pytest.mark.parametrize("token", ["", ".", "abc", "abc.", ".abc", "!!!.???", "é.é", "a" * 5000 + ".b"])
    def test_garbage_is_refused(self, token: str) -> None:
        with pytest.raises(InvalidLinkError):
            SIGNER.verify("open", token)

    @fuzz_settings(300)
    @given(data=st.data())
    def test_any_change_to_a_token_is_refused(self, data: st.DataObject) -> None:
        """Replacing, inserting or deleting any one character of a valid token makes it invalid (one spelling only)."""
        token = SIGNER.sign("unsubscribe", CLAIMS)
        at = data.draw(st.integers(0, len(token) - 1))
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        change = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        char = data.draw(st.sampled_from(alphabet))
        if change == "replace":
            altered = token[:at] + char + token[at + 1:]
        elif change == "insert":
            altered = token[:at] + char + token[at:]
        else:
            altered = token[:at] + token[at + 1:]
        if altered != token:
            with pytest.raises(InvalidLinkError):
                SIGNER.verify("unsubscribe", altered)
