"""The one validator of a configuration: what the admin API refuses and the dataflow relies on.

msgspec checks each part's shape as it decodes; what spans parts is checked
here — duplicate rule ids, unknown score groups, warm above hot, condition
trees deeper than evaluation allows, and the segment graph (unknown
references, cycles, a stage rule that needs the stage) — by both the admin
API (a 422 naming the problem) and the dataflow when it compiles a version.
"""

from __future__ import annotations

from state.config import ActiveConfig
from state.segment_graph import MAX_CONDITION_DEPTH, SegmentDefinitionError, depth, stage_plan


class ConfigError(ValueError):
    """A configuration that cannot be published or run; the message names the problem."""


def config_problem(config: ActiveConfig) -> str | None:
    """Why `config` cannot be published, or None."""
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
    return None


def validate_config(config: ActiveConfig) -> None:
    """Raise ConfigError when `config` cannot run."""
    if (problem := config_problem(config)) is not None:
        raise ConfigError(problem)
