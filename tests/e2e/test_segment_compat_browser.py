"""Segment's own browser library, `@segment/analytics-next`, pointed at Attimo, works unchanged.

Headless Chromium loads a shop page (served by the test's own HTTP server on
another origin; Chromium lets a page reach a loopback API only from a page it
actually loaded from loopback) that loads analytics-next's UMD bundle from
`tests/compat/node_modules` (installed from the npm registry by .ci/setup;
never a CDN) and configures it with Attimo's `cdnURL` and `apiHost`, as a
shop would, once sending each event on its own (`/v1/t`, `/v1/p`, `/v1/i`)
and once in batches (`deliveryStrategy: batching`, `/v1/b`). The page calls
`analytics.page()`, `track()` and `identify()`; the events must land in the
contact's profile, read through the admin API of
the real stack (`attimo run`: gateway, dataflow, API, Redis). Every request
the page makes is recorded: nothing may leave for another host (Segment's
CDN or API), and the library must have fetched its settings from Attimo.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Stack, attimo_run
from tests.helpers import RedisServer, free_port, wait_for

pytestmark = pytest.mark.e2e

BUNDLE: Final = Path(__file__).parents[1] / "compat/node_modules/@segment/analytics-next/dist/umd/index.js"
# Each delivery strategy analytics-next has: one request per event (`/t`, `/p`, `/i`), or batches (`/b`).
DELIVERIES: Final = {
    "standard": ("segment-user-1", {"protocol": "http"}, "tpi"),
    "batching": ("segment-user-2", {"protocol": "http", "deliveryStrategy": {
        "strategy": "batching", "config": {"size": 3, "timeout": 200}}}, "b"),
}

PAGE: Final = """<!doctype html>
<html><head><title>Segment shop</title></head><body>
<script src="/vendor/analytics-next.js"></script>
<script>
  const analytics = AnalyticsNext.AnalyticsBrowser.load(
    {writeKey: %(key)s, cdnURL: %(cdn)s},
    {integrations: {'Segment.io': {apiHost: %(host)s, ...%(options)s}}})
  window.sent = (async () => {
    await analytics.page('Home')
    await analytics.track('Product Viewed', {product_id: 'sku-42', name: 'Blue mug', price: 12.5})
    await analytics.identify(%(user)s, {email: 'shopper@example.com', plan: 'gold'})
    return (await analytics.user()).anonymousId()
  })()
</script>
</body></html>
"""


def shop_page(stack: Stack, delivery: str) -> str:
    """The shop's page, its analytics-next configured with Attimo's cdnURL and apiHost, sending as `delivery`."""
    host = urlsplit(stack.api_url).netloc
    user, options, _ = DELIVERIES[delivery]
    return PAGE % {"key": json.dumps(stack.write_key), "cdn": json.dumps(stack.api_url),
                   "host": json.dumps(f"{host}/v1"), "user": json.dumps(user), "options": json.dumps(options)}


@contextmanager
def shop_server(stack: Stack, port: int) -> Iterator[None]:
    """The shop: its page and analytics-next's bundle, on a free loopback port; yields its origin."""
    files = {f"/{delivery}": ("text/html", shop_page(stack, delivery).encode()) for delivery in DELIVERIES}
    files["/vendor/analytics-next.js"] = ("application/javascript", BUNDLE.read_bytes())

    class Shop(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            content_type, body = files.get(self.path.split("?")[0], ("text/plain", b""))
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Shop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def profile(stack: Stack, contact: str) -> dict[str, Any] | None:
    status, body = stack.get(f"/v1/contacts/{contact}", admin=True)
    return json.loads(body) if status == 200 else None


def landed(stack: Stack, user: str) -> dict[str, Any] | None:
    """The shopper's profile once its page view, product view and identify are all in it."""
    found = profile(stack, user)
    return found if found is not None and len(found.get("recent_events", [])) >= 3 else None


def test_analytics_next_events_land_in_the_contacts_profile_one_by_one_and_batched(
        browser: Any, redis_server: RedisServer, tmp_path: Path) -> None:
    if not BUNDLE.exists():
        pytest.fail(f"{BUNDLE} is missing: .ci/setup installs tests/compat with npm ci")
    shop_port = free_port()
    shop = f"http://localhost:{shop_port}"
    with attimo_run(tmp_path, redis_server, allowed_origins=shop) as stack, shop_server(stack, shop_port):
        requests: list[str] = []
        foreign: list[str] = []

        def route(handled: Any) -> None:
            url = handled.request.url
            requests.append(f"{handled.request.method} {url}")
            if url.startswith((shop + "/", stack.api_url + "/")):
                handled.continue_()
            else:
                foreign.append(url)
                handled.abort()

        for delivery, (user, _, letters) in DELIVERIES.items():
            requests.clear()
            context = browser.new_context()  # a shopper of its own: its own storage and anonymous id
            try:
                context.route("**/*", route)
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
                page.on("console", lambda message, errors=errors: errors.append(message.text)
                        if message.type == "error" else None)
                page.goto(f"{shop}/{delivery}")
                anonymous_id = page.evaluate(
                    "Promise.race([window.sent, new Promise(r => setTimeout(() => r('not sent in 20 s'), 20000))])")
                assert not errors and not foreign, (delivery, errors, foreign, requests)
                assert isinstance(anonymous_id, str) and anonymous_id
                asked = "\n".join(requests)
                assert f"GET {stack.api_url}/v1/projects/{stack.write_key}/settings" in asked
                assert all(re.search(rf"POST {re.escape(stack.api_url)}/v1/{letter}\b", asked) for letter in letters)
                found = wait_for(lambda user=user: landed(stack, user), timeout=30,  # type: ignore[misc]
                                 what=f"the {delivery} shopper's profile with its three events")
            finally:
                context.close()
            assert found is not None and found["user_id"] == user and anonymous_id in found["anonymous_ids"]
            assert found["traits"]["email"] == "shopper@example.com" and found["traits"]["plan"] == "gold"
            kinds = {(event["type"], event.get("name", "")) for event in found["recent_events"]}
            assert {("page", "Home"), ("track", "Product Viewed"), ("identify", user)} <= kinds, kinds
            viewed = next(event for event in found["recent_events"] if event.get("name") == "Product Viewed")
            assert viewed["product_id"] == "sku-42"
