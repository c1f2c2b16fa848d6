"""Workflow behaviour end to end, through the real dataflow, dispatcher and receiver: goals, re-entry rules,
the frequency cap across workflows, quiet hours, A/B proportions, and edits while contacts wait.

One stack for the module (`workflow_stack`); each scenario has its own
workflows (triggered by its own event names, so no scenario enters another's
contacts), its own contacts and endpoint. Every scenario's workflows are
published first, then all scenarios run at once: a publication makes the
dataflow re-evaluate every contact it holds, and the A/B scenario brings
2 000. What must not happen is checked after a positive sign that it would
have by then (a twin contact's later message, a record in the profile
written by the evaluation that decided). A test acts on what the dataflow
decided (the contact's position in the profile), never on when a webhook
happened to arrive.

Quiet hours end on a minute boundary (time zones are whole minutes), so
that scenario waits up to a minute; the others run meanwhile.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import pytest

from state.config import EventMatch, ScoringRule
from state.workflows import (
    ChangeTags,
    Delay,
    Goal,
    MessagingPolicy,
    OnEvent,
    OnScore,
    QuietHours,
    SendWebhook,
    Split,
    SplitArm,
    Workflow,
)
from tests.e2e.workflow_stack import (
    Scenario,
    WorkflowStack,
    identify,
    run_concurrently,
    selected,
    track,
    wait_until,
    workflow_stack,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

SCENARIOS: dict[str, Scenario] = {}
SETUPS: dict[str, Scenario] = {}
EPSILON: Final = 0.005
CAP_CHANNEL: Final = "capped"  # the only capped channel: no other scenario is held
CAP_S: Final = 60.0
QUIET_CHANNEL: Final = "quiet"  # the only channel quiet hours apply to: no other scenario waits for them
DEFAULT_ZONE: Final = "Asia/Kathmandu"  # UTC+05:45: contacts without a `timezone` trait live here


def policy(quiet: QuietHours | None) -> MessagingPolicy:
    """The module's messaging policy: one capped channel, quiet hours (when given) on one channel."""
    return MessagingPolicy(caps={CAP_CHANNEL: CAP_S}, quiet_hours=quiet, quiet_channels=[QUIET_CHANNEL],
                           default_timezone=DEFAULT_ZONE)


def scenario(*workflows: Workflow, setup: Scenario | None = None) -> Callable[[Scenario], Scenario]:
    """Register a scenario under its function's name, with what it publishes before any scenario starts:
    `setup`, then `workflows`."""
    def register(function: Scenario) -> Scenario:
        def publish(stack: WorkflowStack) -> None:
            if setup is not None:
                setup(stack)
            for workflow in workflows:
                stack.put_workflow(workflow)
        SCENARIOS[function.__name__] = function
        SETUPS[function.__name__] = publish
        return function
    return register


def send_step(step_id: str, endpoint: str, next_step: str | None = None, channel: str = "crm",
              **payload: object) -> SendWebhook:
    return SendWebhook(id=step_id, endpoint=endpoint, channel=channel, next=next_step, payload=dict(payload))


def on(event: str) -> OnEvent:
    return OnEvent(EventMatch(event))


# ---- goals ------------------------------------------------------------------------------

GOAL_WAIT_S: Final = 4.0  # time for the order to get through while the dataflow re-evaluates after publications
GOAL: Final = Workflow(
    id="goal-exit", trigger=on("Goal Trial Started"), goal=Goal(event=EventMatch("Order Completed")),
    steps=[send_step("reminder-1", "goal", "wait"), Delay(id="wait", seconds=GOAL_WAIT_S, next="reminder-2"),
           send_step("reminder-2", "goal")])


@scenario(GOAL)
def a_goal_met_between_two_reminders_ends_the_run(stack: WorkflowStack) -> None:
    """The contact who orders after the first reminder gets no second; its twin, who does not, gets it."""
    wid = GOAL.id
    stack.send(track("goal-buyer", "Goal Trial Started"), track("goal-twin", "Goal Trial Started"))
    stack.wait_position("goal-buyer", wid, lambda p: p.step == "wait", "waiting for the second reminder")
    stack.send(track("goal-buyer", "Order Completed", order_id="g-1", revenue=10.0))

    twin = stack.wait_steps("goal-twin", wid, ["reminder-1", "reminder-2"])
    assert twin[1].action.created_at - twin[0].action.created_at >= GOAL_WAIT_S - EPSILON
    stack.wait_steps("goal-buyer", wid, ["reminder-1"])  # and nothing after it
    assert stack.position("goal-buyer", wid) is None
    stack.wait_stats(wid, {"entered": 2, "converted": 1, "ended": 1, "queued:reminder-1": 2, "queued:reminder-2": 1})


# ---- re-entry -----------------------------------------------------------------------------

COOLDOWN_S: Final = 4.0
REENTRY: Final = {
    "reentry-never": Workflow(id="reentry-never", trigger=on("Reentry Ping"), reentry="never",
                              steps=[send_step("hello", "reentry")]),
    "reentry-cooldown": Workflow(id="reentry-cooldown", trigger=on("Reentry Ping"), reentry="cooldown",
                                 cooldown_s=COOLDOWN_S, steps=[send_step("hello", "reentry")]),
    "reentry-always": Workflow(id="reentry-always", trigger=on("Reentry Ping"), reentry="always",
                               steps=[send_step("hello", "reentry")]),
    "reentry-inside": Workflow(id="reentry-inside", trigger=on("Reentry Ping"), reentry="always",
                               steps=[send_step("hello", "reentry", "linger"), Delay(id="linger", seconds=600.0)]),
}


@scenario(*REENTRY.values())
def re_entry_is_never_after_a_cooldown_or_always_and_once_at_a_time(stack: WorkflowStack) -> None:
    """Three triggers (the third after the cooldown): `never` enters once, `cooldown` twice, `always` three
    times; a contact still inside a workflow is not entered into it again."""
    cooldown, who = COOLDOWN_S, "reentrant"

    def ping(times: int) -> None:
        """One more trigger, once the dataflow decided the previous one (read from the profile's log)."""
        stack.send(track(who, "Reentry Ping"))
        wait_until(lambda: True if len(stack.logged(who, "reentry-always")) == times else None, 10,
                   f"trigger {times} decided")

    ping(1)
    (entered,) = stack.logged(who, "reentry-cooldown")
    ping(2)
    assert stack.logged(who, "reentry-always")[-1].at < entered.at + cooldown  # decided within the cooldown
    wait_until(lambda: True if time.time() > entered.at + cooldown + 0.2 else None, cooldown + 5,
               "the cooldown to pass")
    ping(3)
    stack.wait_deliveries(who, "reentry-always", 3)
    stack.wait_deliveries(who, "reentry-cooldown", 2)

    counts = {wid: len(stack.deliveries(who, wid)) for wid in REENTRY}
    assert counts == {"reentry-never": 1, "reentry-cooldown": 2, "reentry-always": 3, "reentry-inside": 1}
    refused = {"reentry-never": 2, "reentry-cooldown": 1, "reentry-always": 0, "reentry-inside": 0}
    for wid, times in refused.items():
        stack.wait_stats(wid, {"reentry_refused": times})
    first, second = stack.deliveries(who, "reentry-cooldown")
    assert second.action.created_at - first.action.created_at >= cooldown
    assert stack.position(who, "reentry-inside") is not None
    # Each entry is its own occurrence: its own action id.
    assert len({d.webhook_id for d in stack.deliveries(who, "reentry-always")}) == 3


# ---- the frequency cap --------------------------------------------------------------------

CAP_FIRST: Final = Workflow(id="cap-first", trigger=on("Cap Newsletter"),
                            steps=[send_step("note", "cap", channel=CAP_CHANNEL)])
CAP_SECOND: Final = Workflow(id="cap-second", trigger=on("Cap Promo"),
                             steps=[send_step("note", "cap", "after", channel=CAP_CHANNEL),
                                    ChangeTags(id="after", add=["promo-ran"])])


@scenario(CAP_FIRST, CAP_SECOND)
def the_frequency_cap_holds_a_second_workflows_message_and_the_run_goes_on(stack: WorkflowStack) -> None:
    """One message per channel per window across workflows: the second workflow's is held (profile, stats),
    its next step still runs, and a contact under the cap gets that workflow's message."""
    first, second = CAP_FIRST.id, CAP_SECOND.id
    stack.send(track("capped", "Cap Newsletter"))
    stack.wait_steps("capped", first, ["note"])
    stack.send(track("capped", "Cap Promo"))
    profile = stack.wait_profile("capped", lambda p: any(a.workflow == second for a in p.actions),
                                 "the second workflow's message recorded")
    (held,) = [a for a in profile.actions if a.workflow == second]
    assert (held.step, held.outcome, held.reason, held.action_id) == ("note", "held", f"{CAP_CHANNEL} frequency cap",
                                                                       None)
    assert [a.outcome for a in profile.actions if a.workflow == first] == ["queued"]
    assert "promo-ran" in profile.tags  # the run went on past the held message

    stack.send(track("uncapped", "Cap Promo"))
    stack.wait_steps("uncapped", second, ["note"])
    assert stack.steps("capped", second) == []
    stack.wait_stats(second, {"held:note": 1, "queued:note": 1, "entered": 2, "ended": 2})


# ---- quiet hours --------------------------------------------------------------------------

def clock(moment: datetime, zone: str) -> str:
    """`moment` on the wall clock of `zone`, HH:MM."""
    return moment.astimezone(ZoneInfo(zone)).strftime("%H:%M")


QUIET: Final = Workflow(id="quiet-hours", trigger=on("Quiet Ping"),
                        steps=[send_step("note", "quiet", channel=QUIET_CHANNEL)])
QUIET_MARGIN_S: Final = 5.0
"""At least this long between choosing quiet hours and their end: time to publish them and decide the message
(the dataflow re-evaluates its thousands of contacts at each publication)."""


@scenario(QUIET)
def a_message_due_in_quiet_hours_waits_for_their_end_in_the_contacts_zone(stack: WorkflowStack) -> None:
    """Quiet hours end at the next minute boundary (at least 5 s away) in the default zone: a contact living
    there gets its message when they end, not before; a contact whose `timezone` is UTC gets it at once."""
    wid = QUIET.id
    stack.send(identify("quiet-local"), identify("quiet-utc", timezone="UTC"))
    for contact in ("quiet-local", "quiet-utc"):  # the dataflow is through what was appended before
        stack.wait_profile(contact, lambda p: True, "known")

    now = datetime.now(UTC)
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if (end - now).total_seconds() < QUIET_MARGIN_S:
        end += timedelta(minutes=1)  # the message must be decided while still quiet
    quiet = QuietHours(start=clock(end - timedelta(minutes=2), DEFAULT_ZONE), end=clock(end, DEFAULT_ZONE))
    stack.set_messaging(policy(quiet))
    stack.send(track("quiet-local", "Quiet Ping"), track("quiet-utc", "Quiet Ping"))

    (at_once,) = stack.wait_steps("quiet-utc", wid, ["note"])
    waiting = stack.wait_profile("quiet-local", lambda p: any(w.workflow == wid for w in p.workflows),
                                 "waiting for quiet hours to end")
    (position,) = [w for w in waiting.workflows if w.workflow == wid]
    assert position.step == "note" and position.due_at == end.timestamp()
    assert at_once.action.created_at < end.timestamp()  # sent while it was quiet for the other contact
    assert stack.steps("quiet-local", wid) == []

    (later,) = stack.wait_steps("quiet-local", wid, ["note"], timeout=(end - now).total_seconds() + 10)
    assert end.timestamp() <= later.action.created_at < end.timestamp() + 1.0
    # Not received before the end; the dispatcher may be busy with the A/B scenario's 2 000 webhooks.
    assert end.timestamp() <= later.received_at < end.timestamp() + 5.0
    stack.wait_stats(wid, {"quiet:note": 1, "queued:note": 2})


# ---- A/B ------------------------------------------------------------------------------------

AB_CONTACTS: Final = 2000
AB_ARMS: Final = {"a": 50.0, "b": 30.0, "c": 20.0}


AB: Final = Workflow(
    id="ab-split", trigger=on("AB Visit"), reentry="always",
    steps=[Split(id="split", arms=[SplitArm(name=arm, percent=share, next=f"send-{arm}")
                                   for arm, share in AB_ARMS.items()]),
           *(send_step(f"send-{arm}", "ab", variant=arm) for arm in AB_ARMS)])


@scenario(AB)
def an_ab_split_sends_each_arm_its_share_and_a_contact_always_the_same_arm(stack: WorkflowStack) -> None:
    """2 000 contacts through a 50/30/20 split: each arm within 4 standard deviations of its share, in the
    stats and in the webhooks received; a contact entering again takes the same arm."""
    wid = AB.id
    contacts = [f"ab-{n:04d}" for n in range(AB_CONTACTS)]
    stack.send(*(track(contact, "AB Visit") for contact in contacts))

    wait_until(lambda: True if len(stack.deliveries(workflow=wid)) >= AB_CONTACTS else None, 60,
               f"{AB_CONTACTS} A/B webhooks")
    deliveries = stack.deliveries(workflow=wid)
    arm_of = {d.contact: d.action.branch for d in deliveries}
    assert len(deliveries) == AB_CONTACTS and sorted(arm_of) == contacts
    assert all(d.step == f"send-{d.action.branch}" and d.action.payload["variant"] == d.action.branch
               for d in deliveries)
    received = Counter(arm_of.values())
    stack.wait_stats(wid, {f"branch:{arm}:entered": count for arm, count in received.items()})
    for arm, share in AB_ARMS.items():
        p = share / 100
        tolerance = 4 * math.sqrt(AB_CONTACTS * p * (1 - p))
        assert abs(received[arm] - AB_CONTACTS * p) <= tolerance, (arm, received)

    again = contacts[:30]
    stack.send(*(track(contact, "AB Visit") for contact in again))
    for contact in again:
        first, second = stack.wait_deliveries(contact, wid, 2)
        assert first.action.branch == second.action.branch == arm_of[contact]
        assert first.webhook_id != second.webhook_id


# ---- edits while contacts wait ----------------------------------------------------------------

EDIT_WAIT_S: Final = 8.0  # long enough for two publications to reach the dataflow while contacts wait


def edited(wid: str, copy: str, migrate: bool = False) -> Workflow:
    """A message, a wait of `EDIT_WAIT_S`, a follow-up; `copy` names the version in both messages."""
    return Workflow(id=wid, trigger=on(f"Start {wid}"), migrate=migrate,
                    steps=[send_step("first", "edits", "wait", copy=copy),
                           Delay(id="wait", seconds=EDIT_WAIT_S, next="second"),
                           send_step("second", "edits", copy=copy)])


EDITED: Final = {"edit-stay": False, "edit-move": True}  # workflow id: whether v2 migrates


@scenario(*(edited(wid, "v1") for wid in EDITED))
def an_edit_leaves_waiting_contacts_on_their_version_unless_it_migrates_them(stack: WorkflowStack) -> None:
    """Contacts inside v1 when v2 is published finish on v1; with `migrate: true` they move to v2 and their
    next step is v2's. A contact entering after the edit runs v2 either way."""
    early = {wid: [f"{wid}-early-{n}" for n in range(3)] for wid in EDITED}
    stack.send(*(track(contact, f"Start {wid}") for wid, contacts in early.items() for contact in contacts))
    for wid, contacts in early.items():
        for contact in contacts:
            stack.wait_position(contact, wid, lambda p: p.step == "wait", "waiting after the first message")

    # Published while they wait; each contact's profile shows its shard switched before its wait ended.
    for wid, migrate in EDITED.items():
        published = stack.put_workflow(edited(wid, "v2", migrate))
        assert published.workflow.version == 2
        stack.send(track(f"{wid}-late", f"Start {wid}"))
        in_force = published.config_version
        for contact in early[wid]:
            stack.wait_profile(contact, lambda p: p.config_version >= in_force, "the edit in force")  # noqa: B023
            position = stack.position(contact, wid)
            assert position is not None and position.step == "wait"
            assert position.due_at is not None and time.time() < position.due_at, "the wait ended before the edit"
            assert position.version == (2 if migrate else 1)

    for wid, migrate in EDITED.items():
        expected = ("v2", 2) if migrate else ("v1", 1)
        for contact in early[wid]:
            first, second = stack.wait_steps(contact, wid, ["first", "second"])
            assert (first.action.payload["copy"], first.action.workflow_version) == ("v1", 1)
            assert (second.action.payload["copy"], second.action.workflow_version) == expected, (contact, second)
            assert second.action.created_at - first.action.created_at >= EDIT_WAIT_S - EPSILON
        late = stack.wait_steps(f"{wid}-late", wid, ["first", "second"])
        assert [(d.action.payload["copy"], d.action.workflow_version) for d in late] == [("v2", 2), ("v2", 2)]


# ---- score triggers -------------------------------------------------------------------------

SCORE: Final = Workflow(id="score-crossing", trigger=OnScore(threshold=1000.0), steps=[send_step("notify", "score")])


def big_deals_score(stack: WorkflowStack) -> None:
    stack.add_scoring_rule(ScoringRule(id="big-deal", match=EventMatch("Big Deal Requested"), points=2000.0))


@scenario(SCORE, setup=big_deals_score)
def a_new_contact_whose_first_events_cross_a_score_threshold_enters_the_score_workflow(stack: WorkflowStack) -> None:
    """A score going from 0 past the threshold is a crossing, also in the contact's first activation
    (it was not, until afa6520: found by this scenario)."""
    wid = SCORE.id
    stack.send(identify("score-known"))
    stack.wait_profile("score-known", lambda p: True, "known")
    stack.send(track("score-known", "Big Deal Requested"), track("score-new", "Big Deal Requested"))
    stack.wait_steps("score-known", wid, ["notify"])  # seen before: it enters
    stack.wait_profile("score-new", lambda p: round(p.score) == 2000, "2 000 points (decaying)")
    stack.wait_steps("score-new", wid, ["notify"], timeout=3)


# ---- the tests ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkflowStack]:
    directory: Path = tmp_path_factory.mktemp("workflow-scenarios")
    with workflow_stack(directory) as running:
        running.set_messaging(policy(quiet=None))
        yield running


@pytest.fixture(scope="module")
def scenarios(stack: WorkflowStack, request: pytest.FixtureRequest) -> Iterator[dict[str, Future[float]]]:
    """Every scenario this session tests, started at once."""
    with run_concurrently(stack, selected(request, SCENARIOS, "name"), SETUPS) as futures:
        yield futures


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_workflow_scenario(name: str, scenarios: dict[str, Future[float]]) -> None:
    """The behaviour the scenario's name and docstring state, through the real processes."""
    scenarios[name].result(timeout=90)


def test_every_webhook_was_signed_and_delivered_once(stack: WorkflowStack,
                                                     scenarios: dict[str, Future[float]]) -> None:
    """Across every scenario: each 2xx attempt verifies with its endpoint's secret; no id came twice."""
    for name, future in scenarios.items():
        if future.exception(timeout=90) is None:
            print(f"{name}: {future.result():.1f} s")  # shown with -rP: how long each scenario took
    ids = [d.webhook_id for d in stack.deliveries()]
    assert len(ids) == len(set(ids)) > 1
    assert all(attempt.ok for attempt in stack.receiver.attempts())
    assert stack.dead_letters() == []
