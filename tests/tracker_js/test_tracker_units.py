"""The tracker's small pieces in Node with injected fakes: reconnect backoff after a good connection,
a malformed cookie, the HTTP fallback's answers, the rate limit's bucket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.tracker_js.test_modules import SRC, run_node

# A WebSocket stand-in: each socket does what the next script step says, and
# setTimeout only records delays (the test runs the timers itself, in order).
SCRIPTED = """
    const delays = [], timers = []
    globalThis.setTimeout = (fn, ms) => { delays.push(ms); timers.push(fn); return timers.length }
    globalThis.clearTimeout = () => {}
    Math.random = () => 0.5
    const steps = STEPS
    let now = 1e6
    Date.now = () => now
    globalThis.WebSocket = class {
      constructor(url) {
        const step = steps.shift()
        queueMicrotask(() => {
          if (step.open) { this.readyState = 1; this.onopen() }
          if (step.ack) this.onmessage({ data: JSON.stringify({ ack: 1, accepted: 1, rejected: [] }) })
          if (step.limited) this.onmessage({ data: JSON.stringify({ limited: 1, limit: 'client IP',
            error: 'rate limit exceeded', retryAfter: step.limited }) })
          now += step.ms || 0
          this.readyState = 3
          this.onclose({ code: step.code || 1006, reason: '' })
        })
      }
    }
"""


def reconnect_delays(steps: list[dict[str, Any]], limited: list[list[int]] | None = None) -> list[int]:
    """The delays the transport waits before each reconnect, for sockets that behave as `steps` say
    (`limited`, if given, receives each `limited(seq, ms until it may send)` call)."""
    result: dict[str, Any] = run_node(f"""
        import {{ createTransport }} from '{SRC}/transport.js'
        {SCRIPTED.replace("STEPS", json.dumps(steps))}
        const calls = []
        const on = {{ open() {{}}, ack() {{}}, decision() {{}}, close() {{}}, refused() {{}},
                      limited(seq, until) {{ calls.push([seq, until - Date.now()]) }} }}
        createTransport(() => 'ws://gw/v1/stream?key=k', on, 1000).connect()
        const tick = () => new Promise((r) => queueMicrotask(r))
        for (let i = 0; i < {len(steps)}; i++) {{
          await tick(); await tick(); await tick()
          if (i < {len(steps) - 1}) timers[i]()
        }}
        console.log(JSON.stringify({{ delays, calls }}))""")
    if limited is not None:
        limited.extend(result["calls"])
    return list(result["delays"])


class TestBackoff:
    def test_a_connection_acked_by_the_gateway_starts_the_backoff_again(self) -> None:
        """Failed connects double the wait; after a socket that got an ack it is the base again."""
        delays = reconnect_delays([{}, {}, {"open": True, "ack": True}, {}, {}])
        assert delays == [1000, 2000, 1000, 2000, 4000]

    def test_a_socket_closed_right_after_opening_does_not_reset_it(self) -> None:
        """Open-then-closed at once (an overloaded gateway) keeps growing the wait; five seconds open resets it."""
        assert reconnect_delays([{}, {"open": True}, {"open": True}, {}]) == [1000, 2000, 4000, 8000]
        assert reconnect_delays([{}, {}, {"open": True, "ms": 5000}, {}]) == [1000, 2000, 1000, 2000]

    def test_a_rate_limited_frame_waits_retry_after_and_so_does_the_reconnect_after_4429(self) -> None:
        """A `limited` reply is handed on with when sending may resume (retryAfter s from now); the close
        4429 that follows is retried, not final, and not before that time even when the backoff is shorter."""
        calls: list[list[int]] = []
        delays = reconnect_delays([{"open": True, "limited": 3, "code": 4429}, {"ms": 3000}, {}], calls)
        assert calls == [[1, 3000]]
        # 3 s (retryAfter) instead of the 1 s backoff; then the backoff goes on doubling.
        assert delays == [3000, 2000, 4000]


class TestCookies:
    @pytest.mark.parametrize("jar", ["attimo_aid=%E0%A4%A", "a=1; attimo_aid=%; b=2", "attimo_aid=%zz"])
    def test_a_malformed_cookie_reads_as_absent_instead_of_throwing(self, jar: str) -> None:
        """getCookie() returns null for a value decodeURIComponent cannot decode."""
        got = run_node(f"""
            globalThis.document = {{ cookie: {json.dumps(jar)} }}
            const {{ getCookie }} = await import('{SRC}/storage.js')
            console.log(JSON.stringify([getCookie('attimo_aid'), getCookie('missing')]))""")
        assert got == [None, None]


def post_answer(status: int, body: Any = None, fail: bool = False) -> dict[str, Any]:
    """What postBatch() makes of one fetch answer, and the request it made."""
    result: dict[str, Any] = run_node(f"""
        const seen = []
        globalThis.fetch = (url, init) => {{
          seen.push({{ url, init }})
          if ({json.dumps(fail)}) return Promise.reject(new TypeError('Failed to fetch'))
          const body = {json.dumps(body)}
          return Promise.resolve({{ status: {status},
            json: () => body === null ? Promise.reject(new SyntaxError('no json')) : Promise.resolve(body) }})
        }}
        const {{ postBatch }} = await import('{SRC}/http.js')
        const answer = await postBatch('http://api.example', 'wk_1', [{{ type: 'page', messageId: 'm1' }}])
        const init = seen[0].init
        console.log(JSON.stringify({{ answer, url: seen[0].url, method: init.method, keepalive: init.keepalive,
          credentials: init.credentials, headers: init.headers || null, body: JSON.parse(init.body) }}))""")
    return result


class TestHttpAnswers:
    def test_the_request_is_a_simple_keepalive_post_with_the_write_key_in_the_body(self) -> None:
        """No custom header (no CORS preflight), no cookies, keepalive, {batch, writeKey, sentAt}."""
        got = post_answer(200, {"success": True})
        assert got["answer"] == {"rejected": []}
        assert got["url"] == "http://api.example/v1/batch" and got["method"] == "POST"
        assert got["keepalive"] is True and got["credentials"] == "omit" and got["headers"] is None
        assert got["body"]["writeKey"] == "wk_1" and got["body"]["batch"] == [{"type": "page", "messageId": "m1"}]
        assert got["body"]["sentAt"].endswith("Z")

    @pytest.mark.parametrize(("status", "body", "fail", "answer"), [
        (400, {"accepted": 1, "rejected": [{"index": 1, "error": "event: required"}], "success": False}, False,
         {"accepted": 1, "rejected": [{"index": 1, "error": "event: required"}], "success": False}),
        (400, {"error": "body: not valid JSON", "success": False}, False, {"error": "body: not valid JSON"}),
        (413, None, False, {"error": 413}),
        (401, {"error": "unknown write key"}, False, {"refused": 401}),
        (403, {"error": "origin"}, False, {"refused": 403}),
        (429, {"error": "slow down"}, False, {"retry": 1}),
        (503, None, False, {"retry": 1}),
        (0, None, True, {"retry": 1}),
    ], ids=["rejected-indexes", "whole-batch", "too-large", "unknown-key", "origin", "overloaded", "down",
            "network-or-cors"])
    def test_each_answer_means_stored_refused_dropped_or_retry(
        self, status: int, body: Any, fail: bool, answer: dict[str, Any]
    ) -> None:
        """Per-event rejections come back like a websocket ack's; 401/403 stop; 429, 5xx and errors retry."""
        assert post_answer(status, body, fail)["answer"] == answer


class TestBucket:
    def test_100_at_once_then_10_per_second(self) -> None:
        """The bucket lets a burst of 100 through, then refills a token every 100 ms up to 100."""
        got = run_node(f"""
            let now = 0
            Date.now = () => now
            const {{ bucket }} = await import('{SRC}/limit.js')
            const allow = bucket(10, 100)
            const count = (n) => {{ let k = 0; for (let i = 0; i < n; i++) if (allow()) k++; return k }}
            const burst = count(150)
            now += 1000
            const second = count(50)
            now += 60000
            const full = count(150)
            console.log(JSON.stringify([burst, second, full]))""")
        assert got == [100, 10, 100]
