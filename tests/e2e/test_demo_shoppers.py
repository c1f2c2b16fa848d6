"""`attimo demo`: simulated shoppers over real websockets make a live system to look at."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from api.demo.segments import DEMO_SEGMENTS
from state import keys
from tests.e2e.conftest import Stack
from tests.helpers import REPO, wait_for

pytestmark = pytest.mark.e2e


def test_demo_shoppers_browse_and_appear_as_contacts(running_stack: Stack) -> None:
    """Five shoppers for a few seconds: their page views reach profiles through the whole stack."""
    env = {**os.environ, "ATTIMO_REDIS_URL": running_stack.redis.url,
           "ATTIMO_GATEWAY_PUBLIC_URL": running_stack.gateway_url, "ATTIMO_API_PUBLIC_URL": running_stack.api_url,
           "ATTIMO_WRITE_KEY": running_stack.write_key, "ATTIMO_ADMIN_TOKEN": running_stack.admin_token}
    done = subprocess.run([sys.executable, "-m", "api.cli", "demo", "--shoppers", "5", "--seconds", "4",
                           "--min-pause", "0.05", "--max-pause", "0.2"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    client = running_stack.redis.client()
    wait_for(lambda: len(list(client.scan_iter(match=keys.contact_profile("*")))) >= 5, 10,
             "the five shoppers' profiles")
    # The demo's segments are installed and live: the shoppers' carts put someone in "Has a cart".
    status, body = running_stack.get("/v1/admin/segments", admin=True)
    assert status == 200
    assert set(DEMO_SEGMENTS) <= {s["id"] for s in json.loads(body)["data"]}
    carts = sum(1 for key in client.scan_iter(match=keys.contact_profile("*"))
                if b'"cart":[{' in (client.get(key) or b""))
    assert carts > 0, "no shopper added to a cart"
    wait_for(lambda: len(client.zrange(keys.segment_members("demo-with-cart"), 0, -1)) == carts, 10,
             "every shopper with a cart to be in the demo segment")
