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
        createTransport('ws://gw/v1/stream?key=k', on, 1).connect()
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
