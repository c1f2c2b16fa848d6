"""Bodies of the workflow admin API: workflows as PUT, pages, stats, recipes, manual entry."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from state.conditions import Identifier, Seconds
from state.workflows import Goal, Step, Trigger, Workflow

ContactId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class WorkflowBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A workflow as PUT: the id comes from the path (a body id must equal it); the version is counted."""

    trigger: Trigger
    steps: list[Step]
    name: str = ""
    enabled: bool = True
    goal: Goal | None = None
    reentry: Literal["never", "cooldown", "always"] = "never"
    cooldown_s: Seconds = 0.0
    migrate: bool = False
    id: Identifier | None = None


class WorkflowsPage(msgspec.Struct, frozen=True):
    """Every workflow in force."""

    data: list[Workflow]
    count: int


class WorkflowPublished(msgspec.Struct, frozen=True):
    """A workflow was created (`created`) or changed, as configuration `version`."""

    version: int
    workflow: Workflow
    created: bool = False


class WorkflowDeleted(msgspec.Struct, frozen=True):
    """A workflow was deleted (contacts inside finish on its last version), as configuration `version`."""

    version: int
    deleted: str


class WorkflowStats(msgspec.Struct, frozen=True):
    """A workflow's exact counters, summed over the dataflow's shards.

    `entered`, `step:<id>` (contacts that reached the step), `waiting:<id>`
    (contacts waiting there now: a gauge), `queued:<id>` /
    `held:<id>` / `skipped:<id>` (actions), `quiet:<id>`, `timeout:<id>`,
    `matched:<id>` (waits), `branch:<arm>:entered|converted|ended`,
    `converted`, `ended`, `unsubscribed`, `removed`, `reentry_refused`.
    """

    workflow: str
    counters: dict[str, int]


class ManualEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Contacts to enter into a workflow (any of their ids; unknown ids are taken as user ids)."""

    contacts: Annotated[list[ContactId], msgspec.Meta(min_length=1, max_length=1000)]


class RecipeInfo(msgspec.Struct, frozen=True):
    """A recipe: what it does and its parameters with their defaults."""

    name: str
    description: str
    parameters: dict[str, float]


class RecipesPage(msgspec.Struct, frozen=True):
    """Every recipe that can be imported."""

    data: list[RecipeInfo]
    count: int


class RecipeImport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How to import a recipe: the endpoint its messages go to, its id, parameters, enabled."""

    endpoint: Identifier
    workflow_id: Identifier | None = None
    parameters: dict[str, float] = msgspec.field(default_factory=dict)
    enabled: bool = True


def workflow_of(workflow_id: str, body: WorkflowBody, version: int) -> Workflow:
    """The workflow a PUT body describes, at `version`."""
    fields: dict[str, Any] = msgspec.structs.asdict(body)
    fields.pop("id")
    return Workflow(id=workflow_id, version=version, **fields)
