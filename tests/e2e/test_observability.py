"""Operators can watch the real stack: every process's /metrics moves with the events sent, process stats
appear for every part, and a part the supervisor restarts is counted."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio
from websockets.sync.client import connect
from websockets.typing import Origin

from state import keys
from state.process_stats import ProcessStats, read_process_stats
from state.streams import ENTRY_FIELD
from tests.e2e.conftest import Stack, attimo_run, wait_for_pid
from tests.e2e.workflow_stack import workflow_stack
from tests.helpers import free_port, running_redis, wait_for

pytestmark = pytest.mark.e2e

PORTS = ("gateway_metrics_port", "dataflow_metrics_port", "dispatcher_metrics_port")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        return str(answer.read().decode())


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent); labels given must all match."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(4))
    return total


def event(kind: str, anonymous_id: str, **extra: object) -> dict[str, object]:
    return {"type": kind, "anonymousId": anonymous_id, "messageId": str(uuid.uuid4()), **extra}


def post_batch(stack: Stack, events: list[dict[str, object]]) -> int:
    request = urllib.request.Request(stack.api_url + "/v1/batch", data=json.dumps({"batch": events}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{stack.write_key}:".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def process_stats(stack: Stack) -> list[ProcessStats]:
    async def read() -> list[ProcessStats]:
        client = redis.asyncio.Redis.from_url(stack.redis.url)
        try:
            return await read_process_stats(client)
        finally:
            await client.aclose()
    return asyncio.run(read())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, int]]]:
    """`attimo run` with each process's metrics on a free port."""
    directory = tmp_path_factory.mktemp("observability")
    ports = {name: free_port() for name in PORTS}
    with running_redis(directory / "redis") as server, \
            attimo_run(directory / "stack", server, **{k: str(v) for k, v in ports.items()}) as running:
        yield running, ports


class TestMetrics:
    """Each process answers /metrics, and its counters move with the events sent through the stack."""

    def test_counters_move_with_events_through_api_gateway_and_dataflow(
            self, stack: tuple[Stack, dict[str, int]]) -> None:
        """3 good + 1 bad over HTTP, 2 over the websocket: the API, gateway and dataflow count them."""
        running, ports = stack
        gateway_url = f"http://127.0.0.1:{ports['gateway_metrics_port']}/metrics"
        dataflow_url = f"http://127.0.0.1:{ports['dataflow_metrics_port']}/metrics"
        dispatcher_url = f"http://127.0.0.1:{ports['dispatcher_metrics_port']}/metrics"
        api_before, gateway_before = scrape(running.api_url + "/metrics"), scrape(gateway_url)
        dataflow_before = wait_for(lambda: _try(dataflow_url), 20, "the dataflow's metrics")
        visitor = "v-" + uuid.uuid4().hex[:8]
        batch = [event("page", visitor) for _ in range(3)] + [{"type": "track", "anonymousId": visitor}]
        assert post_batch(running, batch) == 400  # the one without `event` / messageId is rejected
        with connect(f"{running.gateway_url}/v1/stream?key={running.write_key}",
                     origin=Origin(running.api_url)) as socket:
            socket.send(json.dumps({"seq": 1, "batch": [event("page", visitor), event("page", visitor)]}))
            assert json.loads(socket.recv(timeout=10))["accepted"] == 2
            gateway = scrape(gateway_url)
            assert sample(gateway, "attimo_gateway_connections") >= 1
        running.get(f"/v1/decisions/{visitor}?key={running.write_key}")

        api = scrape(running.api_url + "/metrics")
        for outcome, moved in (("accepted", 3), ("rejected", 1)):
            assert (sample(api, "attimo_api_ingest_events_total", outcome=outcome)
                    - sample(api_before, "attimo_api_ingest_events_total", outcome=outcome)) == moved
        assert sample(api, "attimo_api_request_seconds_count", route="/v1/batch", method="POST", status="400") >= 1
        assert sample(api, "attimo_api_request_seconds_count", route="/v1/decisions/{visitor_id}",
                      status="200") >= 1
        assert "process_cpu_seconds_total" in api  # the default registry, with its process collector

        gateway = scrape(gateway_url)
        assert (sample(gateway, "attimo_gateway_events_total", outcome="accepted")
                - sample(gateway_before, "attimo_gateway_events_total", outcome="accepted")) == 2
        assert (sample(gateway, "attimo_gateway_frames_total", reply="ack")
                - sample(gateway_before, "attimo_gateway_frames_total", reply="ack")) == 1
        assert "attimo_gateway_decision_frames_pushed_total" in gateway

        def dataflow_moved() -> bool:
            now = scrape(dataflow_url)
            return (sample(now, "attimo_dataflow_events_total")
                    - sample(dataflow_before, "attimo_dataflow_events_total")) >= 5
        wait_for(dataflow_moved, 20, "the dataflow to count the 5 events it read")
        dataflow = scrape(dataflow_url)
        assert sample(dataflow, "attimo_dataflow_batch_seconds_count", step="read") >= 1
        assert sample(dataflow, "attimo_dataflow_batch_seconds_count", step="write") >= 1
        assert "attimo_dataflow_stream_lag_seconds{shard=" in dataflow

        # An entry no one can read (written past the ingest checks) is quarantined, and counted.
        client = running.redis.client()
        client.xadd(keys.event_stream(0), {ENTRY_FIELD: b"{not json"})
        client.close()
        wait_for(lambda: sample(scrape(dataflow_url), "attimo_dataflow_quarantined_total", stage="source")
                 - sample(dataflow_before, "attimo_dataflow_quarantined_total", stage="source") == 1,
                 20, "the unreadable entry to be counted as quarantined")
        assert "attimo_dispatcher_deliveries_total" in wait_for(lambda: _try(dispatcher_url), 20,
                                                                  "the dispatcher's metrics")


def _try(url: str) -> str | None:
    try:
        return scrape(url)
    except OSError:
        return None


class TestProcessStats:
    """Every part reports itself; a part the supervisor restarts is counted."""

    def test_every_part_appears_and_a_killed_dispatcher_counts_one_restart(
            self, stack: tuple[Stack, dict[str, int]]) -> None:
        """api, gateway, dataflow and dispatcher appear with their pids; kill -9 the dispatcher: restarts 1."""
        running, _ports = stack
        parts = wait_for(lambda: {"api", "gateway", "dataflow", "dispatcher"} <= {s.part for s in
                                                                                   process_stats(running)},
                         20, "every part's process stats")
        assert parts
        stats = {s.part: s for s in process_stats(running)}
        old = wait_for_pid(lambda: running.child_pid(r"api\.cli dispatcher$"), 5, "the dispatcher")
        assert stats["dispatcher"].pid == old and stats["dispatcher"].restarts == 0
        assert all(s.rss_bytes > 10_000_000 and s.started_at <= s.at for s in stats.values())
        os.kill(old, signal.SIGKILL)
        new = wait_for_pid(lambda: running.child_pid(r"api\.cli dispatcher$"), 20, "the dispatcher's restart",
                           other_than=old)
        restarted = wait_for(lambda: next((s for s in process_stats(running)
                                           if s.part == "dispatcher" and s.pid == new), None),
                             20, "the restarted dispatcher's stats")
        assert restarted.restarts == 1
        assert {s.part: s.restarts for s in process_stats(running)}["api"] == 0


class TestDeliveryMetrics:
    """The dispatcher counts what it delivered."""

    def test_a_delivered_webhook_moves_the_dispatchers_counters(self, tmp_path: Path) -> None:
        """The workflow stack's probe webhook is delivered: delivered +1 and one latency observation."""
        port, dataflow_port = free_port(), free_port()
        with workflow_stack(tmp_path, dispatcher_settings={"dispatcher_metrics_port": str(port)},
                            dataflow_settings={"dataflow_metrics_port": str(dataflow_port)}):
            text = scrape(f"http://127.0.0.1:{port}/metrics")
            assert sample(text, "attimo_dispatcher_deliveries_total", outcome="delivered") >= 1
            assert sample(text, "attimo_dispatcher_delivery_latency_seconds_count") >= 1
            assert sample(text, "attimo_dispatcher_attempt_seconds_count") >= 1
            assert sample(text, "attimo_dispatcher_deliveries_total", outcome="dead_lettered") == 0
