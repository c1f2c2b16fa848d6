"""Workflows, run per contact inside the dataflow: trigger → steps → goal, on the live state.

Events enter event-triggered workflows, meet goals and end waits as they
are applied; at each evaluation (after the contact's events, or when its
deadline passes) state-triggered workflows are entered (`workflow_triggers`)
and every run that is ready or due is advanced (`workflow_steps`). So a
trigger acts within the activation of its cause, and a delay ends when the
contact's timer fires at its due time — no polling, no cron.

Registered after `segments`: it reads the memberships this evaluation has
just decided. Changes a step makes to the contact itself (tags, score …)
ask for another evaluation a moment later, so segments see them at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from dataflows.capabilities.base import Capability, Context
from dataflows.capabilities.workflow_state import MAX_LOG, Entries, Flows, Run, trigger_data
from dataflows.capabilities.workflow_steps import Runner
from dataflows.capabilities.workflow_triggers import deadline, observe, state_entries
from dataflows.io.outputs import Output, Tally
from dataflows.rules.conditions import evaluate_condition
from dataflows.rules.matching import conditions_hold
from dataflows.rules.workflow_index import WorkflowIndex
from state import events as ev
from state import keys
from state.events import Event, InternalEvent, Page, Screen, Track, WorkflowEntry, event_key
from state.profile import ActionLogEntry, WorkflowPosition
from state.workflows import WaitFor, Workflow

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView

AGAIN_S: Final = 0.001
"""How soon a contact a workflow step changed is evaluated again (so segments see the change)."""


def _enter(part: Flows, workflow: Workflow, marker: str, runner: Runner,
           data: dict[str, Any] | None = None) -> bool:
    """Enter the contact into `workflow`, if enabled and its re-entry rule allows (whether it did)."""
    now = runner.now
    entries = part.entries.get(workflow.id)
    if not workflow.enabled or workflow.id in part.runs:
        if entries is not None:
            entries.marker = marker  # this occurrence is used up: a state trigger's deadline moves on
        return False
    if entries is not None and entries.count and (
            workflow.reentry == "never"
            or (workflow.reentry == "cooldown" and now - entries.last_at < workflow.cooldown_s)):
        entries.marker = marker
        runner.tally(workflow.id, "reentry_refused")
        return False
    entries = part.entries.setdefault(workflow.id, Entries())
    entries.count, entries.last_at, entries.marker = entries.count + 1, now, marker
    run = Run(workflow.id, workflow.version, entries.count, workflow.start, now, now, trigger=data)
    part.runs[workflow.id] = run
    runner.tally(workflow.id, "entered")
    runner.tally(workflow.id, f"step:{run.step}")
    return True


class WorkflowsCapability(Capability[Flows]):
    """Every workflow a contact is inside; the profile's `workflows` and `actions`."""

    name = "workflows"
    part = Flows

    def apply(self, part: Flows, event: Event, ctx: Context) -> None:
        index = ctx.live.workflows
        if part.pending:
            part.later.append(event)  # an entry of this batch comes before it: its run meets it too
        key = event_key(event)
        if key == ev.UNSUBSCRIBED:
            part.unsubscribed = True  # e-mail steps are skipped from now on, in every workflow
        if part.runs and key in index.heard:
            for workflow_id in list(part.runs):
                self._react(part, index, workflow_id, event, key)
        for workflow in index.started_by.get(key, ()):
            if conditions_hold(workflow.trigger.match.where, event):  # type: ignore[union-attr]
                data = trigger_data(event.properties) if isinstance(event, Track | Page | Screen) else None
                part.pending.append((workflow.id, event.message_id or repr(ctx.at), data, len(part.later)))

    def admin(self, part: Flows, event: InternalEvent, ctx: Context) -> None:
        if isinstance(event, WorkflowEntry):
            part.pending.append((event.workflow, event.message_id or repr(ctx.at), None, len(part.later)))

    def _react(self, part: Flows, index: WorkflowIndex, workflow_id: str, event: Event, key: str) -> bool:
        """What an event does to the contact's run of one workflow: unsubscribe, goal, awaited event.

        Whether it did anything (most events leave every run as it was).
        """
        run = part.runs[workflow_id]
        if key == ev.UNSUBSCRIBED:
            self._end(part, workflow_id, "unsubscribed")
            return True
        workflow = index.version_of(workflow_id, run.version)
        goal = workflow.goal if workflow is not None else None
        if goal is not None and goal.event is not None and goal.event.event == key \
                and conditions_hold(goal.event.where, event):
            self._end(part, workflow_id, "converted")
            return True
        step = index.steps.get((workflow_id, run.version), {}).get(run.step)
        if isinstance(step, WaitFor) and run.waiting and step.event is not None \
                and step.event.event == key and conditions_hold(step.event.where, event):
            self._resume(part, run, step.then, f"matched:{step.id}")
            return True
        return False

    def _end(self, part: Flows, workflow_id: str, how: str) -> None:
        run = part.runs.pop(workflow_id)
        part.unpark(run)
        part.note(workflow_id, how)
        if run.branch is not None:
            part.note(workflow_id, f"branch:{run.branch}:{how}")

    @staticmethod
    def _resume(part: Flows, run: Run, following: str | None, note: str) -> None:
        part.note(run.workflow, note)
        part.unpark(run)
        run.waiting, run.due = False, None
        if following is None:
            run.step = ""  # no step: the run ends when advanced
        else:
            run.step = following
            part.note(run.workflow, f"step:{following}")

    def evaluate(self, part: Flows, view: StateView) -> Sequence[Output]:
        index = view.live.workflows
        if not index.current and not part.runs and not part.pending and not part.notes:
            observe(part, view)  # nothing to run or enter; a workflow published later compares with this
            return ()
        runner = Runner(part, view, lambda workflow_id, marker, data: part.pending.append(
            (workflow_id, marker, data, len(part.later))))
        runner.out.extend(Tally(keys.workflow_stats(w), counter, n) for w, counter, n in part.notes)
        part.notes.clear()
        self._segment_waits_and_goals(part, view, runner)
        for workflow in index.watching:
            for marker in state_entries(part, view, workflow):
                _enter(part, workflow, marker, runner)
        for _ in range(8):  # entries may enter others (EnterWorkflow): bounded
            pending, part.pending = part.pending, []
            entered: list[tuple[str, int]] = []
            for workflow_id, marker, data, position in pending:
                wanted = index.current.get(workflow_id)
                if wanted is not None and _enter(part, wanted, marker, runner, data):
                    entered.append((workflow_id, position))
            self._advance_all(part, view, runner)
            self._meet_later_events(part, view, runner, entered)
            if not part.pending:
                break
        part.later.clear()
        observe(part, view)
        part.recheck = runner.changed_contact
        return runner.out

    def _meet_later_events(self, part: Flows, view: StateView, runner: Runner,
                           entered: list[tuple[str, int]]) -> None:
        """New runs meet the events that came after their entry in this batch, in order, as if live.

        A trigger and its goal read in one activation (a frame holding both,
        a lagging dataflow, the replay after a crash) end as they would have
        live: the first steps run, then the goal stops the rest.
        """
        index = view.live.workflows
        for workflow_id, position in entered:
            for event in part.later[position:]:
                if workflow_id not in part.runs:
                    break
                key = event_key(event)
                if key in index.heard and self._react(part, index, workflow_id, event, key):
                    self._advance_all(part, view, runner)  # unchanged runs: advancing again would do nothing

    def _segment_waits_and_goals(self, part: Flows, view: StateView, runner: Runner) -> None:
        index = view.live.workflows
        segments = set(view.part("segments").segments)
        entered, left = segments - set(part.seen_segments), set(part.seen_segments) - segments
        for workflow_id, run in list(part.runs.items()):
            workflow = index.version_of(workflow_id, run.version)
            if workflow is None:
                runner.finish(run, "removed")
                continue
            goal = workflow.goal
            if goal is not None and ((goal.left_segment is not None and goal.left_segment in left)
                                     or (goal.when is not None
                                         and evaluate_condition(goal.when, view, view.members))):
                runner.finish(run, "converted")
                continue
            step = index.steps[(workflow_id, run.version)].get(run.step)
            if isinstance(step, WaitFor) and run.waiting and step.segment is not None \
                    and step.segment in (entered if step.entered else left):
                self._resume(part, run, step.then, f"matched:{step.id}")

    def _advance_all(self, part: Flows, view: StateView, runner: Runner) -> None:
        index = view.live.workflows
        for workflow_id, run in list(part.runs.items()):
            current = index.current.get(workflow_id)
            if current is not None and current.migrate and run.version != current.version \
                    and any(step.id == run.step for step in current.steps):
                run.version = current.version
            workflow = index.version_of(workflow_id, run.version)
            if workflow is None:
                continue
            if run.ready or (run.due is not None and view.now >= run.due):
                if not run.step:
                    runner.finish(run, "ended")
                    continue
                runner.advance(run, workflow, index.steps[(workflow_id, run.version)])
        runner.out.extend(Tally(keys.workflow_stats(w), counter, n) for w, counter, n in part.notes)
        part.notes.clear()

    def due(self, part: Flows, view: StateView) -> float | None:
        if part.pending or part.recheck:
            return view.now + AGAIN_S
        if not part.runs and not view.live.workflows.watching:
            return None
        deadlines: list[float | None] = [run.due for run in part.runs.values()]
        for workflow in view.live.workflows.watching:
            deadlines.append(deadline(part, view, workflow.trigger, workflow))
        return min((d for d in deadlines if d is not None), default=None)

    def merge(self, into: Flows, other: Flows, ctx: Context) -> None:
        for workflow_id, run in other.runs.items():
            if into.runs.setdefault(workflow_id, run) is not run:
                into.unpark(run)  # the contact is inside already: the visitor's run ends unseen
        for workflow_id, entries in other.entries.items():
            mine = into.entries.get(workflow_id)
            if mine is None or entries.last_at > mine.last_at:
                into.entries[workflow_id] = Entries(max(entries.count, mine.count if mine else 0),
                                                    entries.last_at, entries.marker)
        for channel, at in other.sent.items():
            into.sent[channel] = max(at, into.sent.get(channel, 0.0))
        into.unsubscribed = into.unsubscribed or other.unsubscribed
        into.pending.extend(other.pending)
        into.log = sorted([*into.log, *other.log], key=lambda entry: entry.at)[-MAX_LOG:]

    def render(self, part: Flows, view: StateView) -> Mapping[str, Any]:
        if not part.runs and not part.log:
            return {}
        positions = [WorkflowPosition(workflow=run.workflow, version=run.version, step=run.step,
                                      entered_at=run.entered_at, due_at=run.due, waiting=run.waiting,
                                      branch=run.branch) for run in part.runs.values()]
        actions = [ActionLogEntry(at=e.at, workflow=e.workflow, step=e.step, outcome=e.outcome,
                                  action_id=e.action_id, reason=e.reason) for e in part.log]
        return {"workflows": positions, "actions": actions}
