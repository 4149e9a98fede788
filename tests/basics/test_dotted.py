"""Dotted config keys: a searched key's short name, unique even when two keys share their
last part (leaderboard columns, the live view, the report's axes)."""

from __future__ import annotations

from types import SimpleNamespace

from augkd.basics.dotted import short_names
from augkd.search.prepare.space import Objective
from augkd.search.records.results import format_leaderboard, param_column
from augkd.search.run.progress import ProgressView

SAME_LAST_PART = ["module2.temperature", "module3.kd_temperature", "module3.temperature"]
VALUES = (0.5, 2.5, 4.5)


def test_short_names_are_the_shortest_suffix_no_other_key_ends_with():
    assert short_names([*SAME_LAST_PART, "module3.a", "a.b.c", "x.b.c"]) == {
        "module2.temperature": "module2.temperature",
        "module3.kd_temperature": "kd_temperature",
        "module3.temperature": "module3.temperature",
        "module3.a": "a",
        "a.b.c": "a.b.c",
        "x.b.c": "x.b.c",
    }
    assert short_names(["seed", "data.seed"]) == {"seed": "seed", "data.seed": "data.seed"}


def test_a_searched_key_keeps_its_section_where_the_leaderboard_has_a_column_of_that_name():
    row = {"trial_id": "t1", "status": "completed", "best_val_acc1": 50.0, "steps_run": 1000}
    row |= {param_column("module2.steps"): 40, param_column("module3.lr"): 0.001}
    header = format_leaderboard([row], Objective()).splitlines()[0].split()
    assert header[-3:] == ["steps", "module2.steps", "lr"]


def test_the_leaderboard_and_the_live_view_tell_two_temperatures_apart(capsys):
    row = {"trial_id": "t1", "status": "completed", "best_val_acc1": 50.0}
    row |= {param_column(key): value for key, value in zip(SAME_LAST_PART, VALUES, strict=True)}
    header = format_leaderboard([row], Objective()).splitlines()[0].split()
    assert header[-3:] == ["module2.temperature", "kd_temperature", "module3.temperature"]
    view = ProgressView(SAME_LAST_PART, "best_val_acc1", interval_s=0)
    trial = SimpleNamespace(
        trial_id="t1", status="RUNNING", config=dict(zip(SAME_LAST_PART, VALUES, strict=True)),
        last_result={"epoch": 1, "epochs": 3, "best_val_acc1": 50.0},
    )  # fmt: skip
    view.on_step_end(iteration=1, trials=[trial])
    printed = capsys.readouterr().out
    assert "module2.temperature=0.5 kd_temperature=2.5 module3.temperature=4.5" in printed
