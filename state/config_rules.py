"""The one validator of a configuration: what the admin API refuses and the dataflow relies on.

msgspec checks each part's shape as it decodes; what spans parts is checked
here — duplicate rule ids, unknown score groups, warm above hot, condition
trees deeper than evaluation allows, the segment graph (unknown
references, cycles, a stage rule that needs the stage), workflows and popup
campaigns — by both the admin API (a 422 naming the problem) and the
dataflow when it compiles a version.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from state.campaigns import MAX_CAMPAIGNS, campaign_problem
from state.conditions import Condition, InWorkflow
from state.config import ActiveConfig, decode_config, encode_config
from state.segment_graph import MAX_CONDITION_DEPTH, SegmentDefinitionError, depth, references, stage_plan, walk
from state.templates import TemplateError, parse
from state.workflows import (
    Branch,
    Delay,
    EnterWorkflow,
    OnLoyalty,
    OnSegment,
    SendEmail,
    Split,
    Step,
    WaitFor,
    Workflow,
)


class ConfigError(ValueError):
    """A configuration that cannot be published or run; the message names the problem."""


def config_problem(config: ActiveConfig) -> str | None:
    """Why `config` cannot be published, or None.

    First, the configuration must read back through its schema (every
    field within its bounds, whoever built it); then the rules that span
    parts.
    """
    try:
        decode_config(encode_config(config))
    except msgspec.ValidationError as exc:
        return str(exc)
    for kind, rules in (("scoring rule", config.scoring_rules), ("absence rule", config.absence_rules)):
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                return f"{kind} {rule.id!r} is defined twice"
            seen.add(rule.id)
            if rule.group not in config.score_groups:
                return f"{kind} {rule.id!r} uses unknown score group {rule.group!r}"
    for rule in config.scoring_rules:
        if rule.mode == "at_most" and rule.max_times < 1:
            return f"scoring rule {rule.id!r}: max_times must be at least 1"
    if config.thresholds.warm > config.thresholds.hot:
        return f"thresholds: warm ({config.thresholds.warm}) is above hot ({config.thresholds.hot})"
    named = [(f"segment {s.id!r}", s.when) for s in config.segments]
    named += [(f"stage rule {r.stage!r}", r.when) for r in config.stages]
    for name, condition in named:
        if (levels := depth(condition)) > MAX_CONDITION_DEPTH:
            return f"{name} nests {levels} levels deep; at most {MAX_CONDITION_DEPTH} allowed"
    try:
        stage_plan(config.segments, config.stages)
    except SegmentDefinitionError as exc:
        return str(exc)
    return _messaging_problem(config) or _workflows_problem(config) or _campaigns_problem(config)


def _messaging_problem(config: ActiveConfig) -> str | None:
    try:
        ZoneInfo(config.messaging.default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"messaging: unknown time zone {config.messaging.default_timezone!r}"
    return None


def successors(step: Step) -> list[str]:
    """The ids of the steps a step may go to."""
    if isinstance(step, Branch):
        return [s for s in (step.then, step.otherwise) if s]
    if isinstance(step, Split):
        return [arm.next for arm in step.arms if arm.next]
    if isinstance(step, WaitFor):
        return [s for s in (step.then, step.timeout) if s]
    following: str | None = getattr(step, "next", None)
    return [following] if following else []


def _workflows_problem(config: ActiveConfig) -> str | None:
    ids = [w.id for w in config.workflows]
    if len(set(ids)) != len(ids):
        return f"workflow {next(i for i in ids if ids.count(i) > 1)!r} is defined twice"
    segments = {s.id for s in config.segments}
    for workflow in config.workflows:
        if (problem := workflow_problem(workflow, segments, set(ids))) is not None:
            return f"workflow {workflow.id!r}: {problem}"
    return None


def workflow_problem(workflow: Workflow, segments: set[str], workflows: set[str]) -> str | None:
    """Why one workflow cannot run, or None."""
    if not workflow.steps:
        return "it has no steps"
    steps = {s.id: s for s in workflow.steps}
    if len(steps) != len(workflow.steps):
        return "step ids must be unique"
    trigger = workflow.trigger
    if isinstance(trigger, OnSegment) and trigger.segment not in segments:
        return f"trigger refers to unknown segment {trigger.segment!r}"
    if isinstance(trigger, OnLoyalty) and trigger.orders is None and trigger.revenue is None:
        return "a loyalty trigger needs `orders` or `revenue`"
    goal = workflow.goal
    if goal is not None:
        if goal.left_segment is not None and goal.left_segment not in segments:
            return f"goal refers to unknown segment {goal.left_segment!r}"
        if goal.when is not None and (problem := _condition_problem(goal.when, segments)):
            return f"goal: {problem}"
    for step in workflow.steps:
        if (problem := _step_problem(step, steps, segments, workflows)) is not None:
            return f"step {step.id!r}: {problem}"
    return _loop_problem(workflow, steps)


def _condition_problem(condition: Condition, segments: set[str]) -> str | None:
    if (levels := depth(condition)) > MAX_CONDITION_DEPTH:
        return f"condition nests {levels} levels deep; at most {MAX_CONDITION_DEPTH} allowed"
    unknown = [s for s in references(condition) if s not in segments]
    return f"condition refers to unknown segment {unknown[0]!r}" if unknown else None


def _step_problem(step: Step, steps: dict[str, Step], segments: set[str], workflows: set[str]) -> str | None:
    for target in successors(step):
        if target not in steps:
            return f"goes to unknown step {target!r}"
    if isinstance(step, Branch):
        return _condition_problem(step.when, segments)
    if isinstance(step, Split):
        names = [arm.name for arm in step.arms]
        if not step.arms or len(set(names)) != len(names):
            return "a split needs arms with unique names"
        if abs(sum(arm.percent for arm in step.arms) - 100.0) > 1e-6:
            return "a split's percentages must add up to 100"
    elif isinstance(step, Delay):
        if sum(x is not None for x in (step.seconds, step.until, step.until_trait)) != 1:
            return "a delay needs exactly one of `seconds`, `until`, `until_trait`"
    elif isinstance(step, WaitFor):
        if (step.event is None) == (step.segment is None):
            return "a wait needs exactly one of `event`, `segment`"
        if step.segment is not None and step.segment not in segments:
            return f"waits for unknown segment {step.segment!r}"
    elif isinstance(step, EnterWorkflow) and step.workflow not in workflows:
        return f"enters unknown workflow {step.workflow!r}"
    elif isinstance(step, SendEmail):
        for part, template in (("subject", step.subject), ("text", step.text), ("html", step.html)):
            try:
                if template is not None:
                    parse(template)
            except TemplateError as exc:
                return f"{part}: {exc}"
    return None


def _loop_problem(workflow: Workflow, steps: dict[str, Step]) -> str | None:
    """A cycle of steps with no delay or wait in it would run forever at one instant."""
    pausing = {s.id for s in workflow.steps if isinstance(s, Delay | WaitFor)}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for root in steps:
        if root in state:
            continue
        path, iters = [root], [iter(successors(steps[root]))]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif nxt in pausing:
                continue
            elif state.get(nxt) == 1:
                cycle = [*path[path.index(nxt):], nxt]
                return "steps loop without a delay or wait: " + " → ".join(cycle)
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(successors(steps[nxt])))
    return None


def _campaigns_problem(config: ActiveConfig) -> str | None:
    if len(config.campaigns) > MAX_CAMPAIGNS:
        return f"at most {MAX_CAMPAIGNS} campaigns, not {len(config.campaigns)}"
    ids = [c.id for c in config.campaigns]
    if len(set(ids)) != len(ids):
        return f"campaign {next(i for i in ids if ids.count(i) > 1)!r} is defined twice"
    segments = {s.id for s in config.segments}
    workflows = {w.id for w in config.workflows}
    for campaign in config.campaigns:
        problem = campaign_problem(campaign)
        if problem is None and campaign.when is not None:
            problem = _condition_problem(campaign.when, segments)
            unknown = [n.workflow for n in walk(campaign.when)
                       if isinstance(n, InWorkflow) and n.workflow not in workflows]
            if problem is None and unknown:
                problem = f"condition refers to unknown workflow {unknown[0]!r}"
        if problem is not None:
            return f"campaign {campaign.id!r}: {problem}"
    return None


def validate_config(config: ActiveConfig) -> None:
    """Raise ConfigError when `config` cannot run."""
    if (problem := config_problem(config)) is not None:
        raise ConfigError(problem)
