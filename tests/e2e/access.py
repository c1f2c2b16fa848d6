"""Helpers for the keys / tokens / verified-identity tests: a stack with short key caches, and plain HTTP calls."""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.datastructures import Headers
from websockets.sync.client import connect
from websockets.typing import Origin

from state.profile import Profile, decode_profile
from tests.e2e.conftest import Stack, attimo_run
from tests.helpers import running_redis, wait_for

GLOBAL_SECRET = "e2e-global-identity-secret"
SHOP = "https://shop.example"
OTHER_SHOP = "https://other-shop.example"


@contextmanager
def access_stack(directory: Path) -> Iterator[Stack]:
    """`attimo run` with a real Redis and dataflow; write keys cached 0.3 s so a revoke shows at once."""
    directory.mkdir(parents=True, exist_ok=True)
    with running_redis(directory) as redis, attimo_run(
            directory / "stack", redis, identity_secrets=GLOBAL_SECRET, write_key_cache_ttl_s="0.3",
            write_key_negative_ttl_s="0.1") as stack:
        yield stack


def call(stack: Stack, method: str, path: str, body: Any = None, token: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """An HTTP call to the API; (status, decoded JSON body or None)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(stack.api_url + path, method=method, data=data,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw, status = answer.read(), answer.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


def batch(stack: Stack, key: str, events: list[dict[str, Any]], origin: str | None = None) -> tuple[int, Any]:
    """`POST /v1/batch` with `key` as the HTTP Basic user, from a browser page when `origin` is given."""
    auth = base64.b64encode(f"{key}:".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", **({"Origin": origin} if origin else {})}
    return call(stack, "POST", "/v1/batch", {"batch": events}, headers=headers)


def ws_frame(stack: Stack, key: str, events: list[dict[str, Any]], origin: str = SHOP) -> dict[str, Any]:
    """One frame over the websocket from a page of `origin`; the gateway's reply (an ack)."""
    with connect(f"{stack.gateway_url}/v1/stream?key={key}", origin=Origin(origin), open_timeout=5) as ws:
        ws.send(json.dumps({"seq": 1, "batch": events}))
        reply: dict[str, Any] = json.loads(ws.recv(timeout=10))
        return reply


def ws_close_code(stack: Stack, key: str, origin: str) -> int | None:
    """The close code the gateway ends a socket with right after its handshake (4401 / 4403), if any."""
    with connect(f"{stack.gateway_url}/v1/stream?key={key}", origin=Origin(origin), open_timeout=5,
                 additional_headers=Headers()) as ws:
        with contextlib.suppress(Exception):  # the close is what we read
            ws.recv(timeout=5)
        return ws.close_code


def call_until(check: Any, timeout: float, what: str) -> tuple[int, Any]:
    """Repeat `check()` (an HTTP call's (status, body), or False) until it gives the answer."""
    found = wait_for(check, timeout, what, interval=0.1)
    assert isinstance(found, tuple)
    return found


def profile(stack: Stack, contact_id: str) -> Profile | None:
    """The contact's profile as the admin API shows it (None while it has none)."""
    status, raw = stack.get(f"/v1/contacts/{contact_id}", admin=True)
    return decode_profile(raw) if status == 200 else None


def wait_profile(stack: Stack, contact_id: str, check: Any, what: str, timeout: float = 20) -> Profile:
    """Poll the profile until `check(profile)` holds."""
    found = wait_for(lambda: (p := profile(stack, contact_id)) is not None and check(p) and p, timeout, what,
                     interval=0.1)
    assert isinstance(found, Profile)
    return found


def make_site(stack: Stack, site_id: str, origins: list[str], **extra: Any) -> dict[str, Any]:
    """Create a site with the dev admin token; its answer (keys and identity secret in full)."""
    status, body = call(stack, "POST", f"/v1/admin/sites/{site_id}", {"origins": origins, **extra},
                        token=stack.admin_token)
    assert status == 201, body
    assert isinstance(body, dict)
    return body


def make_token(stack: Stack, scopes: list[str], token: str | None = None) -> dict[str, Any]:
    """Make an admin token with `scopes` (with the dev token unless another is given); its answer."""
    status, body = call(stack, "POST", "/v1/admin/tokens", {"scopes": scopes, "name": "test"},
                        token=token or stack.admin_token)
    assert status == 201, body
    assert isinstance(body, dict)
    return body


def redis_holds(stack: Stack, text: str) -> list[str]:
    """Every Redis key whose name or value (strings, hashes, sets, streams) contains `text`."""
    client: Any = stack.redis.client()  # replies are bytes (no decode_responses)
    needle = text.encode()
    found: list[str] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        values: list[bytes] = [key]
        if kind == b"string":
            values.append(client.get(key) or b"")
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                values += [field, value]
        elif kind in (b"set",):
            values += list(client.smembers(key))
        elif kind == b"zset":
            values += [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == b"list":
            values += list(client.lrange(key, 0, -1))
        elif kind == b"stream":
            for _, fields in client.xrange(key):
                for field, value in fields.items():
                    values += [field, value]
        if any(needle in v for v in values):
            found.append(key.decode(errors="replace"))
    return found
