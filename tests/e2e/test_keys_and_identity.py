"""Keys, admin tokens and verified identity through the real stack (`attimo run`: API, gateway, dataflow, Redis).

A site made through the admin API is strict: its public key's browser
events claim a user id only with the user's signature (`context.userHash`),
its secret key's events (the shop's back end) are trusted.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from api.decisions.identity import sign_user_id
from tests.e2e.access import (
    GLOBAL_SECRET,
    OTHER_SHOP,
    SHOP,
    access_stack,
    batch,
    call,
    call_until,
    make_site,
    make_token,
    profile,
    redis_holds,
    wait_profile,
    ws_close_code,
    ws_frame,
)
from tests.e2e.conftest import Stack
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with access_stack(tmp_path_factory.mktemp("access")) as running:
        yield running


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def page(anonymous_id: str) -> dict[str, Any]:
    return {"type": "page", "anonymousId": anonymous_id, "name": "home"}


class TestWriteKeys:
    """Sites' keys: made, listed without secrets, rotated with a grace period, revoked, limited by origin."""

    def test_a_site_gets_a_public_and_a_secret_key_and_lists_show_no_secret(self, stack: Stack) -> None:
        """The secret key and identity secret are shown once; the list and Redis never hold them."""
        site = make_site(stack, uid("site"), [SHOP])
        public, secret, identity = site["public_key"], site["secret_key"], site["identity_secret"]
        assert public.startswith("attimo_pk_") and secret.startswith("attimo_sk_")
        status, listed = call(stack, "GET", "/v1/admin/keys", token=stack.admin_token)
        assert status == 200
        mine = [k for k in listed["data"] if k["site"] == site["site"]["id"]]
        assert sorted(k["kind"] for k in mine) == ["public", "secret"]
        assert secret not in str(listed) and identity not in str(listed)
        assert [k["key"] for k in mine if k["kind"] == "public"] == [public]
        assert redis_holds(stack, secret) == []
        status, sites = call(stack, "GET", "/v1/admin/sites", token=stack.admin_token)
        assert status == 200 and identity not in str(sites)

    def test_origins_decide_where_the_public_key_works_and_the_secret_key_never_in_a_browser(
            self, stack: Stack) -> None:
        """Public key: its origins only; secret key: server-side only (no Origin)."""
        site = make_site(stack, uid("site"), [SHOP])
        public, secret = site["public_key"], site["secret_key"]
        assert batch(stack, public, [page(uid("v"))], origin=SHOP)[0] == 200
        status, body = batch(stack, public, [page(uid("v"))], origin=OTHER_SHOP)
        assert (status, body["error"]) == (403, f"origin '{OTHER_SHOP}' is not allowed for this write key")
        assert ws_close_code(stack, public, OTHER_SHOP) == 4403
        assert batch(stack, secret, [page(uid("v"))])[0] == 200
        status, body = batch(stack, secret, [page(uid("v"))], origin=SHOP)
        assert status == 403 and "secret write key" in body["error"]
        # New origins through the API take effect within the key cache's TTL.
        public_id = next(k["id"] for k in site["keys"] if k["kind"] == "public")
        status, changed = call(stack, "PATCH", f"/v1/admin/keys/{public_id}", {"origins": [SHOP, OTHER_SHOP]},
                               token=stack.admin_token)
        assert status == 200 and changed["origins"] == [SHOP, OTHER_SHOP]
        wait_for(lambda: batch(stack, public, [page(uid("v"))], origin=OTHER_SHOP)[0] == 200, 5,
                 "the new origin to be allowed", interval=0.1)

    def test_a_rotated_key_works_through_its_grace_period_then_not(self, stack: Stack) -> None:
        """Old and new both work until the grace period ends; then the old one is unknown."""
        site = make_site(stack, uid("site"), [SHOP])
        old = site["public_key"]
        key_id = next(k["id"] for k in site["keys"] if k["kind"] == "public")
        status, rotated = call(stack, "POST", f"/v1/admin/keys/{key_id}/rotate", {"grace_s": 2},
                               token=stack.admin_token)
        assert status == 200
        new = rotated["key"]
        assert new != old and rotated["record"]["origins"] == [SHOP]
        assert batch(stack, old, [page(uid("v"))], origin=SHOP)[0] == 200
        assert batch(stack, new, [page(uid("v"))], origin=SHOP)[0] == 200
        listed = call(stack, "GET", "/v1/admin/keys", token=stack.admin_token)[1]["data"]
        assert next(k for k in listed if k["id"] == key_id)["expires_at"] is not None
        status, body = call_until(lambda: (r := batch(stack, old, [page(uid("v"))], origin=SHOP))[0] == 401 and r,
                                  6, "the old key to expire")
        assert body["error"] == "unknown write key"
        assert batch(stack, new, [page(uid("v"))], origin=SHOP)[0] == 200

    def test_a_revoked_key_is_refused(self, stack: Stack) -> None:
        """DELETE /v1/admin/keys/{id}: HTTP 401 and websocket 4401 within the cache's TTL."""
        site = make_site(stack, uid("site"), [SHOP])
        key_id = next(k["id"] for k in site["keys"] if k["kind"] == "public")
        assert call(stack, "DELETE", f"/v1/admin/keys/{key_id}", token=stack.admin_token)[0] == 204
        wait_for(lambda: batch(stack, site["public_key"], [page(uid("v"))], origin=SHOP)[0] == 401, 3,
                 "the revoked key to be refused", interval=0.1)
        assert ws_close_code(stack, site["public_key"], SHOP) == 4401
        assert call(stack, "DELETE", f"/v1/admin/keys/{key_id}", token=stack.admin_token)[0] == 404

    def test_the_dev_key_keeps_working(self, stack: Stack) -> None:
        """ATTIMO_WRITE_KEY is listed as `dev` and takes events as before."""
        listed = call(stack, "GET", "/v1/admin/keys", token=stack.admin_token)[1]["data"]
        assert any(k["id"] == "dev" and k["key"] == stack.write_key for k in listed)
        assert batch(stack, stack.write_key, [page(uid("v"))])[0] == 200


class TestAdminTokens:
    """Several admin tokens, each with scopes, stored hashed, revocable."""

    def test_a_read_token_reads_but_cannot_write_config_make_keys_or_erase(self, stack: Stack) -> None:
        """Every refusal is a 403 naming the scope that is missing."""
        reader = make_token(stack, ["contacts:read"])["token"]
        assert call(stack, "GET", "/v1/admin/config", token=reader)[0] == 200
        for method, path, body, scope in [
                ("PUT", "/v1/admin/segments/s1", {"name": "x"}, "config:write"),
                ("POST", "/v1/admin/sites/evil", {"origins": [SHOP]}, "keys:manage"),
                ("POST", "/v1/admin/tokens", {"scopes": ["admin"]}, "keys:manage"),
                ("GET", "/v1/admin/keys", None, "keys:manage"),
                ("POST", "/v1/admin/contacts/someone/erase", {}, "contacts:erase")]:
            status, answer = call(stack, method, path, body, token=reader)
            assert (status, answer["error"]) == (403, f"this admin token lacks the scope {scope!r}"), path

    def test_a_token_cannot_grant_scopes_it_lacks(self, stack: Stack) -> None:
        """A `keys:manage` token may make tokens, but not an `admin` one."""
        keeper = make_token(stack, ["keys:manage"])["token"]
        assert make_token(stack, ["keys:manage"], token=keeper)["record"]["scopes"] == ["keys:manage"]
        status, body = call(stack, "POST", "/v1/admin/tokens", {"scopes": ["admin"]}, token=keeper)
        assert (status, body["error"]) == (403, "scopes: cannot grant ['admin'], which this token does not hold")

    def test_a_revoked_token_is_refused_and_tokens_are_stored_hashed(self, stack: Stack) -> None:
        """Revocation is immediate; no Redis key or value holds a token, the list shows hints."""
        made = make_token(stack, ["contacts:read", "config:write"])
        token, token_id = made["token"], made["record"]["id"]
        assert redis_holds(stack, token) == []
        listed = call(stack, "GET", "/v1/admin/tokens", token=stack.admin_token)[1]
        assert token not in str(listed) and any(t["id"] == token_id for t in listed["data"])
        assert call(stack, "GET", "/v1/admin/config", token=token)[0] == 200
        assert call(stack, "DELETE", f"/v1/admin/tokens/{token_id}", token=stack.admin_token)[0] == 204
        status, body = call(stack, "GET", "/v1/admin/config", token=token)
        assert (status, body["error"]) == (401, "admin bearer token required")

    def test_a_session_carries_its_tokens_scopes_and_ends_with_it(self, stack: Stack) -> None:
        """A read token's dashboard session reads but cannot write; revoking the token ends the session."""
        made = make_token(stack, ["contacts:read"])
        cookie = login(stack, made["token"])
        same_site = {"Cookie": cookie, "Origin": stack.api_url}
        assert call(stack, "GET", "/v1/admin/config", headers=same_site)[0] == 200
        status, body = call(stack, "PUT", "/v1/admin/segments/s1", {"name": "x"}, headers=same_site)
        assert (status, body["error"]) == (403, "this admin token lacks the scope 'config:write'")
        call(stack, "DELETE", f"/v1/admin/tokens/{made['record']['id']}", token=stack.admin_token)
        assert call(stack, "GET", "/v1/admin/config", headers=same_site)[0] == 401

    def test_the_dev_token_keeps_every_scope(self, stack: Stack) -> None:
        """ATTIMO_ADMIN_TOKEN reads, writes and manages keys."""
        assert call(stack, "GET", "/v1/admin/tokens", token=stack.admin_token)[0] == 200
        assert call(stack, "GET", "/v1/admin/config", token=stack.admin_token)[0] == 200


def login(stack: Stack, token: str) -> str:
    """Log in to the dashboard with `token` as a browser would; the session cookie (`name=value`)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(stack.api_url + "/dashboard/login", method="POST",
                                     data=urllib.parse.urlencode({"token": token}).encode(),
                                     headers={"Origin": stack.api_url,
                                              "Content-Type": "application/x-www-form-urlencoded"})
    try:
        opener.open(request, timeout=5)
        raise AssertionError("the login did not redirect")
    except urllib.error.HTTPError as answer:
        assert answer.code == 303, answer.read()
        cookie = answer.headers["set-cookie"]
    return str(cookie.split(";", 1)[0])


class TestVerifiedIdentity:
    """A browser's claim to a user id merges and changes traits only with the user's signature."""

    def victim(self, stack: Stack, site: dict[str, Any]) -> str:
        """A user who signed up: the shop's back end identified them with the secret key."""
        user, phone = uid("user"), uid("phone")
        # A product view gives the user a decision document (a contact with none answers like a stranger).
        status, _ = batch(stack, site["secret_key"], [
            {"type": "identify", "anonymousId": phone, "userId": user,
             "traits": {"email": f"{user}@example.com", "name": "Vera"}},
            {"type": "track", "anonymousId": phone, "userId": user, "event": "Product Viewed",
             "properties": {"product_id": "mug-1"}}])
        assert status == 200
        wait_profile(stack, user, lambda p: p.email == f"{user}@example.com", "the victim's profile")
        return user

    def test_the_takeover_is_refused(self, stack: Stack) -> None:
        """The public key's browser identifies as the victim with its own e-mail: nothing of the victim changes."""
        site = make_site(stack, uid("site"), [SHOP])
        user = self.victim(stack, site)
        attacker = uid("attacker")
        reply = ws_frame(stack, site["public_key"], [
            {"type": "identify", "anonymousId": attacker, "userId": user,
             "traits": {"email": "evil@example.com", "name": "Mallory"}},
            {"type": "track", "anonymousId": attacker, "userId": user, "event": "Product Viewed",
             "properties": {"product_id": "p1"}}])
        assert (reply["accepted"], reply["rejected"]) == (2, [])
        kept = wait_profile(stack, attacker, lambda p: p.traits.get("email") == "evil@example.com",
                            "the attempt kept on the attacker's own visitor")
        assert kept.user_id is None
        victim = profile(stack, user)
        assert victim is not None
        assert (victim.email, victim.traits["name"]) == (f"{user}@example.com", "Vera")
        assert attacker not in victim.anonymous_ids
        # The attacker's decisions are their visitor's; the victim's need the victim's signature.
        assert call(stack, "GET", f"/v1/decisions/{attacker}?key={site['public_key']}")[0] == 200
        status, body = call_until(
            lambda: (r := call(stack, "GET", f"/v1/decisions/{user}?key={site['public_key']}"))[0] != 200 and r,
            10, "the victim's decision document")
        assert status == 401 and "signature" in body["error"]
        assert stack.redis.client().get(f"attimo:alias:{{{attacker}}}") is None

    def test_a_signed_identify_merges(self, stack: Stack) -> None:
        """`context.userHash` (HMAC-SHA256 of the user id with the site's identity secret) proves the claim."""
        site = make_site(stack, uid("site"), [SHOP])
        user = self.victim(stack, site)
        laptop = uid("laptop")
        user_hash = sign_user_id(site["identity_secret"], user)
        reply = ws_frame(stack, site["public_key"], [
            {"type": "identify", "anonymousId": laptop, "userId": user, "traits": {"plan": "gold"},
             "context": {"userHash": user_hash}}])
        assert reply["accepted"] == 1
        merged = wait_profile(stack, user, lambda p: laptop in p.anonymous_ids, "the signed device to merge")
        assert merged.traits["plan"] == "gold"
        # The hash never reaches the stream.
        assert redis_holds(stack, user_hash) == []

    def test_the_global_identity_secret_also_signs(self, stack: Stack) -> None:
        """ATTIMO_IDENTITY_SECRETS (what decisions verify) is accepted as well."""
        site = make_site(stack, uid("site"), [SHOP])
        user = self.victim(stack, site)
        tablet = uid("tablet")
        batch(stack, site["public_key"], [{"type": "identify", "anonymousId": tablet, "userId": user,
                                           "context": {"userHash": sign_user_id(GLOBAL_SECRET, user)}}],
              origin=SHOP)
        wait_profile(stack, user, lambda p: tablet in p.anonymous_ids, "the globally signed device to merge")

    def test_a_server_side_identify_merges(self, stack: Stack) -> None:
        """An identify sent with the secret key (HTTP Basic) needs no signature."""
        site = make_site(stack, uid("site"), [SHOP])
        user = self.victim(stack, site)
        device = uid("device")
        assert batch(stack, site["secret_key"], [{"type": "identify", "anonymousId": device, "userId": user,
                                                  "traits": {"tier": "vip"}}])[0] == 200
        merged = wait_profile(stack, user, lambda p: device in p.anonymous_ids, "the server's identify to merge")
        assert merged.traits["tier"] == "vip"

    def test_unverified_traits_never_overwrite_verified_ones(self, stack: Stack) -> None:
        """The signed-in device later sends an identify without its hash: only a missing trait is filled."""
        site = make_site(stack, uid("site"), [SHOP])
        user = self.victim(stack, site)
        laptop = uid("laptop")
        ws_frame(stack, site["public_key"], [{"type": "identify", "anonymousId": laptop, "userId": user,
                                              "context": {"userHash": sign_user_id(site["identity_secret"], user)}}])
        wait_profile(stack, user, lambda p: laptop in p.anonymous_ids, "the signed device to merge")
        ws_frame(stack, site["public_key"], [{"type": "identify", "anonymousId": laptop, "userId": user,
                                              "traits": {"email": "typo@example.com", "city": "Lyon"}}])
        after = wait_profile(stack, user, lambda p: p.traits.get("city") == "Lyon", "the unverified identify")
        assert after.email == f"{user}@example.com"

    def test_a_key_that_trusts_browsers_keeps_the_old_behaviour(self, stack: Stack) -> None:
        """`trust_browser_identity: true` on a site: an unsigned browser identify merges, as before."""
        site = make_site(stack, uid("site"), [SHOP], trust_browser_identity=True)
        user = self.victim(stack, site)
        device = uid("device")
        ws_frame(stack, site["public_key"], [{"type": "identify", "anonymousId": device, "userId": user}])
        wait_profile(stack, user, lambda p: device in p.anonymous_ids, "the trusted browser's identify to merge")

    def test_a_browser_event_with_only_a_user_id_is_refused_with_the_reason(self, stack: Stack) -> None:
        """Nowhere to keep it but the user it cannot prove: a 400 naming what is missing."""
        site = make_site(stack, uid("site"), [SHOP])
        status, body = batch(stack, site["public_key"], [{"type": "track", "userId": "someone", "event": "x"}],
                             origin=SHOP)
        assert status == 400
        assert body["rejected"][0]["error"].startswith("a browser event with a `userId` needs its `anonymousId`")


def test_revoking_a_key_takes_effect_quickly(stack: Stack) -> None:
    """Bounded by the write-key cache TTL (0.3 s here), not by process restarts."""
    site = make_site(stack, uid("site"), [SHOP])
    key_id = next(k["id"] for k in site["keys"] if k["kind"] == "secret")
    assert batch(stack, site["secret_key"], [page(uid("v"))])[0] == 200
    started = time.monotonic()
    call(stack, "DELETE", f"/v1/admin/keys/{key_id}", token=stack.admin_token)
    wait_for(lambda: batch(stack, site["secret_key"], [page(uid("v"))])[0] == 401, 3, "the revoke", interval=0.05)
    assert time.monotonic() - started < 3
