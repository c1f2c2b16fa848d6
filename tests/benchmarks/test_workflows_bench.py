"""The workflows benchmark: its checks catch what they are for, and its smallest run is correct and reported.

Speed is not asserted (the machine is shared); correctness is: the run
fails unless every probe's webhook arrived once, every delayed action was
appended once, and every workflow's outbox entries equal its own count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from standardwebhooks import Webhook

from api.dispatcher.signing import new_secret
from benchmarks import report
from benchmarks.webhook_receiver import Attempt
from benchmarks.workflow_checks import Appended, delivery_check, outbox_check
from benchmarks.workflow_config import config, delay_workflow, probe_workflows, shop_workflows
from benchmarks.workflow_report import render_workflows
from state.actions import Action, ActionContact, WebhookBody

REPO = Path(__file__).resolve().parents[2]


def action(n: int, workflow: str = "cart-to-crm") -> Action:
    return Action(id=f"act_{n}", kind="webhook", channel="crm", contact=ActionContact(contact_id=f"c{n}"),
                  workflow_id=workflow, workflow_version=1, step_id="sync", created_at=1.0, endpoint="bench")


def attempt(hook: Webhook, each: Action, tamper: bool = False) -> Attempt:
    """A 2xx delivery of `each`, signed as the dispatcher signs (its body changed after signing if `tamper`)."""
    now = datetime.now(UTC)
    body = msgspec.json.encode(WebhookBody(type="action", timestamp=now.isoformat(), data=each))
    headers = {"webhook-id": each.id, "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": hook.sign(each.id, now, body.decode())}
    return Attempt(each.id, headers, body + (b" " if tamper else b""), 1.0, 1.0, 200, True, 1)


class TestChecks:
    """Each check fails for exactly what it guards against."""

    def test_outbox_check_passes_when_each_id_is_once_and_counts_agree(self) -> None:
        """Two actions of one workflow, which counted two: correct."""
        appended = [Appended(1.0, action(1)), Appended(1.0, action(2))]
        assert outbox_check(appended, {"cart-to-crm": {"queued:sync": 2, "entered": 2}})["correct"]

    def test_an_action_the_workflow_counted_but_the_outbox_lacks_fails(self) -> None:
        """A decided action lost on its way to the outbox is named, with both counts."""
        result = outbox_check([Appended(1.0, action(1))], {"cart-to-crm": {"queued:sync": 2}})
        assert not result["correct"]
        assert result["count_mismatches"] == {"cart-to-crm": {"outbox": 1, "queued": 2}}

    def test_an_id_appended_twice_fails(self) -> None:
        result = outbox_check([Appended(1.0, action(1)), Appended(2.0, action(1))],
                              {"cart-to-crm": {"queued:sync": 2}})
        assert not result["correct"] and result["appended_twice"] == 1

    def test_delivery_check_catches_missing_twice_unexpected_and_bad_signatures(self) -> None:
        """Each way a delivery can go wrong is counted on its own."""
        secret = new_secret()
        hook = Webhook(secret)
        one, two, three = action(1), action(2), action(3)
        good = [attempt(hook, one), attempt(hook, two)]
        assert delivery_check(good, {one.id, two.id}, secret, 0)["correct"]
        assert delivery_check(good, {one.id, two.id, three.id}, secret, 0)["missing"] == 1
        assert delivery_check([*good, attempt(hook, two)], {one.id, two.id}, secret, 0)["delivered_twice"] == 1
        assert delivery_check(good, {one.id}, secret, 0)["unexpected"] == 1
        tampered = delivery_check([attempt(hook, one, tamper=True)], {one.id}, secret, 0)
        assert tampered["bad_signatures"] == 1 and not tampered["correct"]
        assert not delivery_check(good, {one.id, two.id}, secret, pending=1)["correct"]


def test_the_benchmark_configuration_is_one_the_admin_api_accepts() -> None:
    """Ten shop workflows, two probes and the delay, under everything on: valid as published."""
    live = config([*shop_workflows(), *probe_workflows(), delay_workflow(5.0)], probes=True)
    assert len(shop_workflows()) == 10
    assert len({w.id for w in live.workflows}) == 13


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_smallest_run_is_correct_and_writes_its_section(tmp_path: Path) -> None:
    """`python -m benchmarks.workflows --tiny`: every check passes, the JSON and the section agree."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.workflows", "--tiny", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=110, check=False)
    results = list((out / "results").glob("workflows-*.json"))
    assert len(results) == 1, proc.stderr[-3000:]
    doc = json.loads(results[0].read_text())
    figures = doc["figures"]
    assert set(figures) >= {"latency", "delays", "throughput"}, figures.get("errors")
    latency, delays, throughput = figures["latency"], figures["delays"], figures["throughput"]
    for run in latency:
        assert run["check"]["correct"], run["check"]
        assert all(k["not_received"] == 0 and k["actions_not_one"] == 0 for k in run["probes"].values())
    assert delays["check"]["correct"], delays["check"]
    for run in throughput["runs"]:
        assert run["check"]["correct"], {k: run.get(k) for k in ("check", "outbox", "not_entered")}
    assert doc["correct"] is True and report.all_correct(figures)
    assert proc.returncode == 0, proc.stderr[-3000:]
    markdown = (out / "RESULTS.md").read_text()
    assert render_workflows(doc) in markdown and "correct: true" in markdown
