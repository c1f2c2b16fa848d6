"""`GET /v1/decisions/{id}`: the contact's decision document, strips, identity, nothing internal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.decisions.identity import sign_user_id
from api.decisions_fast import DecisionsFastPath
from state import keys
from state.decisions import DecisionDoc, PublicDecisions, Seeds
from state.profile import Profile, encode_profile
from state.settings import Settings
from tests.api.decisions.store import SECRET, anonymous_doc, popup, save_doc, save_neighbours, shop
from tests.helpers import RedisServer, free_port

WRITE_KEY = "wk-decisions"
SHOP = "https://shop.example"


def make_client(redis_server: RedisServer, fast_path: bool, secrets: str = SECRET) -> TestClient:
    settings = Settings(redis_url=redis_server.url, write_key=WRITE_KEY, admin_token="admin",
                        api_port=free_port(), allowed_origins=SHOP, identity_secrets=secrets, rfm_refresh_s=0)
    app = create_app(settings)
    return TestClient(DecisionsFastPath(app) if fast_path else app)


@pytest.fixture(params=["fast-path", "fastapi"])
def client(request: pytest.FixtureRequest, redis_server: RedisServer, redis_client: redis.Redis
           ) -> Iterator[TestClient]:
    """The API as `attimo api` serves it (fast path in front) and the bare FastAPI route, over a small shop."""
    shop(redis_client)
    with make_client(redis_server, request.param == "fast-path") as test_client:
        yield test_client


def get(client: TestClient, any_id: str, **params: str) -> Any:
    return client.get(f"/v1/decisions/{any_id}", params={"key": WRITE_KEY, **params})


def ids(strip: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in strip]


def user_doc() -> DecisionDoc:
    """A signed-in user's document (its anonymous id and e-mail are aliases)."""
    return anonymous_doc("user-7", user_id="user-7", public={"temperature": "hot"})


class TestAnswer:
    """The answer is a `PublicDecisions` built from the document and the products' lists."""

    def test_a_visitor_with_no_state_gets_200_no_popups_and_the_trending_strip(self, client: TestClient) -> None:
        """Never 404: a first page view shows trending products."""
        response = get(client, "brand-new")
        assert response.status_code == 200
        body = msgspec.json.decode(response.content, type=PublicDecisions)
        assert body.popups == [] and body.public == {}
        assert ids(response.json()["recommendations"]["trending"]) == ["t1", "t2", "t3"]
        assert set(response.json()["recommendations"]) == {"cross_sell", "up_sell", "personal", "trending"}

    def test_a_known_visitor_gets_its_popups_and_strips_from_its_seeds(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """Personal from recent views (then trending), cross-sell from the cart, nothing already in the cart."""
        save_doc(redis_client, anonymous_doc())
        response = get(client, "anon-1")
        body = msgspec.json.decode(response.content, type=PublicDecisions)
        assert body.popups == [popup()]
        strips = response.json()["recommendations"]
        # The ranking is the products stage's (state.recommendations); here: what each strip grows from.
        assert ids(strips["personal"])[0] == "n1"
        assert set(ids(strips["personal"])[:4]) == {"n1", "n2", "n3", "p9"}
        assert ids(strips["cross_sell"])[0] == "x1"
        assert "c1" not in {c for strip in strips.values() for c in ids(strip)}

    def test_the_product_on_screen_drives_cross_sell_and_up_sell(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """`?product=` reads that product's document: bought together, and its up-sell list."""
        save_neighbours(redis_client, "p5", bought=["cheap", "dear"], up_sell=["dear"])
        strips = get(client, "anon-1", product="p5").json()["recommendations"]
        assert ids(strips["cross_sell"]) == ["cheap", "dear"]
        assert ids(strips["up_sell"]) == ["dear"]

    def test_what_was_bought_is_not_recommended(self, client: TestClient, redis_client: redis.Redis) -> None:
        """Bought products leave personal and trending."""
        save_doc(redis_client, anonymous_doc(seeds=Seeds(viewed=["p1"], bought=["n1", "t2"])))
        strips = get(client, "anon-1").json()["recommendations"]
        assert "n1" not in ids(strips["personal"]) and ids(strips["personal"])[0] == "n2"
        assert ids(strips["trending"]) == ["t1", "t3"]

    def test_a_merged_anonymous_id_reads_its_contacts_document(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """Ids are resolved like the profile's: the document's own id, else an alias."""
        save_doc(redis_client, anonymous_doc("anon-1"), "anon-old")
        assert get(client, "anon-old").json()["popups"] == get(client, "anon-1").json()["popups"] != []

    def test_a_document_that_does_not_decode_answers_like_a_new_visitor(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """A bad document must not turn every page view of that visitor into a 500."""
        redis_client.set(keys.decision_doc("anon-1"), b"{not json")
        response = get(client, "anon-1")
        assert response.status_code == 200 and response.json()["popups"] == []

    def test_fields_a_campaign_made_public_are_answered(self, client: TestClient,
                                                        redis_client: redis.Redis) -> None:
        """`DecisionDoc.public` is copied as is."""
        save_doc(redis_client, anonymous_doc(public={"temperature": "warm", "segments": ["vip"]}))
        assert get(client, "anon-1").json()["public"] == {"temperature": "warm", "segments": ["vip"]}


class TestNothingInternalLeaks:
    """Segments, score, cart value stay private unless a campaign marks them public."""

    def test_a_profile_full_of_internal_fields_answers_none_of_them(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """The route reads the document, never the profile: its segments and score cannot leak."""
        redis_client.set(keys.contact_profile("anon-1"), encode_profile(Profile(
            contact_id="anon-1", anonymous_ids=["anon-1"], score=87.5, temperature="hot",
            segments=["secret-segment"], cart_value=432.1)))
        save_doc(redis_client, anonymous_doc())
        body = get(client, "anon-1").content
        for internal in (b"segments", b"score", b"secret-segment", b"87.5", b"cart_value", b"432.1",
                         b"contact_id", b"seeds"):
            assert internal not in body
        assert set(msgspec.json.decode(body)) == {"popups", "recommendations", "public"}


class TestIdentity:
    """A signed-in user's decisions need the user id's signature; anonymous ids never do."""

    def test_a_users_decisions_without_sig_are_401_and_say_what_is_missing(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """Whichever of its own ids names the contact: user id, a merged anonymous id."""
        save_doc(redis_client, user_doc(), "anon-7", "ada@example.com")
        for any_id in ("user-7", "anon-7"):
            response = get(client, any_id)
            assert response.status_code == 401, any_id
            assert "sig" in response.json()["error"]

    def test_a_look_up_by_e_mail_answers_as_for_a_stranger(self, client: TestClient,
                                                         redis_client: redis.Redis) -> None:
        """Look-ups by e-mail are never public (issue 12): the same answer as an unknown address, sig or not."""
        save_doc(redis_client, user_doc(), "anon-7", "ada@example.com")
        stranger = get(client, "nobody@example.com")
        for sig in ("", sign_user_id(SECRET, "user-7")):
            response = get(client, "Ada@Example.com", sig=sig) if sig else get(client, "Ada@Example.com")
            assert response.status_code == 200
            assert response.json() == stranger.json()
            assert response.json()["public"] == {}

    def test_a_valid_signature_is_accepted_by_query_or_header(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """`?sig=` or `X-Attimo-Signature`; the signature is always of the user id."""
        save_doc(redis_client, user_doc(), "anon-7")
        sig = sign_user_id(SECRET, "user-7")
        response = get(client, "user-7", sig=sig)
        assert response.status_code == 200 and response.json()["public"] == {"temperature": "hot"}
        assert get(client, "anon-7", sig=sig.upper()).status_code == 200
        by_header = client.get("/v1/decisions/user-7", params={"key": WRITE_KEY},
                               headers={"X-Attimo-Signature": sig})
        assert by_header.status_code == 200

    def test_an_anonymous_id_that_signed_in_as_another_user_answers_as_that_user(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """A shared device: `anon-7` was user-7's, then signed in as user-8. user-7's document, still under
        `anon-7` (user-7 rewrites it at each change), must not answer for it: the alias names user-8."""
        save_doc(redis_client, user_doc(), "anon-7")
        redis_client.set(keys.decision_doc("anon-7"), redis_client.get(keys.decision_doc("user-7")) or b"")
        other = anonymous_doc("user-8", user_id="user-8", public={"temperature": "cold"})
        save_doc(redis_client, other, "anon-7")
        response = get(client, "anon-7", sig=sign_user_id(SECRET, "user-8"))
        assert response.status_code == 200 and response.json()["public"] == {"temperature": "cold"}
        assert get(client, "anon-7", sig=sign_user_id(SECRET, "user-7")).status_code == 403
        assert get(client, "user-7", sig=sign_user_id(SECRET, "user-7")).json()["public"] == {"temperature": "hot"}

    def test_a_wrong_signature_is_403(self, client: TestClient, redis_client: redis.Redis) -> None:
        """Another user's signature, another secret's, or garbage."""
        save_doc(redis_client, user_doc())
        for sig in (sign_user_id(SECRET, "user-8"), sign_user_id("other-secret", "user-7"), "x" * 64, "abc"):
            response = get(client, "user-7", sig=sig)
            assert response.status_code == 403, sig
            assert "sig" in response.json()["error"]

    def test_anonymous_visitors_never_need_a_signature(self, client: TestClient,
                                                       redis_client: redis.Redis) -> None:
        """With none, or with one that signs nothing, an anonymous contact and a new visitor are served."""
        save_doc(redis_client, anonymous_doc())
        for any_id in ("anon-1", "brand-new"):
            assert get(client, any_id).status_code == 200
            assert get(client, any_id, sig="f" * 64).status_code == 200

    def test_an_identity_error_is_readable_by_the_sites_pages(self, client: TestClient,
                                                              redis_client: redis.Redis) -> None:
        """The key and origin were fine, so the page may read why (CORS header on the 401)."""
        save_doc(redis_client, user_doc())
        response = client.get("/v1/decisions/user-7", params={"key": WRITE_KEY}, headers={"Origin": SHOP})
        assert response.status_code == 401
        assert response.headers["access-control-allow-origin"] == SHOP
        foreign = client.get("/v1/decisions/user-7", params={"key": WRITE_KEY},
                             headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers

    def test_the_write_key_is_still_required(self, client: TestClient) -> None:
        """A signature is no substitute for the site's key."""
        assert client.get("/v1/decisions/anon-1").status_code == 401
        assert client.get("/v1/decisions/anon-1", params={"key": "nope"}).status_code == 401


class TestRotation:
    """Several identity secrets verify at once, so one can be replaced without logging anyone out."""

    @pytest.mark.parametrize("fast_path", [True, False])
    def test_old_and_new_secrets_verify_during_rotation_and_the_removed_one_stops(
            self, redis_server: RedisServer, redis_client: redis.Redis, fast_path: bool) -> None:
        """`new,old` accepts both; once `old` is removed its signatures are refused."""
        save_doc(redis_client, user_doc())
        old, new = sign_user_id("old-secret", "user-7"), sign_user_id("new-secret", "user-7")
        with make_client(redis_server, fast_path, secrets="new-secret, old-secret") as during:
            assert get(during, "user-7", sig=old).status_code == 200
            assert get(during, "user-7", sig=new).status_code == 200
        with make_client(redis_server, fast_path, secrets="new-secret") as after:
            assert get(after, "user-7", sig=new).status_code == 200
            assert get(after, "user-7", sig=old).status_code == 403

    def test_without_any_secret_no_users_decisions_are_served(
            self, redis_server: RedisServer, redis_client: redis.Redis) -> None:
        """Private by default: nothing configured means no user's decisions, and the error says so."""
        save_doc(redis_client, user_doc())
        save_doc(redis_client, anonymous_doc())
        with make_client(redis_server, True, secrets="") as unconfigured:
            response = get(unconfigured, "user-7", sig=sign_user_id(SECRET, "user-7"))
            assert response.status_code == 401 and "ATTIMO_IDENTITY_SECRETS" in response.json()["error"]
            assert get(unconfigured, "anon-1").status_code == 200


class TestParameters:
    """Odd parameters get the same answer from the fast path and the documented route."""

    def test_a_product_id_over_200_characters_is_422(self, client: TestClient) -> None:
        """No id is that long; the answer names the parameter."""
        response = get(client, "anon-1", product="p" * 201)
        assert response.status_code == 422 and "product" in response.json()["error"]

    def test_a_very_long_sig_is_a_wrong_signature(self, client: TestClient, redis_client: redis.Redis) -> None:
        """403 like any other wrong signature, on both paths."""
        save_doc(redis_client, user_doc())
        assert get(client, "user-7", sig="a" * 500).status_code == 403
