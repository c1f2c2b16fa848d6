"""A held-back attacker against the real stack: with a site's public key and a read-only admin token, and nothing more.

The shop (the dev admin token) sets up two sites and a customer who signed
up through its back end. The attacker then tries, in turn, to take the
customer over, to use the key from another site, to raise their own
powers, and to find out who the customers are — and each attempt is met by
a precise refusal, or changes nothing the customer owns.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from api.decisions.identity import sign_user_id
from tests.e2e.access import (
    OTHER_SHOP,
    SHOP,
    access_stack,
    batch,
    call,
    call_until,
    make_site,
    make_token,
    profile,
    wait_profile,
    ws_close_code,
    ws_frame,
)
from tests.e2e.conftest import Stack
from tests.e2e.test_keys_and_identity import login

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

VICTIM = "cust-4711"
VICTIM_EMAIL = "vera@example.com"


@dataclass
class World:
    """What the shop set up, and the little the attacker holds."""

    stack: Stack
    public_key: str  # site A's, from any of its pages
    read_token: str  # an operator's read-only admin token, leaked
    other_public_key: str  # site B's


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with access_stack(tmp_path_factory.mktemp("attacker")) as stack:
        site = make_site(stack, "shop-a", [SHOP])
        other = make_site(stack, "shop-b", [OTHER_SHOP])
        status, _ = batch(stack, site["secret_key"], [
            {"type": "identify", "anonymousId": "vera-phone", "userId": VICTIM,
             "traits": {"email": VICTIM_EMAIL, "name": "Vera"}},
            {"type": "track", "anonymousId": "vera-phone", "userId": VICTIM, "event": "Product Viewed",
             "properties": {"product_id": "mug-1"}}])
        assert status == 200
        wait_profile(stack, VICTIM, lambda p: p.email == VICTIM_EMAIL, "the customer's profile")
        call_until(lambda: (r := call(stack, "GET", f"/v1/decisions/{VICTIM}?key={site['public_key']}"))[0] == 401
                   and r, 10, "the customer's decision document")
        reader = make_token(stack, ["contacts:read"])["token"]
        yield World(stack, site["public_key"], reader, other["public_key"])


def victim_unchanged(world: World) -> None:
    """The customer's profile is exactly what the shop's back end made it."""
    victim = profile(world.stack, VICTIM)
    assert victim is not None
    assert (victim.email, victim.traits) == (VICTIM_EMAIL, {"email": VICTIM_EMAIL, "name": "Vera"})
    assert victim.anonymous_ids == ["vera-phone"]
    assert victim.counters.orders == 0


class TestTakeover:
    """Claiming the customer's user id from a browser changes nothing of the customer."""

    def test_every_takeover_attempt_stays_on_the_attackers_own_visitor(self, world: World) -> None:
        stack, key = world.stack, world.public_key
        evil = {"email": "mallory@evil.example", "name": "Mallory"}
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("mal-1", {}),  # no proof at all
            ("mal-2", {"context": {"userHash": secrets.token_hex(32)}}),  # a made-up signature
            ("mal-3", {"context": {"userHash": sign_user_id("guessed-secret", VICTIM)}}),  # a wrong secret
            ("mal-4", {"trust": "server"}),  # the ingest's own mark, forged
        ]
        for device, extra in attempts:
            reply = ws_frame(stack, key, [{"type": "identify", "anonymousId": device, "userId": VICTIM,
                                           "traits": evil, **extra}])
            assert (reply["accepted"], reply["rejected"]) == (1, []), device
        # The beacon path (HTTP, key in the body) and an alias are no better.
        status, body = call(stack, "POST", "/v1/batch", {"writeKey": key, "batch": [
            {"type": "identify", "anonymousId": "mal-5", "userId": VICTIM, "traits": evil},
            {"type": "alias", "previousId": "mal-6", "userId": VICTIM}]}, headers={"Origin": SHOP})
        assert (status, body["accepted"], body["rejected"]) == (400, 1, [
            {"index": 1, "error": "a browser `alias` needs `context.userHash` (the user id's signature) "
                      "to be believed"}])
        # A device id equal to the customer's user id: an order on it must not land on the customer.
        ws_frame(stack, key, [{"type": "identify", "anonymousId": VICTIM, "traits": evil},
                              {"type": "track", "anonymousId": VICTIM, "event": "Order Completed",
                               "properties": {"revenue": 999}}])
        for device in ("mal-1", "mal-2", "mal-3", "mal-4", "mal-5"):
            kept = wait_profile(stack, device, lambda p: p.traits.get("email") == evil["email"],
                                f"{device}'s attempt kept on its own visitor")
            assert kept.user_id is None, device
        ws_frame(stack, key, [{"type": "page", "anonymousId": "mal-last"}])  # everything before is processed
        wait_profile(stack, "mal-last", lambda p: True, "the attacker's last event")
        victim_unchanged(world)
        assert stack.redis.client().get(f"attimo:alias:{{{'mal-6'}}}") is None

    def test_the_attacker_cannot_read_the_customers_decisions(self, world: World) -> None:
        """Without the customer's signature: 401; with a forged one: 403; a socket claiming the user is not verified."""
        stack, key = world.stack, world.public_key
        status, body = call(stack, "GET", f"/v1/decisions/{VICTIM}?key={key}")
        assert status == 401 and body["error"].startswith("these decisions belong to a signed-in user")
        status, body = call(stack, "GET", f"/v1/decisions/{VICTIM}?key={key}&sig={secrets.token_hex(32)}")
        assert (status, body["error"]) == (403, "`sig` is not a valid signature of this contact's user id")
        status, body = call(stack, "GET", f"/v1/decisions/vera-phone?key={key}")  # the customer's device id
        assert status == 401


class TestCrossSite:
    """Site A's public key is refused from site B's pages, and site B's key reads nothing of site A's pages."""

    def test_the_key_from_another_origin_is_refused(self, world: World) -> None:
        stack, key = world.stack, world.public_key
        status, body = batch(stack, key, [{"type": "page", "anonymousId": "x1"}], origin=OTHER_SHOP)
        assert (status, body["error"]) == (403, f"origin '{OTHER_SHOP}' is not allowed for this write key")
        assert ws_close_code(stack, key, OTHER_SHOP) == 4403
        status, body = call(stack, "GET", f"/v1/decisions/x1?key={key}", headers={"Origin": OTHER_SHOP})
        assert (status, body["error"]) == (403, f"origin '{OTHER_SHOP}' is not allowed for this write key")
        # And the other site's own key does not work from site A's pages either.
        assert batch(stack, world.other_public_key, [{"type": "page", "anonymousId": "x2"}], origin=SHOP)[0] == 403

    def test_a_made_up_key_is_unknown(self, world: World) -> None:
        status, body = batch(world.stack, "attimo_sk_" + secrets.token_urlsafe(32), [
            {"type": "identify", "userId": VICTIM, "traits": {"email": "x@evil.example"}}])
        assert (status, body["error"]) == (401, "unknown write key")


class TestScopeEscalation:
    """A read-only token stays read-only, however it is used."""

    @pytest.mark.parametrize(("method", "path", "body", "scope"), [
        ("POST", "/v1/admin/tokens", {"scopes": ["admin"]}, "keys:manage"),
        ("POST", "/v1/admin/sites/mine", {"origins": ["https://evil.example"]}, "keys:manage"),
        ("PATCH", "/v1/admin/keys/dev", {"origins": ["https://evil.example"]}, "keys:manage"),
        ("PUT", "/v1/admin/segments/everyone", {"name": "x"}, "config:write"),
        ("POST", f"/v1/admin/contacts/{VICTIM}/erase", {}, "contacts:erase"),
        ("GET", f"/v1/admin/contacts/{VICTIM}/export", None, "contacts:erase"),
    ])
    def test_the_read_token_is_refused_naming_the_scope(self, world: World, method: str, path: str, body: Any,
                                                        scope: str) -> None:
        status, answer = call(world.stack, method, path, body, token=world.read_token)
        assert (status, answer["error"]) == (403, f"this admin token lacks the scope {scope!r}")

    def test_a_session_from_the_read_token_cannot_write(self, world: World) -> None:
        stack = world.stack
        cookie = login(stack, world.read_token)
        status, body = call(stack, "POST", "/v1/admin/tokens", {"scopes": ["admin"]},
                            headers={"Cookie": cookie, "Origin": stack.api_url})
        assert (status, body["error"]) == (403, "this admin token lacks the scope 'keys:manage'")
        status, body = call(stack, "PUT", "/v1/admin/segments/everyone", {"name": "x"},
                            headers={"Cookie": cookie, "Origin": stack.api_url})
        assert (status, body["error"]) == (403, "this admin token lacks the scope 'config:write'")
        # The cookie from another site's page is not even a login.
        status, body = call(stack, "PUT", "/v1/admin/segments/everyone", {"name": "x"},
                            headers={"Cookie": cookie, "Origin": "https://evil.example"})
        assert (status, body["error"]) == (401, "admin bearer token required")

    def test_guessed_tokens_are_refused(self, world: World) -> None:
        for guess in ("attimo_at_" + secrets.token_urlsafe(32), "adm_e2", "adm_e2e2", world.read_token[:-1]):
            status, body = call(world.stack, "GET", "/v1/admin/config", token=guess)
            assert (status, body["error"]) == (401, "admin bearer token required"), guess


class TestEnumeration:
    """Public routes tell nobody who the customers are."""

    def test_decisions_by_e_mail_answer_as_for_a_stranger(self, world: World) -> None:
        """The customer's e-mail and an unknown one get the same answer, with nothing of the customer."""
        stack, key = world.stack, world.public_key
        known = call(stack, "GET", f"/v1/decisions/{VICTIM_EMAIL}?key={key}")
        unknown = call(stack, "GET", f"/v1/decisions/nobody-{secrets.token_hex(4)}@example.com?key={key}")
        assert known[0] == unknown[0] == 200
        assert known[1] == unknown[1]
        assert known[1]["popups"] == [] and known[1]["public"] == {}

    def test_contact_lookups_need_an_admin_token(self, world: World) -> None:
        stack = world.stack
        for path in (f"/v1/contacts/{VICTIM}", f"/v1/contacts/{VICTIM_EMAIL}", f"/v1/contacts/{VICTIM}/decisions"):
            status, body = call(stack, "GET", path)
            assert (status, body["error"]) == (401, "admin bearer token required"), path
            status, body = call(stack, "GET", path, headers={"X-Attimo-Key": world.public_key})
            assert status == 401, path
