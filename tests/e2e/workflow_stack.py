"""The workflow stack for end-to-end tests: the real dataflow, dispatcher and receiver, and the admin API.

`workflow_stack(directory)` brings up, on one Redis (a private one unless
given):

- the dataflow (`python -m dataflows`), which runs workflows per contact
  and appends their actions to the outbox;
- the dispatcher (`python -m api.cli dispatcher`), which delivers them as
  Standard Webhooks;
- a real HTTP receiver on 127.0.0.1 (`benchmarks.webhook_receiver`) that
  answers 2xx and logs every attempt;
- the admin API as a `TestClient`, through which workflows, recipes,
  endpoints and the messaging policy are published as a user would;

and checks the whole chain once (a probe contact entered by hand into a
probe workflow, its webhook received) before it yields a `WorkflowStack`.

A test drives the stack with events of known contacts (`track`,
`identify`, `page`; `stack.send` appends them as the gateway does, to
`STREAM_SHARDS` streams like `tests.dataflows.live`) and reads what came
out: the receiver's deliveries, each verified with the reference
`standardwebhooks` library against the secret of the endpoint it was sent
to (`stack.deliveries`, `wait_steps`), what the dataflow decided before
anything is delivered (`stack.position`, `stack.logged`, the profile) and
a workflow's counters (`stack.stats`). Every wait is bounded
(`wait_until`). `stack.dataflow` and `stack.dispatcher` are the processes
(`kill_hard()` them; `start_dataflow()` / `start_dispatcher()` start
more).

The stack is shared: start it once per module and give each scenario its
own contacts, workflow ids and endpoint. Every method may be called from
several threads at once (`run_concurrently`), so scenarios whose delays
would otherwise add up overlap instead. Workflows run per contact on the
live configuration, so a state-triggered workflow (inactivity, idle cart,
score …) may enter another scenario's contacts too: read deliveries by
contact *and* workflow.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import msgspec
import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from api.app import create_app
from benchmarks.webhook_receiver import Answer, Attempt, WebhookReceiver
from state import keys
from state.actions import OUTBOX_FIELD, Action, decode_action
from state.config import ScoringRule
from state.events import Event, Identify, Page, Track
from state.profile import ActionLogEntry, Profile, WorkflowPosition, decode_profile
from state.settings import Settings
from state.streams import append_events_sync
from state.workflows import MessagingPolicy, OnManual, SendWebhook, Workflow
from tests.helpers import Process, RedisServer, free_port, running_redis, start_process

T = TypeVar("T")

STREAM_SHARDS: Final = 2
OUTBOX_SHARDS: Final = 2
ADMIN_TOKEN: Final = "workflow-e2e-admin"
ADMIN: Final = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

DATAFLOW_SETTINGS: Final = {
    "stream_shards": str(STREAM_SHARDS),
    "outbox_shards": str(OUTBOX_SHARDS),
    "snapshot_interval_s": "1",
}
# Short attempts and leases (a lease must outlast 4/3 of an attempt), quick retries, 127.0.0.1 allowed.
DISPATCHER_SETTINGS: Final = {
    "outbox_shards": str(OUTBOX_SHARDS),
    "webhook_timeout_s": "2",
    "dispatcher_lease_s": "4",
    "webhook_retry_schedule": "0.2s,0.2s,0.2s",
    "webhook_retry_jitter": "0",
    "webhook_allowed_networks": "127.0.0.1/32",
    "redis_timeout_s": "2",
}
PROBE: Final = "e2e-probe"


# ---- events ---------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(UTC)


def track(contact: str, name: str, /, **properties: Any) -> Track:
    """A `track` event of the known contact `contact` (its user id), happening and received now."""
    at = _now()
    return Track(message_id=str(uuid.uuid4()), user_id=contact, event=name, timestamp=at, received_at=at,
                 properties=properties)


def identify(contact: str, /, **traits: Any) -> Identify:
    """An `identify` of the known contact `contact` with these traits, now."""
    at = _now()
    return Identify(message_id=str(uuid.uuid4()), user_id=contact, timestamp=at, received_at=at, traits=traits)


def page(contact: str) -> Page:
    """A page view of the known contact `contact`, now."""
    at = _now()
    return Page(message_id=str(uuid.uuid4()), user_id=contact, timestamp=at, received_at=at)


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll `check` until it returns something other than None (an empty list counts); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while (value := check()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return value


# ---- what the receiver got -------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    """One webhook the receiver answered 2xx, its signature verified: when it came and the action it carried."""

    webhook_id: str
    received_at: float
    body: dict[str, Any]
    action: Action

    @property
    def contact(self) -> str:
        return self.action.contact.contact_id

    @property
    def workflow(self) -> str:
        return self.action.workflow_id

    @property
    def step(self) -> str:
        return self.action.step_id

    @property
    def template(self) -> Any:
        """The recipe's template name (`payload.template`), what the shop's tool picks its message by."""
        return self.action.payload.get("template")


@dataclass(frozen=True)
class Published:
    """A workflow as the admin API published it, and the configuration version that carries it."""

    config_version: int
    workflow: Workflow


@dataclass
class _Log:
    """The receiver's attempts, verified and decoded once each, in arrival order."""

    seen: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    by_contact: dict[str, list[Delivery]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


# ---- the stack ------------------------------------------------------------------

class WorkflowStack:
    """A running stack (see the module's docstring): publish through the admin API, send, read what came out."""

    def __init__(self, redis_server: RedisServer, admin: TestClient, receiver: WebhookReceiver,
                 directory: Path, processes: ExitStack, dataflow_settings: Mapping[str, str],
                 dispatcher_settings: Mapping[str, str]) -> None:
        self.redis_server = redis_server
        self.client = redis_server.client()
        self.admin = admin
        self.receiver = receiver
        self.directory = directory
        self.secrets: dict[str, str] = {}
        self.dataflow_settings = dict(dataflow_settings)
        self.dispatcher_settings = dict(dispatcher_settings)
        self._processes = processes
        self._started = 0
        self._admin_lock = threading.Lock()  # one admin request at a time (read-modify-publish)
        self._endpoints_lock = threading.Lock()  # an endpoint is created once (its secret is shown once)
        self._log_lock = threading.Lock()
        self._log = _Log()
        self.dataflow = self.start_dataflow()
        self.dispatcher = self.start_dispatcher()

    # -- processes

    def start_dataflow(self) -> Process:
        """Start a dataflow process (another one after `kill_hard`, say); stopped when the stack ends."""
        env = {"ATTIMO_REDIS_URL": self.redis_server.url, "ATTIMO_DATA_DIR": str(self.directory / "dataflow"),
               **{f"ATTIMO_{k.upper()}": v for k, v in self.dataflow_settings.items()}}
        (self.directory / "dataflow").mkdir(parents=True, exist_ok=True)
        return self._start(["-m", "dataflows"], env, "dataflow")

    def start_dispatcher(self) -> Process:
        """Start a dispatcher process (several may run); stopped when the stack ends."""
        env = {"ATTIMO_REDIS_URL": self.redis_server.url, "ATTIMO_DATA_DIR": str(self.directory),
               **{f"ATTIMO_{k.upper()}": v for k, v in self.dispatcher_settings.items()}}
        return self._start(["-m", "api.cli", "dispatcher"], env, "dispatcher")

    def _start(self, args: list[str], env: dict[str, str], name: str) -> Process:
        self._started += 1
        process = start_process(args, env, self.directory / f"{name}-{self._started}.log")
        self._processes.callback(process.stop)
        return process

    # -- the admin API

    def request(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201, 202)) -> Any:
        """An admin API request (JSON body and answer); fails unless the status is one of `expect`."""
        with self._admin_lock:
            answer = self.admin.request(method, path, json=body, headers=ADMIN)
        assert answer.status_code in expect, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def endpoint(self, endpoint_id: str) -> str:
        """Configure webhook endpoint `endpoint_id` at the receiver (once); its generated secret."""
        with self._endpoints_lock:
            if endpoint_id not in self.secrets:
                answer = self.request("PUT", f"/v1/admin/webhooks/endpoints/{endpoint_id}",
                                      {"url": self.receiver.url, "description": f"e2e {endpoint_id}"})
                assert answer["created"] and answer["secret"], answer
                self.secrets[endpoint_id] = str(answer["secret"])
            return self.secrets[endpoint_id]

    def import_recipe(self, name: str, workflow_id: str, endpoint: str, **parameters: float) -> Published:
        """Import a seed recipe as workflow `workflow_id` sending to `endpoint` (created here)."""
        self.endpoint(endpoint)
        answer = self.request("POST", f"/v1/admin/recipes/{name}/import",
                              {"workflow_id": workflow_id, "endpoint": endpoint, "parameters": parameters})
        return Published(int(answer["version"]), msgspec.convert(answer["workflow"], Workflow))

    def put_workflow(self, workflow: Workflow) -> Published:
        """Create or change a workflow (its endpoints are created here); its `version` is counted by the API."""
        for step in workflow.steps:
            if isinstance(step, SendWebhook):
                self.endpoint(step.endpoint)
        body = msgspec.to_builtins(workflow)
        body.pop("version")
        answer = self.request("PUT", f"/v1/admin/workflows/{workflow.id}", body)
        return Published(int(answer["version"]), msgspec.convert(answer["workflow"], Workflow))

    def set_messaging(self, policy: MessagingPolicy) -> None:
        """Replace the messaging policy (caps, quiet hours, default time zone): one for every workflow."""
        self.request("PUT", "/v1/admin/messaging", msgspec.to_builtins(policy))

    def add_scoring_rule(self, rule: ScoringRule) -> None:
        """Add a scoring rule to those in force."""
        with self._admin_lock:
            rules = self.admin.get("/v1/admin/scoring/rules", headers=ADMIN).json()
            answer = self.admin.put("/v1/admin/scoring/rules", json=[*rules, msgspec.to_builtins(rule)],
                                    headers=ADMIN)
        assert answer.status_code == 200, answer.text

    def enter(self, workflow_id: str, contacts: list[str]) -> None:
        """Enter contacts into a workflow by hand (`POST /v1/admin/workflows/{id}/enter`)."""
        self.request("POST", f"/v1/admin/workflows/{workflow_id}/enter", {"contacts": contacts}, expect=(202,))

    def stats(self, workflow_id: str) -> dict[str, int]:
        """The workflow's exact counters (`GET /v1/admin/workflows/{id}/stats`)."""
        return dict(self.request("GET", f"/v1/admin/workflows/{workflow_id}/stats")["counters"])

    def wait_stats(self, workflow_id: str, expected: Mapping[str, int], timeout: float = 10) -> dict[str, int]:
        """The workflow's counters once they include `expected` (a missing counter is 0).

        Counters are written with the actions that move them, so one may land
        a moment after the webhook it counts arrives: wait, never sleep. A
        timeout names the counters as they were.
        """
        seen: dict[str, int] = {}

        def reached() -> dict[str, int] | None:
            seen.clear()
            seen.update(self.stats(workflow_id))
            return dict(seen) if all(seen.get(k, 0) == v for k, v in expected.items()) else None
        try:
            return wait_until(reached, timeout, f"{workflow_id} counters")
        except AssertionError:
            raise AssertionError(f"{workflow_id}: counters {seen}, expected them to include {dict(expected)}") from None

    def dead_letters(self) -> list[dict[str, Any]]:
        """Actions the dispatcher gave up on."""
        return list(self.request("GET", "/v1/admin/webhooks/dead-letters")["data"])

    # -- events in, state out

    def send(self, *events: Event) -> None:
        """Append events to the ingest streams as the gateway does (in this order)."""
        append_events_sync(self.client, list(events), STREAM_SHARDS)

    def profile(self, contact: str) -> Profile | None:
        """The contact's profile as the dataflow last wrote it."""
        raw = cast("bytes | None", self.client.get(keys.contact_profile(contact)))
        return decode_profile(raw) if raw else None

    def wait_profile(self, contact: str, check: Callable[[Profile], object], what: str,
                     timeout: float = 10) -> Profile:
        """The contact's profile once `check` holds on it."""
        def found() -> Profile | None:
            profile = self.profile(contact)
            return profile if profile is not None and check(profile) else None
        return wait_until(found, timeout, f"{contact}: {what}")

    def position(self, contact: str, workflow: str) -> WorkflowPosition | None:
        """Where the contact is in the workflow (step, version, due time), per its profile; None when outside."""
        profile = self.profile(contact)
        found = [p for p in profile.workflows if p.workflow == workflow] if profile is not None else []
        return found[0] if found else None

    def wait_position(self, contact: str, workflow: str, check: Callable[[WorkflowPosition], object], what: str,
                      timeout: float = 10) -> WorkflowPosition:
        """The contact's position in the workflow once `check` holds on it: what the dataflow decided, before
        the dispatcher delivers anything (so a test can act while the contact waits at a step)."""
        def found() -> WorkflowPosition | None:
            position = self.position(contact, workflow)
            return position if position is not None and check(position) else None
        return wait_until(found, timeout, f"{contact} in {workflow}: {what}")

    def logged(self, contact: str, workflow: str) -> list[ActionLogEntry]:
        """The contact's recent messages from the workflow and what became of them (queued, held, skipped)."""
        profile = self.profile(contact)
        return [] if profile is None else [a for a in profile.actions if a.workflow == workflow]

    def outbox(self) -> list[Action]:
        """Every action the dataflow appended to the outbox (delivered ones included, until trimmed)."""
        found = []
        for shard in range(OUTBOX_SHARDS):
            entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", self.client.xrange(keys.outbox(shard)))
            found += [decode_action(fields[OUTBOX_FIELD]) for _, fields in entries]
        return found

    # -- deliveries

    def _catch_up(self) -> _Log:
        with self._log_lock:
            attempts = self.receiver.attempts()
            for attempt in attempts[self._log.seen:]:
                if attempt.ok:
                    self._record(attempt)
            self._log.seen = len(attempts)
            return self._log

    def _record(self, attempt: Attempt) -> None:
        try:
            # The body names the endpoint whose secret must have signed it (one receiver serves them all);
            # a body claiming another endpoint fails the check just the same.
            body = json.loads(attempt.body)
            endpoint = body["data"]["endpoint"]
            Webhook(self.secrets[endpoint]).verify(attempt.body, attempt.headers)
            action = msgspec.convert(body["data"], Action)
        except (ValueError, KeyError, TypeError, WebhookVerificationError, msgspec.ValidationError) as exc:
            self._log.problems.append(f"{attempt.webhook_id}: {exc!r}")
            return
        if action.id != attempt.webhook_id:
            self._log.problems.append(f"{attempt.webhook_id}: the body's action is {action.id}")
        delivery = Delivery(attempt.webhook_id, attempt.received_at, body, action)
        self._log.deliveries.append(delivery)
        self._log.by_contact.setdefault(delivery.contact, []).append(delivery)

    def deliveries(self, contact: str | None = None, workflow: str | None = None) -> list[Delivery]:
        """Webhooks received so far (of one contact, one workflow), in arrival order; every one verified.

        Fails if any attempt answered 2xx did not verify with its endpoint's
        secret or carried another action than its `webhook-id` names.
        """
        log = self._catch_up()
        with self._log_lock:
            assert not log.problems, f"webhooks that do not verify: {log.problems}"
            rows = log.deliveries if contact is None else list(log.by_contact.get(contact, []))
        return [d for d in rows if workflow is None or d.workflow == workflow]

    def steps(self, contact: str, workflow: str) -> list[str]:
        """The steps whose webhooks the contact got from the workflow, in arrival order."""
        return [d.step for d in self.deliveries(contact, workflow)]

    def wait_deliveries(self, contact: str, workflow: str, count: int, timeout: float = 10) -> list[Delivery]:
        """The contact's deliveries from the workflow once there are at least `count`."""
        def enough() -> list[Delivery] | None:
            found = self.deliveries(contact, workflow)
            return found if len(found) >= count else None
        return wait_until(enough, timeout, f"{count} webhook(s) of {workflow} for {contact}")

    def wait_steps(self, contact: str, workflow: str, steps: list[str], timeout: float = 10) -> list[Delivery]:
        """The contact's deliveries from the workflow once they are exactly `steps` (fails on any other)."""
        def done() -> list[Delivery] | None:
            found = self.deliveries(contact, workflow)
            got = [d.step for d in found]
            assert got == steps[:len(got)], f"{contact} in {workflow}: got {got}, expected {steps}"
            return found if len(got) == len(steps) else None
        return wait_until(done, timeout, f"{steps} of {workflow} for {contact}")

    # -- readiness

    def check_chain(self, timeout: float = 30) -> None:
        """A probe contact entered by hand into a probe workflow gets its webhook: every part works."""
        self.put_workflow(Workflow(id=PROBE, trigger=OnManual(), steps=[SendWebhook(id="probe", endpoint=PROBE)],
                                   reentry="always"))
        contact = f"{PROBE}-{uuid.uuid4().hex[:8]}"
        self.enter(PROBE, [contact])
        self.wait_deliveries(contact, PROBE, 1, timeout)


@contextmanager
def workflow_stack(directory: Path, redis_server: RedisServer | None = None,
                   dataflow_settings: Mapping[str, str] | None = None,
                   dispatcher_settings: Mapping[str, str] | None = None,
                   answer: Answer | None = None) -> Iterator[WorkflowStack]:
    """Redis (private unless given), the dataflow, a dispatcher, a receiver and the admin API, checked end to end.

    `dataflow_settings` and `dispatcher_settings` add to or override
    `DATAFLOW_SETTINGS` / `DISPATCHER_SETTINGS` (names without `ATTIMO_`);
    `answer` tells the receiver how to answer (2xx by default; the probe
    must get one). Every process is stopped when the block ends; their logs
    stay in `directory` (`dataflow-1.log`, `dispatcher-2.log` …).
    """
    directory.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        server = redis_server or stack.enter_context(running_redis(directory / "redis"))
        receiver = stack.enter_context(WebhookReceiver(answer=answer))
        settings = Settings(redis_url=server.url, admin_token=ADMIN_TOKEN, write_key="wk-workflow-e2e",
                            api_port=free_port(), rfm_refresh_s=0, stream_shards=STREAM_SHARDS,
                            outbox_shards=OUTBOX_SHARDS, webhook_allowed_networks="127.0.0.1/32")
        admin = stack.enter_context(TestClient(create_app(settings)))
        processes = stack.enter_context(ExitStack())
        running = WorkflowStack(server, admin, receiver, directory, processes,
                                {**DATAFLOW_SETTINGS, **(dataflow_settings or {})},
                                {**DISPATCHER_SETTINGS, **(dispatcher_settings or {})})
        try:
            running.check_chain()
        except AssertionError:
            for log in sorted(directory.glob("*.log")):
                print(f"---- {log.name}\n{log.read_text(errors='replace')[-4000:]}")
            raise
        yield running
        running.client.close()


# ---- scenarios side by side --------------------------------------------------------

Scenario = Callable[[WorkflowStack], None]


def selected(request: pytest.FixtureRequest, scenarios: Mapping[str, Scenario], param: str) -> dict[str, Scenario]:
    """The scenarios whose tests this session runs (a module's tests parametrized by `param`): `-k` one test
    and only its scenario starts. All of them when no test of the module names one."""
    names = {item.callspec.params[param] for item in request.session.items
             if isinstance(item, pytest.Function) and item.module is request.module
             and hasattr(item, "callspec") and param in item.callspec.params}
    return {name: scenario for name, scenario in scenarios.items() if name in names} or dict(scenarios)


@contextmanager
def run_concurrently(stack: WorkflowStack, scenarios: Mapping[str, Scenario],
                     setups: Mapping[str, Scenario] | None = None) -> Iterator[dict[str, Future[float]]]:
    """Start every scenario at once, each in its own thread; their futures (the seconds each took) by name.

    The scenarios' `setups` (by the same names: publishing their workflows)
    run first, one after another, before any scenario sends an event. Each
    publication makes the dataflow re-evaluate every contact it holds (about
    0.5 s per 2 000 contacts on a small machine), so publishing while a
    scenario's thousands of contacts exist would hold up every other
    scenario's timing. A scenario's assertion error is raised by its
    future's `result()`. When the block ends, the scenarios still running
    are waited for.
    """
    for name in scenarios:
        if setups is not None and name in setups:
            setups[name](stack)

    def timed(scenario: Scenario) -> float:
        began = time.monotonic()
        try:
            scenario(stack)
        except BaseException:
            traceback.print_exc()  # shown with the test that waits on it, should that one time out first
            raise
        return time.monotonic() - began

    with ThreadPoolExecutor(max_workers=len(scenarios), thread_name_prefix="scenario") as pool:
        yield {name: pool.submit(timed, scenario) for name, scenario in scenarios.items()}
