"""Segment count preview through the real stack: the count equals the members the saved segment gets."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack, attimo_run
from tests.helpers import RedisServer, running_redis, wait_for

pytestmark = [pytest.mark.e2e]

PLANS = {"ada": "gold", "bob": "gold", "cy": "silver", "dee": "silver", "eve": "silver", "fay": "bronze"}
"""Known contacts and their plan trait; one anonymous visitor besides them."""
VISITOR = "anon-visitor-1"


def call(stack: Stack, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
    """An admin API call: (status, decoded JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(stack.api_url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {stack.admin_token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def ingest(stack: Stack, events: list[dict[str, Any]]) -> None:
    """Send events as a shop's back end would (Segment HTTP API, write key as Basic user)."""
    now = datetime.now(UTC).isoformat()
    batch = [{"timestamp": now, **e} for e in events]
    auth = base64.b64encode(f"{stack.write_key}:".encode()).decode()
    request = urllib.request.Request(stack.api_url + "/v1/batch", data=json.dumps({"batch": batch}).encode(),
                                     headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def seed(stack: Stack) -> None:
    """Six known contacts with a plan (gold ones also view shoes twice), one anonymous visitor; wait for all."""
    events: list[dict[str, Any]] = []
    for user, plan in PLANS.items():
        events.append({"type": "identify", "userId": user, "traits": {"plan": plan}, "messageId": f"id-{user}"})
        if plan == "gold":
            events += [{"type": "track", "userId": user, "event": "Product Viewed", "messageId": f"pv-{user}-{i}",
                        "properties": {"product_id": "p1", "category": "shoes", "price": 10}} for i in range(2)]
    events.append({"type": "page", "anonymousId": VISITOR, "name": "Home", "messageId": "page-anon"})
    ingest(stack, events)
    for contact in [*PLANS, VISITOR]:
        wait_for(lambda c=contact: stack.get(f"/v1/contacts/{c}", admin=True)[0] == 200,  # type: ignore[misc]
                 20, f"the profile of {contact}")


def saved_members(stack: Stack, segment_id: str, when: dict[str, Any]) -> int:
    """Save the tree as a segment, wait for its backfill, and return its member count."""
    status, published = call(stack, "PUT", f"/v1/admin/segments/{segment_id}", {"when": when})
    assert status in (200, 201), published
    version = published["version"]
    wait_for(lambda: call(stack, "GET", f"/v1/admin/segments/{segment_id}/backfill?version={version}")[1]["done"],
             20, f"the backfill of {segment_id}")
    status, page = call(stack, "GET", f"/v1/admin/segments/{segment_id}/members?limit=1000")
    assert status == 200
    return int(page["count"])


def state_of(stack: Stack) -> dict[str, Any]:
    """What a preview must not change: every profile, every segment's members, the configuration."""
    profiles = {c: stack.get(f"/v1/contacts/{c}", admin=True)[1] for c in [*PLANS, VISITOR]}
    segments = call(stack, "GET", "/v1/admin/segments")[1]["data"]
    members = {s["id"]: call(stack, "GET", f"/v1/admin/segments/{s['id']}/members")[1] for s in segments}
    return {"profiles": profiles, "members": members, "config": call(stack, "GET", "/v1/admin/config")[1]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One seeded stack for the module (16 contact shards: 32 answers per preview)."""
    directory: Path = tmp_path_factory.mktemp("preview")
    with running_redis(directory / "redis") as redis_server, \
            attimo_run(directory / "stack", redis_server, CONTACT_SHARDS="16") as running:
        seed(running)
        yield running


TREES: list[tuple[str, dict[str, Any]]] = [
    ("gold", {"kind": "trait", "name": "plan", "value": "gold"}),
    ("shoe-or-silver", {"kind": "any", "of": [
        {"kind": "trait", "name": "plan", "value": "silver"},
        {"kind": "count", "dimension": "category", "value": "shoes", "event": "Product Viewed",
         "window_s": 86400, "op": "gte", "n": 2}]}),
    ("nobody", {"kind": "trait", "name": "plan", "value": "platinum"}),
    ("not-gold-member", {"kind": "not", "of": {"kind": "segment", "segment": "gold"}}),
]


class TestPreviewMatchesSavedMembers:
    """The preview's count is the member count the same tree gets once saved and backfilled."""

    @pytest.mark.parametrize(("segment_id", "when"), TREES, ids=[t[0] for t in TREES])
    def test_preview_equals_members_after_saving(self, stack: Stack, segment_id: str,
                                                 when: dict[str, Any]) -> None:
        if segment_id == "not-gold-member":  # it refers to segment gold, which must exist
            saved_members(stack, "gold", TREES[0][1])
        status, preview = call(stack, "POST", "/v1/admin/segments/preview", {"when": when})
        assert status == 200, preview
        assert preview["evaluated"] == len(PLANS) + 1  # every contact, the anonymous visitor too
        assert preview["shards"] == 32 and preview["failed"] == 0
        assert preview["matching"] == saved_members(stack, segment_id, when)

    def test_expected_counts(self, stack: Stack) -> None:
        """The counts themselves, so equal-but-wrong on both sides cannot pass."""
        counts = {sid: call(stack, "POST", "/v1/admin/segments/preview", {"when": when})[1]["matching"]
                  for sid, when in TREES[:3]}
        assert counts == {"gold": 2, "shoe-or-silver": 5, "nobody": 0}


class TestPreviewChangesNothing:
    """A preview leaves every profile, membership and the configuration as they were."""

    def test_state_is_unchanged(self, stack: Stack) -> None:
        saved_members(stack, "gold", TREES[0][1])
        before = state_of(stack)
        for _ in range(2):
            status, _body = call(stack, "POST", "/v1/admin/segments/preview",
                                 {"when": {"kind": "trait", "name": "plan", "op": "exists", "value": True}})
            assert status == 200
        time.sleep(0.5)  # anything a preview wrongly caused would have been written by now
        assert state_of(stack) == before

    def test_bad_tree_is_422(self, stack: Stack) -> None:
        status, body = call(stack, "POST", "/v1/admin/segments/preview", {"when": {"kind": "trait", "nam": "x"}})
        assert status == 422 and "nam" in body["error"]


class TestDataflowStopped:
    """With the dataflow stopped, a preview answers 504 in bounded time, naming the shards."""

    def test_504_when_the_dataflow_is_stopped(self, redis_server: RedisServer, tmp_path: Path) -> None:
        with attimo_run(tmp_path, redis_server, CONTACT_SHARDS="4") as running:
            status, body = call(running, "POST", "/v1/admin/segments/preview", {"when": TREES[0][1]})
            assert status == 200 and body["shards"] == 8
            pid = int(wait_for(lambda: running.child_pid(r"python.* -m dataflows$"), 10, "the dataflow's pid") or 0)
            # SIGSTOP: the process is alive for the supervisor (no restart) but answers nothing.
            os.kill(pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                status, body = call(running, "POST", "/v1/admin/segments/preview?timeout_s=1",
                                    {"when": TREES[0][1]})
                elapsed = time.monotonic() - started
            finally:
                os.kill(pid, signal.SIGCONT)
        assert status == 504, body
        assert elapsed < 4
        assert len(body["missing"]) == 8 and "visitors:0" in body["missing"]
