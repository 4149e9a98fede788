"""A search whose objective saturates says where it could not rank its trials, and what
would let ASHA tell them apart."""

from __future__ import annotations

import json

from augkd.search.answer.ties import tie_notes, tied_rung, tied_top
from augkd.search.prepare.space_file import load_space

# grace 10, factor 2, budget 80: rungs at steps 10, 20 and 40
SPACE = load_space(
    "digits", {"scheduler": {"name": "asha", "grace_period": 10, "reduction_factor": 2}}
)


def _row(trial: str, status: str, curve: list[tuple[int, float, float]]) -> dict:
    history = [
        {"step": step, "steps": 80, "best_val_acc1": acc, "val_loss": loss}
        for step, acc, loss in curve
    ]
    last = history[-1]
    return {
        "trial_id": trial, "status": status, "history_json": json.dumps(history),
        "best_val_acc1": last["best_val_acc1"], "val_loss": last["val_loss"],
    }  # fmt: skip


def test_a_rung_where_every_trial_tied_is_named_with_the_fix():
    rows = [
        _row("a", "completed", [(10, 90.0, 0.5), (20, 100.0, 0.1), (80, 100.0, 0.02)]),
        _row("b", "completed", [(10, 95.0, 0.4), (20, 100.0, 0.2), (80, 100.0, 0.05)]),
        _row("c", "completed", [(10, 85.0, 0.6), (20, 100.0, 0.3), (80, 100.0, 0.04)]),
        _row("x", "failed", [(10, 100.0, 9.0), (20, 50.0, 9.0)]),
    ]
    assert tied_rung(rows, SPACE) == (20.0, 3, 100.0)
    assert tied_top(rows, SPACE) == (3, 100.0)
    rung_note, top_note = tie_notes(rows, SPACE)
    assert "rung at step 20" in rung_note and "scheduler.rung_metric=val_loss" in rung_note
    assert top_note.startswith("3 completed trials tie at the best val acc1 (100)")


def test_a_search_that_ranked_its_trials_gets_no_note():
    rows = [
        _row("a", "completed", [(10, 90.0, 0.5), (20, 97.0, 0.1), (80, 99.0, 0.02)]),
        _row("b", "completed", [(10, 95.0, 0.4), (20, 96.0, 0.2), (80, 98.0, 0.05)]),
        _row("c", "pruned", [(10, 85.0, 0.6)]),
    ]
    assert tie_notes(rows, SPACE) == []


def test_two_trials_sharing_a_value_are_a_coincidence_not_a_saturated_objective():
    rows = [
        _row("a", "completed", [(10, 90.0, 0.5), (80, 99.0, 0.02)]),
        _row("b", "completed", [(10, 90.0, 0.4), (80, 99.0, 0.05)]),
        _row("c", "completed", [(10, 80.0, 0.4), (80, 97.0, 0.05)]),
    ]
    assert tied_rung(rows, SPACE) is None
    assert tied_top(rows, SPACE) is None


def test_asha_ranking_by_val_loss_itself_has_nothing_to_break():
    space = load_space(
        "digits", {"scheduler": {"name": "asha", "grace_period": 10, "rung_metric": "val_loss"}}
    )
    rows = [_row(t, "completed", [(10, 100.0, 0.5), (80, 100.0, 0.1)]) for t in "abc"]
    assert tied_rung(rows, space) is None
