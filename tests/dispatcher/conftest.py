"""Fixtures for the dispatcher: real Redis, real `attimo dispatcher` processes, a real receiver, the admin API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from benchmarks.webhook_receiver import WebhookReceiver
from state.actions import Action, ActionContact
from state.outbox import queue_action
from state.settings import Settings
from tests.helpers import Process, RedisServer, free_port, start_process, wait_for

ADMIN_TOKEN: Final = "dispatch-admin"
ADMIN: Final = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SHARDS: Final = 2
CREATED_AT: Final = 1_795_000_000.0
# Short everything: a 2 s attempt timeout, leases of 4 s (an attempt needs its timeout + 0.5 s of lease).
BASE_SETTINGS: Final = {
    "outbox_shards": str(SHARDS),
    "webhook_timeout_s": "2",
    "dispatcher_lease_s": "4",
    "webhook_retry_schedule": "0.2s,0.2s,0.2s",
    "webhook_retry_jitter": "0",
    "webhook_allowed_networks": "127.0.0.1/32",
    "redis_timeout_s": "2",
}


def action(n: int | str, contact: str = "ada", endpoint: str = "shop", **fields: Any) -> Action:
    """A webhook action as a workflow would decide it."""
    fields.setdefault("payload", {"n": n})
    return Action(id=f"act-{n}", kind="webhook", channel="crm",
                  contact=ActionContact(contact_id=contact, email=f"{contact}@example.com", traits={"name": contact}),
                  workflow_id="welcome", workflow_version=1, step_id="notify", created_at=CREATED_AT,
                  endpoint=endpoint, **fields)


def queue(client: redis.Redis, *actions: Action, shards: int = SHARDS) -> None:
    """Append actions to the outbox the way the dataflow's sink does (exactly once per id)."""
    with client.pipeline(transaction=False) as pipe:
        for a in actions:
            queue_action(pipe, a, shards, 3600)
        pipe.execute()


DispatcherFactory = Callable[..., Process]


@pytest.fixture
def dispatchers(redis_server: RedisServer, tmp_path: Path) -> Iterator[DispatcherFactory]:
    """Start real `attimo dispatcher` processes (`start(name, **settings)`); all stopped at the end."""
    with ExitStack() as stack:

        def start(name: str = "dispatcher", **settings: str) -> Process:
            env = {f"ATTIMO_{k.upper()}": v for k, v in {**BASE_SETTINGS, **settings}.items()}
            env |= {"ATTIMO_REDIS_URL": redis_server.url, "ATTIMO_DATA_DIR": str(tmp_path)}
            process = start_process(["-m", "api.cli", "dispatcher"], env, tmp_path / f"{name}.log")
            stack.callback(process.stop)
            return process

        yield start


@contextmanager
def admin_client(redis_url: str, **settings: Any) -> Iterator[TestClient]:
    """The admin API over the test's Redis."""
    base: dict[str, Any] = {"outbox_shards": SHARDS, "webhook_allowed_networks": "127.0.0.1/32",
                            **settings}
    app = create_app(Settings(redis_url=redis_url, admin_token=ADMIN_TOKEN, write_key="wk-dispatch",
                              api_port=free_port(), rfm_refresh_s=0, **base))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[TestClient]:
    """The admin API (webhook routes) over the test's Redis."""
    with admin_client(redis_server.url) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A real receiver on 127.0.0.1 that answers 200 unless told otherwise, logging every attempt."""
    with WebhookReceiver() as running:
        yield running


def create_endpoint(admin: TestClient, url: str, endpoint_id: str = "shop", secret: str | None = None) -> str:
    """Configure an endpoint through the admin API; its secret."""
    body: dict[str, Any] = {"url": url, "description": "the shop's CRM"}
    if secret is not None:
        body["secret"] = secret
    answer = admin.put(f"/v1/admin/webhooks/endpoints/{endpoint_id}", json=body, headers=ADMIN)
    assert answer.status_code in (200, 201), answer.text
    return secret or str(answer.json()["secret"])


def wait_delivered(receiver: WebhookReceiver, ids: set[str], timeout: float = 20) -> None:
    """Until each id was answered 2xx."""
    wait_for(lambda: ids <= set(receiver.delivered()), timeout, f"deliveries of {sorted(ids)}")


def wait_quiet(client: redis.Redis, timeout: float = 10, shards: int = SHARDS) -> None:
    """Until every outbox entry was read and acked (each action delivered or dead-lettered)."""

    def quiet() -> bool:
        for shard in range(shards):
            stream = f"attimo:outbox:{shard}"
            if not client.exists(stream):
                continue
            groups = client.xinfo_groups(stream)
            last = client.xinfo_stream(stream)["last-generated-id"]
            if not groups or groups[0]["pending"] or groups[0]["last-delivered-id"] != last:
                return False
        return True

    wait_for(quiet, timeout, "the outbox to have nothing pending")
    time.sleep(0.05)
