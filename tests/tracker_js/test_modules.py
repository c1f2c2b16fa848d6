"""The tracker's retry policy and persistent queue, unit-tested in Node with injected storage."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.tracker_js.harness import TRACKER_DIR

SRC = (TRACKER_DIR / "src").as_uri()


def run_node(script: str) -> Any:
    """Run an ES module snippet against tracker_js/src and return what it prints as JSON."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    out = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
        cwd=TRACKER_DIR,
    )
    return json.loads(out.stdout)


class TestBackoff:
    def test_delay_doubles_from_500_ms_with_50_percent_jitter_and_caps_at_30_s(self) -> None:
        """backoff() is 500 ms x 2^n, jittered ±50 %, never above 30 s."""
        got = run_node(f"""
            import {{ backoff }} from '{SRC}/retry.js'
            console.log(JSON.stringify([
              [0, 1, 2, 3].map((n) => backoff(n, 0, 0, () => 0.5)),
              backoff(0, 0, 0, () => 0), backoff(0, 0, 0, () => 0.999),
              backoff(20, 0, 0, () => 0.5), backoff(20, 0, 0, () => 0.999), backoff(20, 0, 0, () => 0),
            ]))""")
        assert got == [[500, 1000, 2000, 4000], 250, 750, 30000, 30000, 15000]


class TestQueue:
    def test_keeps_the_newest_1000_and_writes_once_per_burst(self) -> None:
        """Pushing 1005 events keeps the newest 1000 and writes storage once, after the burst."""
        got = run_node(f"""
            import {{ createQueue }} from '{SRC}/queue.js'
            const store = {{}}; let writes = 0
            const set = (k, v) => {{ writes++; store[k] = v; return true }}
            const q = createQueue('q', 1000, (k) => store[k] ?? null, set)
            for (let i = 0; i < 1005; i++) q.push({{ messageId: 'm' + i }})
            const before = writes
            setTimeout(() => {{
              const saved = JSON.parse(store.q)
              console.log(JSON.stringify([before, writes, saved.length, saved[0].messageId]))
            }}, 5)""")
        assert got == [0, 1, 1000, "m5"]

    def test_remove_drops_events_by_message_id_and_sees_other_tabs_writes(self) -> None:
        """remove() deletes by messageId; events another tab stored are picked up, not overwritten."""
        got = run_node(f"""
            import {{ createQueue }} from '{SRC}/queue.js'
            const store = {{}}
            const get = (k) => store[k] ?? null, set = (k, v) => {{ store[k] = v; return true }}
            const q = createQueue('q', 10, get, set)
            q.push({{ messageId: 'a' }}); q.push({{ messageId: 'b' }}); q.persist()
            store.q = JSON.stringify([...JSON.parse(store.q), {{ messageId: 'other-tab' }}])
            q.remove(new Set(['a'])); q.persist()
            console.log(JSON.stringify(JSON.parse(store.q).map((e) => e.messageId)))""")
        assert got == ["b", "other-tab"]

    def test_keeps_events_in_memory_when_storage_is_unusable(self) -> None:
        """With storage throwing (private mode), the queue still works for the page."""
        got = run_node(f"""
            import {{ createQueue }} from '{SRC}/queue.js'
            const q = createQueue('q', 10, () => undefined, () => false)
            q.push({{ messageId: 'a' }}); q.persist(); q.push({{ messageId: 'b' }}); q.persist()
            console.log(JSON.stringify(q.all().map((e) => e.messageId)))""")
        assert got == ["a", "b"]


class TestFatalClose:
    def test_only_4401_4403_and_1008_are_final_every_other_close_is_retried(self) -> None:
        """fatal() is true for unknown key, origin refused and policy violation; outages and overload retry."""
        got = run_node(f"""
            import {{ fatal }} from '{SRC}/retry.js'
            const codes = [4401, 4403, 1008, 1000, 1001, 1006, 1011, 1012, 1013, 4400, 4429, 4500]
            console.log(JSON.stringify(codes.filter(fatal)))""")
        assert got == [4401, 4403, 1008]


# A WebSocket stand-in for Node: every socket opens, then closes with `code`.
FAKE_SOCKETS = """
    const sockets = []
    globalThis.WebSocket = class {
      constructor(url) {
        sockets.push(url)
        setTimeout(() => { this.readyState = 1; this.onopen() }, 0)
        setTimeout(() => { this.readyState = 3; this.onclose({ code: CODE, reason: REASON }) }, 1)
      }
    }
"""


def transport_run(code: int, reason: str) -> dict[str, Any]:
    """Connect a transport (1 ms base backoff) to sockets that always close with `code`; report after 150 ms.

    It exits then: a transport that retries would keep Node alive.
    """
    fake = FAKE_SOCKETS.replace("CODE", str(code)).replace("REASON", json.dumps(reason))
    result: dict[str, Any] = run_node(f"""
        import {{ createTransport }} from '{SRC}/transport.js'
        {fake}
        const refused = [], closes = []
        const on = {{ open() {{}}, ack() {{}}, decision() {{}},
                      close() {{ closes.push(1) }}, refused(c, r) {{ refused.push([c, r]) }} }}
        createTransport(() => 'ws://gw/v1/stream?key=k', on, 1).connect()
        setTimeout(() => {{
          console.log(JSON.stringify({{ sockets: sockets.length, closes: closes.length, refused }}))
          process.exit()
        }}, 150)""")
    return result


class TestTransportRefused:
    @pytest.mark.parametrize(("code", "reason"), [(4401, "unknown write key"), (4403, "origin not allowed"),
                                                  (1008, "")])
    def test_a_final_close_is_reported_once_and_never_reconnects(self, code: int, reason: str) -> None:
        """After 4401 / 4403 / 1008 the transport calls refused(code, reason) once and opens no new socket."""
        got = transport_run(code, reason)
        assert got == {"sockets": 1, "closes": 1, "refused": [[code, reason]]}

    def test_an_outage_close_keeps_reconnecting(self) -> None:
        """A 1006 close (outage or refused handshake) reconnects with backoff and reports nothing."""
        got = transport_run(1006, "")
        assert got["sockets"] >= 3 and got["refused"] == []


# What popups.js measures; each test changes one field.
QUIET = {"elapsed": 0, "scroll": 0, "exit": False, "idle": 0, "cart": 0, "url": "https://shop.example/"}


class TestTriggers:
    @pytest.mark.parametrize(
        ("trigger", "state", "fires"),
        [
            ({"kind": "arrival"}, {}, True),
            ({"kind": "after", "seconds": 5}, {"elapsed": 4.9}, False),
            ({"kind": "after", "seconds": 5}, {"elapsed": 5}, True),
            ({"kind": "scroll", "percent": 50}, {"scroll": 49}, False),
            ({"kind": "scroll", "percent": 50}, {"scroll": 50}, True),
            ({"kind": "exit_intent"}, {}, False),
            ({"kind": "exit_intent"}, {"exit": True}, True),
            ({"kind": "inactive", "seconds": 10}, {"idle": 9.99}, False),
            ({"kind": "inactive", "seconds": 10}, {"idle": 10}, True),
            ({"kind": "cart_value", "amount": 50}, {"cart": 50}, False),
            ({"kind": "cart_value", "amount": 50}, {"cart": 50.01}, True),
            ({"kind": "url", "contains": "/sale"}, {}, False),
            ({"kind": "url", "contains": "/sale"}, {"url": "https://shop.example/sale?x=1"}, True),
            ({"kind": "url", "contains": ".*"}, {"url": "https://shop.example/a"}, False),  # not a pattern
            ({"kind": "hologram"}, {"exit": True}, False),  # a kind from a newer server never fires
            ({"kind": "after"}, {"elapsed": 100}, False),  # malformed: no seconds
        ],
    )
    def test_each_trigger_fires_exactly_at_its_threshold(
        self, trigger: dict[str, Any], state: dict[str, Any], fires: bool
    ) -> None:
        """fired(trigger, measured) for every kind, at and around its threshold."""
        got = run_node(f"""
            import {{ fired }} from '{SRC}/triggers.js'
            console.log(JSON.stringify(fired({json.dumps(trigger)}, {json.dumps(QUIET | state)})))""")
        assert got is fires

    def test_choose_takes_the_highest_priority_fired_popup_not_held_first_listed_on_a_tie(self) -> None:
        """Unfired, held and trigger-less popups are skipped; priority decides; a tie keeps the first."""
        popups = [
            {"campaign": "unfired", "priority": 99, "triggers": [{"kind": "exit_intent"}]},
            {"campaign": "held", "priority": 50, "triggers": [{"kind": "arrival"}]},
            {"campaign": "none", "priority": 40, "triggers": []},
            {"campaign": "broken", "priority": 40},
            {"campaign": "first", "priority": 7, "triggers": [{"kind": "exit_intent"}, {"kind": "arrival"}]},
            {"campaign": "tie", "priority": 7, "triggers": [{"kind": "arrival"}]},
            {"campaign": "default", "triggers": [{"kind": "arrival"}]},
        ]
        got = run_node(f"""
            import {{ choose }} from '{SRC}/triggers.js'
            const popups = {json.dumps(popups)}
            const s = {json.dumps(QUIET)}
            console.log(JSON.stringify([
              choose(popups, s, new Set(['held'])).campaign,
              choose(popups.slice(5), s, new Set()).campaign,
              choose(popups.slice(6), s, new Set()).campaign,
              choose(popups.slice(0, 1), s, new Set()),
            ]))""")
        assert got == ["first", "tie", "default", None]


class TestCart:
    def test_cart_value_follows_adds_removes_whole_cart_events_and_orders(self) -> None:
        """Adds and removes move it (quantity 1 by default, never below 0); Cart Viewed resets it; orders empty it."""
        got = run_node(f"""
            import {{ cartAfter }} from '{SRC}/cart.js'
            const steps = [
              ['Product Added', {{ price: 10, quantity: 2 }}],
              ['Product Added', {{ price: 5 }}],
              ['Product Viewed', {{ price: 1000 }}],
              ['Product Removed', {{ price: 10, quantity: 1 }}],
              ['Product Removed', {{ price: 99 }}],
              ['Cart Viewed', {{ products: [{{ price: 3, quantity: 3 }}, null, {{ price: '2' }}] }}],
              ['Checkout Started', {{ value: 42 }}],
              ['Order Completed', {{ revenue: 42 }}],
              ['Product Added', {{ price: 'not a number' }}],
            ]
            let v = 0
            console.log(JSON.stringify(steps.map(([name, p]) => (v = cartAfter(v, name, p)))))""")
        assert got == [20, 25, 25, 15, 0, 11, 42, 0, 0]


class TestSafeUrl:
    def test_only_http_and_https_urls_survive(self) -> None:
        """http(s), absolute or relative to the page, pass; javascript:, data:, blob:, vbscript:, non-strings do not."""
        got = run_node(f"""
            globalThis.location = {{ href: 'https://shop.example/p/1' }}
            const {{ safeUrl }} = await import('{SRC}/dom.js')
            console.log(JSON.stringify([
              'https://a.example/x?y=1', 'http://a.example', '/relative', 'JavaScript:alert(1)',
              ' javascript:alert(1)', 'java\\tscript:alert(1)', 'data:text/html,<b>x</b>', 'blob:https://a/x',
              'vbscript:x', '', null, 42, {{}},
            ].map(safeUrl)))""")
        assert got == ["https://a.example/x?y=1", "http://a.example/", "https://shop.example/relative",
                       None, None, None, None, None, None, None, None, None, None]
