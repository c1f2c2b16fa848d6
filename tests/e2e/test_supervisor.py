"""`attimo run` keeps the system up: a part that dies is restarted and nothing is lost."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import urllib.request
import uuid

import pytest

from tests.e2e.conftest import Stack
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def post_batch(stack: Stack, events: list[dict[str, object]]) -> int:
    """Send a Segment batch the way a server-side Segment library does."""
    body = json.dumps({"batch": events}).encode()
    request = urllib.request.Request(stack.api_url + "/v1/batch", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{stack.write_key}:".encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def order(user_id: str, revenue: float) -> dict[str, object]:
    return {"type": "track", "event": "Order Completed", "userId": user_id,
            "messageId": str(uuid.uuid4()), "properties": {"order_id": str(uuid.uuid4()), "revenue": revenue}}


def child_pid(stack: Stack, module: str) -> int | None:
    """The pid of the supervised child running `python -m <module>`."""
    out = subprocess.run(["pgrep", "-P", str(stack.process.popen.pid), "-f", f"python.* -m {module}$"],
                         capture_output=True, text=True, check=False).stdout.split()
    return int(out[0]) if out else None


class TestSupervision:
    """A crash costs seconds and loses nothing."""

    def test_killed_dataflow_is_restarted_and_every_order_is_counted_once(self, running_stack: Stack) -> None:
        """kill -9 the dataflow; `attimo run` restarts it; orders sent meanwhile all count, once."""
        user = "buyer@example.com"
        assert post_batch(running_stack, [order(user, 10.0) for _ in range(5)]) == 200

        def orders() -> int:
            status, body = running_stack.get(f"/v1/contacts/{user}", admin=True)
            return int(json.loads(body)["counters"]["orders"]) if status == 200 else 0

        wait_for(lambda: orders() == 5, 10, "the first orders to be counted")
        old = wait_for(lambda: child_pid(running_stack, "dataflows"), 5, "the dataflow process")
        os.kill(old, signal.SIGKILL)
        assert post_batch(running_stack, [order(user, 10.0) for _ in range(7)]) == 200
        new = wait_for(lambda: (pid := child_pid(running_stack, "dataflows")) not in (None, old) and pid,
                       15, "the dataflow to be restarted")
        assert new != old
        wait_for(lambda: orders() == 12, 30, "all 12 orders to be counted exactly once")
        _status, body = running_stack.get(f"/v1/contacts/{user}", admin=True)
        assert json.loads(body)["counters"]["revenue"] == 120.0
        assert "part died; restarting" in running_stack.process.log()
