"""A signed-in user's identity proof: `attimo('identify', userId, traits, {signature})`.

The site's back end signs the user id (hex HMAC-SHA256 with its identity
secret); the tracker passes the signature as `sig` on decisions reads and,
with `uid`, on the websocket handshake, so that the user's decisions (read
and pushed) reach this page and no page that merely claims the id. The
server side is `api/decisions/identity.py`; the real stack refusing an
unsigned read is tested in `tests/e2e/test_popups_browser.py`.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from tests.tracker_js.decisions_data import decisions, popup
from tests.tracker_js.harness import WRITE_KEY, FakeGateway, PageServer, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(20)]

SIG = "a" * 64


def handshake(gateway: FakeGateway, n: int = -1) -> dict[str, str]:
    """The query of the n-th websocket handshake."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(gateway.paths[n]).query))


class TestSignature:
    def test_a_signed_identify_proves_the_user_on_the_socket_and_on_every_later_read(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """identify(id, traits, {signature}) reconnects with uid+sig; the next page reads by user id with sig."""
        page.goto(site.url("basic.html", gateway=gateway.url, data_retry_base_ms="50"))
        gateway.wait_for_events(1)
        assert handshake(gateway) == {"key": WRITE_KEY}
        assert wait_until(lambda: site.decision_reads, what="the first read")[0][1] == {"key": WRITE_KEY}
        page.evaluate(f"attimo('identify', 'ada@example.com', {{plan: 'pro'}}, {{signature: '{SIG}'}})")
        wait_until(lambda: len(gateway.paths) == 2, what="a reconnect proving the user")
        assert handshake(gateway) == {"key": WRITE_KEY, "uid": "ada@example.com", "sig": SIG}
        identify = wait_until(lambda: [e for e in gateway.events() if e["type"] == "identify"], what="identify")
        assert identify[0]["userId"] == "ada@example.com" and "sig" not in identify[0]
        page.reload()
        wait_until(lambda: len(site.decision_reads) == 2, what="the next page's read")
        assert site.decision_reads[1] == ("ada@example.com", {"key": WRITE_KEY, "sig": SIG})
        wait_until(lambda: len(gateway.paths) == 3, what="the next page's socket")
        assert handshake(gateway)["sig"] == SIG

    def test_a_signature_belongs_to_its_user_and_reset_forgets_it(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Identifying as someone else without a signature drops the old one; reset() drops everything."""
        page.goto(site.url("basic.html", gateway=gateway.url, data_retry_base_ms="50"))
        page.wait_for_function("window.attimo && window.attimo.loaded")
        page.evaluate(f"attimo('identify', 'ada', {{}}, {{signature: '{SIG}'}})")
        wait_until(lambda: handshake(gateway).get("uid") == "ada", what="a socket proving ada")
        page.evaluate("attimo('identify', 'bob')")  # no signature for bob
        wait_until(lambda: "uid" not in handshake(gateway), what="a socket proving nobody")
        assert page.evaluate("localStorage.getItem('attimo_sig')") is None
        page.reload()
        wait_until(lambda: len(site.decision_reads) == 2, what="the next page's read")
        visitor, query = site.decision_reads[1]
        assert visitor != "bob" and query == {"key": WRITE_KEY}  # read by the anonymous id
        page.evaluate(f"attimo('identify', 'bob', {{}}, {{signature: '{SIG}'}}); attimo('reset')")
        page.reload()
        wait_until(lambda: len(site.decision_reads) == 3, what="the read after reset")
        assert site.decision_reads[2][1] == {"key": WRITE_KEY}
        assert page.evaluate("[localStorage.getItem('attimo_sig'), localStorage.getItem('attimo_uid')]") == [
            None, None]

    def test_a_push_addressed_to_an_id_the_page_no_longer_is_ignored(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """After reset, a late push for the old anonymous id is dropped; one for the new id is used."""
        page.goto(site.url("widgets.html", gateway=gateway.url))
        old = gateway.wait_for_events(1)[0]["anonymousId"]
        page.evaluate("attimo('reset')")
        new = page.evaluate("attimo('anonymousId')")
        gateway.push({"decision": decisions(popup("for-the-old-visitor")), "id": old})
        gateway.push({"decision": decisions(popup("for-me")), "id": new})
        page.wait_for_selector("[role=dialog]")
        assert page.evaluate("attimo('decision').popups[0].campaign") == "for-me"
