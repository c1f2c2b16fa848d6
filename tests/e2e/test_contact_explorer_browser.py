"""The contact explorer on the real stack, in headless Chromium: log in through the form, search a contact,
see its timeline, score chart, cart and recommendations, and watch a new event arrive — a product name
full of markup shown as text, and the admin token in no URL the browser ever asked for."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import redis as redis_lib

from state import keys
from state.profile import ActionLogEntry, Profile, WorkflowPosition, encode_profile
from tests.e2e.conftest import Stack, attimo_run
from tests.e2e.dashboard_browser import log_in as log_in_to
from tests.e2e.test_popups_browser import call
from tests.helpers import running_redis, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(90)]

WAIT_MS = 10_000
HOSTILE = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`attimo run` (default event log: 30 events per contact), shared by the module's tests."""
    directory = tmp_path_factory.mktemp("explorer-stack")
    with running_redis(directory) as redis, attimo_run(directory / "run", redis) as running:
        yield running


def send(stack: Stack, events: list[dict[str, Any]]) -> None:
    """Events through the Segment HTTP API, each at its own time (so the score moves in distinct seconds)."""
    batch = [{"messageId": str(uuid.uuid4()), "type": "track"} | e for e in events]
    status, body = call(stack, "POST", "/v1/batch", {"batch": batch, "writeKey": stack.write_key}, admin=False)
    assert status == 200, body


def at(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def profile(stack: Stack, contact_id: str) -> dict[str, Any] | None:
    status, body = call(stack, "GET", f"/v1/contacts/{quote(contact_id)}")
    return body if status == 200 else None


def log_in(browser: Any, stack: Stack) -> tuple[Any, Any, list[str]]:
    """A new browser profile logged in through the form, on /dashboard/contacts; (context, page, URLs asked)."""
    return log_in_to(browser, stack, "/dashboard/contacts")


def timeline_rows(page: Any) -> list[list[str]]:
    return list(page.evaluate(
        "() => [...document.querySelectorAll('#timeline tbody tr')]"
        ".map((tr) => [...tr.children].map((td) => td.textContent))"))


class TestContactExplorer:
    def test_a_contacts_timeline_score_chart_and_cart_show_after_its_events(self, stack: Stack,
                                                                              browser: Any) -> None:
        """A shopper browses, views a product named with markup and adds it; the operator searches the
        shopper's id and sees the events newest first, a score chart with points, the cart and the
        product's name as text; a later event appears without reloading."""
        shopper = f"explorer-{uuid.uuid4().hex[:8]}"
        product = {"product_id": "p-xss", "name": HOSTILE, "price": 12.5, "category": "mugs"}
        send(stack, [
            {"type": "page", "anonymousId": shopper, "timestamp": at(40),
             "properties": {"url": f"{stack.api_url}/category/mugs"}},
            {"anonymousId": shopper, "event": "Product Viewed", "timestamp": at(30), "properties": product},
            {"anonymousId": shopper, "event": "Product Added", "timestamp": at(20),
             "properties": product | {"quantity": 2}},
        ])
        wait_for(lambda: (p := profile(stack, shopper)) and len(p.get("recent_events", [])) == 3
                 and len(p.get("score_history", [])) >= 2, 15, "the shopper's profile with its events")

        context, page, requested = log_in(browser, stack)
        try:
            page.goto(f"{stack.api_url}/dashboard/contacts")
            page.fill("#contact-id", shopper)
            page.click("#search button[type=submit]")
            page.wait_for_function("() => document.querySelectorAll('#timeline tbody tr').length === 3")
            assert page.url.endswith("#" + quote(shopper, safe=""))  # a shareable link to the contact

            rows = timeline_rows(page)
            assert [row[2] for row in rows] == ["Product Added", "Product Viewed", ""]
            assert rows[2][1] == "page" and rows[2][3] == "/category/mugs"
            assert rows[0][4] == f"p-xss · {HOSTILE}" and rows[0][6] == "25"  # price × quantity

            # The markup is text: no element was made of it, no handler ran.
            assert page.evaluate("() => document.querySelectorAll('main img').length") == 0
            assert page.evaluate("() => window.__pwned") is None
            assert HOSTILE in page.inner_text("#cart")

            page.wait_for_function("() => window.attimoExplorer.scorePoints() >= 2")
            assert page.locator("#chart-score canvas").count() >= 1
            assert page.inner_text("#summary").count(shopper) >= 1

            # Watching: a new event shows within a refresh or two, without reloading the page.
            send(stack, [{"anonymousId": shopper, "event": "Checkout Started", "timestamp": at(0),
                          "properties": {"revenue": 25.0}}])
            page.wait_for_function(
                "() => document.querySelector('#timeline tbody tr td:nth-child(3)').textContent"
                " === 'Checkout Started'")
            assert page.page_errors == []
        finally:
            context.close()
        assert requested, "the browser asked for nothing"
        leaked = [url for url in requested if stack.admin_token in url]
        assert leaked == [], f"the admin token was in a URL: {leaked}"

    def test_an_unknown_id_says_so_and_a_shared_link_opens_the_contact(self, stack: Stack, browser: Any) -> None:
        """A link with the id in its hash opens that contact; an id nobody has is answered in words."""
        shopper = f"linked-{uuid.uuid4().hex[:8]}@example.com"
        send(stack, [{"type": "identify", "anonymousId": f"a-{uuid.uuid4().hex[:8]}", "userId": shopper,
                      "timestamp": at(5), "traits": {"email": shopper, "name": "Linked"}}])
        wait_for(lambda: profile(stack, shopper), 15, "the identified contact")
        context, page, requested = log_in(browser, stack)
        try:
            page.goto(f"{stack.api_url}/dashboard/contacts#{quote(shopper, safe='')}")
            page.wait_for_function("() => document.querySelectorAll('#timeline tbody tr').length >= 1")
            assert page.input_value("#contact-id") == shopper
            assert "Linked" in page.inner_text("#traits")
            assert page.evaluate("() => window.attimoExplorer.contactId()") == shopper
            page.fill("#contact-id", "nobody-at-all")
            page.click("#search button[type=submit]")
            page.wait_for_function("() => document.getElementById('status').textContent.includes('No contact')")
            assert page.locator("#contact").is_hidden()
        finally:
            context.close()
        assert not [url for url in requested if stack.admin_token in url]

    def test_workflows_popups_memberships_and_actions_are_shown(self, stack: Stack, browser: Any) -> None:
        """A profile as the dataflow writes it (seeded in Redis: a contact the dataflow does not hold, so
        nothing rewrites it) shows its workflow step and next due time, popups seen, memberships, actions."""
        now = datetime.now(UTC).timestamp()
        seeded = Profile(
            contact_id="seeded-1", user_id="seeded-1", email="seed@example.com", score=12.0, temperature="warm",
            stage="decision", segments=["cart-abandoners"], tags=["vip"], lists=["newsletter"],
            workflows=[WorkflowPosition(workflow="abandoned-cart", version=2, step="wait-1h", entered_at=now - 60,
                                        due_at=now + 3540)],
            actions=[ActionLogEntry(at=now - 30, workflow="welcome", step="send-mail", outcome="held",
                                    reason="email frequency cap")],
            extensions={"popups": {"spring-sale": {"arm": "a", "impressions": 2, "shown_at": now - 20,
                                                   "closed_at": now - 10}}})
        client = redis_lib.Redis(port=stack.redis.port)
        client.set(keys.contact_profile("seeded-1"), encode_profile(seeded))
        client.close()
        context, page, _ = log_in(browser, stack)
        try:
            page.goto(f"{stack.api_url}/dashboard/contacts#seeded-1")
            page.wait_for_function("() => document.querySelectorAll('#workflows tbody tr').length === 1")
            workflow = page.inner_text("#workflows tbody tr")
            assert "abandoned-cart" in workflow and "wait-1h" in workflow and "in 59 min" in workflow
            popup = page.inner_text("#popups tbody tr")
            assert "spring-sale" in popup and "2" in popup and "s ago" in popup
            assert "email frequency cap" in page.inner_text("#actions")
            memberships = page.inner_text("#memberships")
            assert "cart-abandoners" in memberships and "vip" in memberships and "newsletter" in memberships
            assert "decision" in page.inner_text("#summary") and "warm" in page.inner_text("#summary")
        finally:
            context.close()
