"""A configuration's workflows compiled for the hot path.

Event triggers are indexed by event key, so an event only looks at the
workflows it may start; every version a contact may be
inside (current and retired) is found by (id, version), its steps by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from state import events as ev
from state.config import ActiveConfig
from state.workflows import OnEvent, Step, WaitFor, Workflow


@dataclass(frozen=True, slots=True)
class WorkflowIndex:
    """Workflows by id, by (id, version), by the event keys that start or end them."""

    current: dict[str, Workflow] = field(default_factory=dict)
    versions: dict[tuple[str, int], Workflow] = field(default_factory=dict)
    steps: dict[tuple[str, int], dict[str, Step]] = field(default_factory=dict)
    started_by: dict[str, list[Workflow]] = field(default_factory=dict)
    # Workflows whose trigger is read from the live state (not from one event), evaluated per change.
    watching: tuple[Workflow, ...] = ()
    # Event keys that may end or resume a run (a goal, an awaited event, unsubscribing): any other
    # event leaves every run as it was, so a contact's runs are not even looked at.
    heard: frozenset[str] = frozenset()

    @classmethod
    def of(cls, config: ActiveConfig) -> WorkflowIndex:
        """Index the enabled workflows (and every version contacts may still be inside)."""
        index = cls()
        heard = {ev.UNSUBSCRIBED}
        for workflow in [*config.retired_workflows, *config.workflows]:
            key = (workflow.id, workflow.version)
            index.versions[key] = workflow
            index.steps[key] = {step.id: step for step in workflow.steps}
            if workflow.goal is not None and workflow.goal.event is not None:
                heard.add(workflow.goal.event.event)
            heard.update(step.event.event for step in workflow.steps
                         if isinstance(step, WaitFor) and step.event is not None)
        watching: list[Workflow] = []
        for workflow in config.workflows:
            index.current[workflow.id] = workflow
            if not workflow.enabled:
                continue
            if isinstance(workflow.trigger, OnEvent):
                index.started_by.setdefault(workflow.trigger.match.event, []).append(workflow)
            else:
                watching.append(workflow)
        object.__setattr__(index, "watching", tuple(watching))
        object.__setattr__(index, "heard", frozenset(heard))
        return index

    def version_of(self, workflow_id: str, version: int) -> Workflow | None:
        """The definition a run is on (None when it is no longer kept)."""
        return self.versions.get((workflow_id, version))
