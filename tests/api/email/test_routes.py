"""The e-mail link routes against a real Redis: the right event for the right contact, nothing for a forgery."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from typing import cast
from urllib.parse import quote, urlsplit

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.email import send_email
from api.email.links import LinkClaims, LinkSigner, claims_for
from api.routes.email import PIXEL
from state import keys
from state.events import EMAIL_LINK_CLICKED, EMAIL_OPENED, UNSUBSCRIBED, StreamEvent, Track
from state.profile import Profile, encode_profile
from state.settings import Settings
from state.streams import ENTRY_FIELD, decode_entry
from tests.api.email.conftest import SmtpServer, email_action, mail_settings
from tests.helpers import RedisServer, free_port

SHARDS = 2
CLAIMS = claims_for(email_action(branch="subject-b"))
SHOP = "https://shop.example/cart?utm_source=email&step=1"


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return mail_settings(free_port(), redis_url=redis_server.url, stream_shards=SHARDS, rfm_refresh_s=0,
                         api_port=free_port())


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


@pytest.fixture
def signer(settings: Settings) -> LinkSigner:
    return LinkSigner.from_settings(settings)


@pytest.fixture
def known_contact(redis_client: redis.Redis) -> Profile:
    """Ada, identified as user-7 (her browser anon-7 merged in), as the dataflow writes her."""
    ada = Profile(contact_id="user-7", anonymous_ids=["anon-7"], user_id="user-7", email="ada@example.com")
    redis_client.set(keys.contact_profile("user-7"), encode_profile(ada))
    redis_client.set(keys.contact_alias("anon-7"), "user-7")
    return ada


def appended(client: redis.Redis) -> list[StreamEvent]:
    """Every event in the ingest streams, in order per shard."""
    entries = [entry for shard in range(SHARDS)
               for entry in cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(keys.event_stream(shard)))]
    return [event for _, fields in entries for event in decode_entry(fields[ENTRY_FIELD])]


def only_event(client: redis.Redis) -> Track:
    (event,) = appended(client)
    assert isinstance(event, Track)
    return event


def path_of(url: str) -> str:
    split = urlsplit(url)
    return split.path + (f"?{split.query}" if split.query else "")


def open_path(signer: LinkSigner, claims: LinkClaims = CLAIMS) -> str:
    return f"/v1/email/open/{signer.sign('open', claims)}.gif"


def click_path(signer: LinkSigner, url: str = SHOP, claims: LinkClaims = CLAIMS) -> str:
    return f"/v1/email/click/{signer.sign('click', claims, url)}?u={quote(url, safe='')}"


def unsubscribe_path(signer: LinkSigner, claims: LinkClaims = CLAIMS) -> str:
    return f"/v1/email/unsubscribe/{signer.sign('unsubscribe', claims)}"


class TestOpenPixel:
    """`GET /v1/email/open/{token}.gif`: a 1×1 GIF, and `Email Opened` for the e-mail's contact."""

    def test_serves_an_uncached_gif_and_appends_email_opened(self, api: TestClient, signer: LinkSigner,
                                                             redis_client: redis.Redis,
                                                             known_contact: Profile) -> None:
        response = api.get(open_path(signer), headers={"User-Agent": "Mail/1.0"})
        assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
        assert response.content == PIXEL and response.content.startswith(b"GIF89a")
        assert "no-store" in response.headers["cache-control"]
        event = only_event(redis_client)
        assert event.event == EMAIL_OPENED
        assert (event.user_id, event.anonymous_id) == ("user-7", None)
        assert event.properties == {"action_id": "act-0001", "workflow_id": "abandoned-cart", "workflow_version": 2,
                                    "step_id": "reminder-1", "branch": "subject-b", "channel": "email"}
        assert event.context["userAgent"] == "Mail/1.0"

    def test_a_reloaded_pixel_is_the_same_event(self, api: TestClient, signer: LinkSigner,
                                                redis_client: redis.Redis, known_contact: Profile) -> None:
        """Both loads carry one messageId, which the dataflow applies once (docs/protocol.md §1.6)."""
        api.get(open_path(signer))
        api.get(open_path(signer))
        first, second = appended(redis_client)
        assert first.message_id == second.message_id

    def test_opens_of_two_emails_are_two_events(self, api: TestClient, signer: LinkSigner,
                                                redis_client: redis.Redis, known_contact: Profile) -> None:
        api.get(open_path(signer))
        api.get(open_path(signer, claims_for(email_action(action_id="act-0002"))))
        first, second = appended(redis_client)
        assert first.message_id != second.message_id


class TestClickRedirect:
    """`GET /v1/email/click/{token}?u=…`: a redirect to the signed URL only, and `Email Link Clicked`."""

    def test_redirects_to_the_signed_url_and_appends_the_click(self, api: TestClient, signer: LinkSigner,
                                                               redis_client: redis.Redis,
                                                               known_contact: Profile) -> None:
        response = api.get(click_path(signer))
        assert response.status_code == 302 and response.headers["location"] == SHOP
        event = only_event(redis_client)
        assert event.event == EMAIL_LINK_CLICKED and event.user_id == "user-7"
        assert event.properties["link_url"] == SHOP and event.properties["action_id"] == "act-0001"

    def test_each_link_counts_on_its_own_and_a_repeated_click_is_the_same_event(
            self, api: TestClient, signer: LinkSigner, redis_client: redis.Redis, known_contact: Profile) -> None:
        api.get(click_path(signer))
        api.get(click_path(signer))
        api.get(click_path(signer, "https://shop.example/sku-1"))
        first, again, other = appended(redis_client)
        assert first.message_id == again.message_id != other.message_id

    def test_a_destination_other_than_the_signed_one_is_refused(self, api: TestClient, signer: LinkSigner,
                                                                redis_client: redis.Redis) -> None:
        """Swapping `u` for any other URL — or dropping it — never redirects and appends nothing."""
        token = signer.sign("click", CLAIMS, SHOP)
        for other in ("https://evil.example/", "https://shop.example/cart", SHOP + "&x=1", "//evil.example"):
            response = api.get(f"/v1/email/click/{token}", params={"u": other})
            assert response.status_code == 404 and "location" not in response.headers
        assert api.get(f"/v1/email/click/{token}").status_code == 422
        assert appended(redis_client) == []

    def test_a_url_that_was_never_trackable_is_refused_even_if_signed(self, api: TestClient, signer: LinkSigner,
                                                                      redis_client: redis.Redis) -> None:
        """Attimo signs only http(s) links; a token for `javascript:` (never issued) still gets no redirect."""
        assert api.get(click_path(signer, "javascript:alert(1)")).status_code == 404
        assert appended(redis_client) == []

    def test_a_non_ascii_destination_is_redirected_percent_encoded(self, api: TestClient, signer: LinkSigner,
                                                                   known_contact: Profile) -> None:
        response = api.get(click_path(signer, "https://shop.example/schuhe/größe?q=ä"))
        assert response.status_code == 302
        assert response.headers["location"] == "https://shop.example/schuhe/gr%C3%B6%C3%9Fe?q=%C3%A4"


class TestUnsubscribe:
    """`GET` shows a confirmation; `POST` (the button, or one-click from a mail client) appends `Unsubscribed`."""

    def test_get_shows_a_page_and_records_nothing(self, api: TestClient, signer: LinkSigner,
                                                  redis_client: redis.Redis) -> None:
        """Link scanners follow links; only the POST unsubscribes."""
        response = api.get(unsubscribe_path(signer))
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assert '<form method="post">' in response.text and "Unsubscribe</button>" in response.text
        assert appended(redis_client) == []

    def test_post_appends_unsubscribed(self, api: TestClient, signer: LinkSigner, redis_client: redis.Redis,
                                       known_contact: Profile) -> None:
        response = api.post(unsubscribe_path(signer))
        assert response.status_code == 200 and "You are unsubscribed" in response.text
        event = only_event(redis_client)
        assert event.event == UNSUBSCRIBED and event.user_id == "user-7"
        assert event.properties["workflow_id"] == "abandoned-cart"

    def test_one_click_post_as_mail_clients_send_it(self, api: TestClient, signer: LinkSigner,
                                                    redis_client: redis.Redis, known_contact: Profile) -> None:
        """RFC 8058: `POST` with the form body `List-Unsubscribe=One-Click`."""
        response = api.post(unsubscribe_path(signer), content="List-Unsubscribe=One-Click",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200
        assert only_event(redis_client).event == UNSUBSCRIBED


class TestAddressing:
    """The event reaches the contact the e-mail went to, keyed as the dataflow keys it now."""

    def test_an_anonymous_contact_is_addressed_by_its_anonymous_id(self, api: TestClient, signer: LinkSigner,
                                                                   redis_client: redis.Redis) -> None:
        visitor = Profile(contact_id="anon-9", anonymous_ids=["anon-9"], email="bob@example.com")
        redis_client.set(keys.contact_profile("anon-9"), encode_profile(visitor))
        claims = claims_for(email_action(contact_id="anon-9", user_id=None, to="bob@example.com"))
        api.get(open_path(signer, claims))
        event = only_event(redis_client)
        assert (event.anonymous_id, event.user_id) == ("anon-9", None)

    def test_a_visitor_identified_since_the_email_is_addressed_as_the_known_contact(
            self, api: TestClient, signer: LinkSigner, redis_client: redis.Redis, known_contact: Profile) -> None:
        """The e-mail went to anonymous anon-7; she has since become user-7."""
        claims = claims_for(email_action(contact_id="anon-7", user_id=None))
        api.post(unsubscribe_path(signer, claims))
        event = only_event(redis_client)
        assert (event.anonymous_id, event.user_id) == (None, "user-7")

    def test_a_contact_without_a_profile_is_addressed_by_the_ids_the_email_went_to(
            self, api: TestClient, signer: LinkSigner, redis_client: redis.Redis) -> None:
        api.post(unsubscribe_path(signer))
        assert (only_event(redis_client).user_id, only_event(redis_client).anonymous_id) == ("user-7", None)


class TestForgery:
    """Nobody without the secret can append an event for any contact or get a redirect."""

    def forged_paths(self, signer: LinkSigner) -> list[tuple[str, str]]:
        stranger = LinkSigner([b"somebody else's secret"])
        valid_open = signer.sign("open", CLAIMS)
        altered = valid_open[:-2] + ("AA" if not valid_open.endswith("AA") else "BB")
        victim = LinkClaims(action_id="act-x", contact_id="user-8", known=True, workflow_id="w", workflow_version=1,
                            step_id="s")
        swapped = stranger.sign("open", victim).split(".")[0] + "." + valid_open.split(".")[1]
        return [
            ("GET", f"/v1/email/open/{altered}.gif"),
            ("GET", f"/v1/email/open/{swapped}.gif"),
            ("GET", open_path(stranger, victim)),
            ("GET", "/v1/email/open/not-a-token.gif"),
            ("GET", f"/v1/email/open/{signer.sign('unsubscribe', CLAIMS)}.gif"),
            ("GET", click_path(stranger, "https://evil.example/")),
            ("GET", f"/v1/email/click/{valid_open}?u=https%3A%2F%2Fshop.example%2F"),
            ("GET", unsubscribe_path(stranger, victim)),
            ("POST", unsubscribe_path(stranger, victim)),
            ("POST", f"/v1/email/unsubscribe/{valid_open}"),
            ("POST", f"/v1/email/unsubscribe/{altered}"),
        ]

    def test_forged_altered_or_misused_tokens_are_404_and_append_nothing(
            self, api: TestClient, signer: LinkSigner, redis_client: redis.Redis, known_contact: Profile) -> None:
        for method, path in self.forged_paths(signer):
            response = api.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json() == {"error": "unknown or altered link", "success": False}
            assert "location" not in response.headers
        assert appended(redis_client) == []


class TestStoreOutage:
    """Reading the mail never breaks because Redis is down; an unsubscribe is never silently lost."""

    def test_pixel_and_redirect_still_work_and_unsubscribe_asks_for_a_retry(
            self, api: TestClient, signer: LinkSigner, redis_server: RedisServer) -> None:
        redis_server.process.kill()
        redis_server.process.wait()
        assert api.get(open_path(signer)).content == PIXEL
        click = api.get(click_path(signer))
        assert click.status_code == 302 and click.headers["location"] == SHOP
        unsubscribe = api.post(unsubscribe_path(signer))
        assert unsubscribe.status_code == 503 and unsubscribe.json()["success"] is False


class TestTheLinksOfADeliveredEmail:
    """The pixel, a link and the unsubscribe button of a message that went through SMTP each reach Ada."""

    async def test_links_in_the_received_message_append_the_three_events(
            self, smtp_server: SmtpServer, redis_server: RedisServer, redis_client: redis.Redis,
            known_contact: Profile) -> None:
        settings = mail_settings(smtp_server.port, redis_url=redis_server.url, stream_shards=SHARDS,
                                 rfm_refresh_s=0, api_port=free_port())
        assert (await send_email(email_action(), settings)).delivered
        (message,) = smtp_server.mailbox.received
        html = message.get_body(preferencelist=("html",))
        assert isinstance(html, EmailMessage)
        body = str(html.get_content())
        pixel = re.search(r'<img src="([^"]+)"', body)
        click = re.search(r'href="(https://attimo\.example/v1/email/click/[^"]+)"', body)
        assert pixel and click
        with TestClient(create_app(settings), follow_redirects=False) as api:
            assert api.get(path_of(pixel.group(1))).status_code == 200
            assert api.get(path_of(click.group(1).replace("&amp;", "&"))).headers["location"] == SHOP
            unsubscribe = str(message["List-Unsubscribe"])[1:-1]
            assert api.post(path_of(unsubscribe), content="List-Unsubscribe=One-Click").status_code == 200
        events = appended(redis_client)
        assert [(e.event, e.user_id) for e in events if isinstance(e, Track)] == [
            (EMAIL_OPENED, "user-7"), (EMAIL_LINK_CLICKED, "user-7"), (UNSUBSCRIBED, "user-7")]
        assert {e.properties["action_id"] for e in events if isinstance(e, Track)} == {"act-0001"}
