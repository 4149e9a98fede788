"""The tasks before a search's trials: the preflight, then the shared stages."""

from __future__ import annotations

import re

import pytest


@pytest.mark.slow
def test_the_shared_stages_show_their_progress_in_a_log(local_ray, tmp_path):
    """Not a terminal (as in `ray job logs`): each stage of each task, from the teacher on,
    gets a line as it starts and one as it ends, through the stage cache's progress files."""
    from augkd.search.prepare.request import SearchOptions, requested_space
    from augkd.search.stages.before_trials import run_before_trials
    from tests.conftest import TINY_SEARCH

    space = requested_space(SearchOptions(space="digits", smoke_test=True, overrides=TINY_SEARCH))
    lines: list[str] = []
    run_before_trials(space, str(tmp_path / "stages"), lines.append, local_cluster=True)
    for stage, unit in [("teacher", "steps"), ("module1", "iterations"), ("encoder", "steps")]:
        assert any(
            re.fullmatch(rf"\[search\] {stage} \(seed 0\): (\d+)/\1 {unit}, done in .+", line)
            for line in lines
        ), lines
    anchors = [line for line in lines if line.startswith("[search] module2 (seed 0")]
    assert len([line for line in anchors if "done in" in line]) == 2  # the grid's two points
    producing = next(i for i, line in enumerate(lines) if "producing shared stages" in line)
    first_module1 = next(i for i, line in enumerate(lines) if "module1 (seed 0)" in line)
    assert producing < first_module1
    assert not list((tmp_path / "stages" / ".live").glob("*/*.json"))  # the files are gone
