"""A search-space file read, validated and resolved: every fault one sentence naming the key
and the fix, before Ray starts."""

from __future__ import annotations

import pytest
import ray
import yaml

from augkd.basics.errors import ConfigError
from augkd.search.prepare.request import SearchOptions, requested_space
from augkd.search.prepare.sampler import build_sampler
from augkd.search.prepare.space_file import load_space


def _space_file(tmp_path, **changes):
    space = yaml.safe_load(open("search_spaces/digits.yaml"))
    for key, value in changes.items():
        space[key] = value
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return str(path)


@pytest.mark.parametrize("name", ["digits", "fonts", "forms", "office31", "officehome", "visda"])
def test_shipped_spaces_validate(name):
    space = load_space(f"search_spaces/{name}.yaml")
    assert space.params and space.num_samples >= 1
    build_sampler(space)


@pytest.mark.parametrize(
    ("changes", "overrides", "sentence"),
    [
        ({"params": {"module2.anchor_wait": {"type": "float", "low": 0, "high": 1}}}, [],
         "'module2.anchor_wait' is not a config key"),
        ({"params": {"module3.a": {"type": "float", "low": 0.9, "high": 0.2}}}, [],
         r"params.module3.a.*low \(0.9\) is greater than high"),
        ({"params": {"module3.a": {"type": "float", "low": 0.5, "high": 2.0}}}, [],
         "'module3.a' allows a bad value"),
        ({"num_sample": 3}, [], "unknown search-space key 'num_sample'"),
        ({"num_samples": True}, [], "search-space key 'num_samples': must be a number"),
        ({}, ["sampler.name=annealing"], "sampler.name"),
        ({}, ["sampler.name=grid"], "The grid sampler needs a 'grid' list"),
    ],
    ids=["unknown-param", "low-above-high", "outside-schema", "unknown-key", "bool-number",
         "unknown-sampler", "grid-without-values"],
)  # fmt: skip
def test_a_bad_space_is_refused_naming_the_key_before_ray(tmp_path, changes, overrides, sentence):
    path = _space_file(tmp_path, **changes)
    with pytest.raises(ConfigError, match=sentence):
        requested_space(SearchOptions(space=path, overrides=overrides))
    assert not ray.is_initialized()


def test_missing_space_file_points_at_the_flag(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; pass --space"):
        requested_space(SearchOptions(space=str(tmp_path / "nowhere" / "space.yaml")))


def test_a_when_value_outside_the_choices_is_refused_naming_both_keys(tmp_path):
    """It used to pass, and the conditional key was never sampled."""
    params = yaml.safe_load(open("search_spaces/digits.yaml"))["params"]
    params["module3.teacher_fade"]["when"] = {"module3.teacher_term": "mixd"}
    choices = params["module3.teacher_term"]["choices"]
    with pytest.raises(ConfigError) as refused:
        requested_space(SearchOptions(space=_space_file(tmp_path, params=params)))
    assert str(refused.value) == (
        "Search space param 'module3.teacher_fade' is conditional on module3.teacher_term = "
        f"'mixd', which is not among its choices {choices}, so 'module3.teacher_fade' would "
        "never be sampled; use a value 'module3.teacher_term' can take."
    )
