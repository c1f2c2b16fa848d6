"""Every seed recipe is a valid workflow, whatever its parameters, and reads back as published."""

from __future__ import annotations

import pytest

from state.config import ActiveConfig, decode_config, encode_config
from state.config_rules import config_problem
from state.recipes import RECIPES, build


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_recipe_builds_a_workflow_the_validator_accepts_and_that_reads_back(name: str) -> None:
    workflow = build(name, None, "esp", {k: 1.0 for k in RECIPES[name].parameters})
    config = ActiveConfig(workflows=[workflow])
    assert config_problem(config) is None
    assert decode_config(encode_config(config)).workflows == [workflow]
