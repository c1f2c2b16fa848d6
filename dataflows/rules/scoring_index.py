"""A configuration's scoring rules compiled for the hot path: by event key and by id.

Built once per configuration version (in `LiveConfig.of`), so an event only
checks the rules for its own name, and a deadline finds its rule by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from state.config import AbsenceRule, ActiveConfig, ScoreGroup, ScoringRule

_DEFAULT_GROUP: Final = ScoreGroup()


@dataclass(frozen=True, slots=True)
class ScoringIndex:
    """Rules by event key (`scoring`, `after`, `expect`) and by id; half-lives by group."""

    scoring: dict[str, list[ScoringRule]] = field(default_factory=dict)
    after: dict[str, list[AbsenceRule]] = field(default_factory=dict)
    expect: dict[str, list[AbsenceRule]] = field(default_factory=dict)
    scoring_by_id: dict[str, ScoringRule] = field(default_factory=dict)
    absence_by_id: dict[str, AbsenceRule] = field(default_factory=dict)
    groups: dict[str, ScoreGroup] = field(default_factory=dict)

    @classmethod
    def of(cls, config: ActiveConfig) -> ScoringIndex:
        """Index `config`'s scoring and absence rules."""
        index = cls(groups=dict(config.score_groups))
        for rule in config.scoring_rules:
            index.scoring.setdefault(rule.match.event, []).append(rule)
            index.scoring_by_id[rule.id] = rule
        for absence in config.absence_rules:
            index.after.setdefault(absence.after.event, []).append(absence)
            index.expect.setdefault(absence.expect.event, []).append(absence)
            index.absence_by_id[absence.id] = absence
        return index

    def half_life(self, group: str) -> float:
        """The group's half-life (the default group's for an unknown one; 0 = no decay)."""
        return (self.groups.get(group) or self.groups.get("default") or _DEFAULT_GROUP).half_life_s
