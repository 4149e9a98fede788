"""`augkd export` writes exactly the configs of its --top-k, and says when fewer trials
completed than it asked for (a search folder written by the results table itself)."""

from __future__ import annotations

from pathlib import Path

from augkd.basics.config import Config
from augkd.cli import main
from augkd.search.records.results import ResultsTable


def _search(folder: Path, completed: int) -> Path:
    """A search folder whose results table holds ``completed`` completed trials and one
    failed one."""
    table = ResultsTable(str(folder))
    config_yaml = Config().to_yaml()
    for index in range(completed):
        table.update(
            f"t{index}", status="completed", best_val_acc1=50.0 + index, config_yaml=config_yaml
        )
    table.update("failed", status="failed", config_yaml=config_yaml)
    table.write()
    return folder


def test_smaller_export_into_the_same_folder_leaves_no_stale_rank_files(tmp_path, capsys):
    search = _search(tmp_path / "search", completed=3)
    out = tmp_path / "best"
    assert main(["export", "--search", str(search), "--top-k", "3", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("rank*.yaml")) == [f"rank{i}.yaml" for i in (1, 2, 3)]
    assert main(["export", "--search", str(search), "--top-k", "1", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*")) == ["rank1.yaml", "summary.json"]
    assert "trial t2, rank 1" in (out / "rank1.yaml").read_text()


def test_export_says_when_fewer_trials_completed_than_top_k(tmp_path, capsys):
    search = _search(tmp_path / "search", completed=1)
    out = tmp_path / "best"
    assert main(["export", "--search", str(search), "--top-k", "3", "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip()
    assert err == (
        f"note: only 1 trial of '{search}' completed, so 1 of the 3 configs --top-k asked for "
        "were written; resume the search for more."
    )
    assert sorted(p.name for p in out.glob("rank*.yaml")) == ["rank1.yaml"]


def test_trials_that_tie_on_the_objective_rank_lowest_val_loss_first():
    from augkd.search.prepare.space import Objective
    from augkd.search.records.results import rank

    rows = [
        {"trial_id": "unsure", "status": "completed", "best_val_acc1": 100.0, "val_loss": 0.3},
        {"trial_id": "worse", "status": "completed", "best_val_acc1": 98.0, "val_loss": 0.001},
        {"trial_id": "sure", "status": "completed", "best_val_acc1": 100.0, "val_loss": 0.02},
        {"trial_id": "old", "status": "completed", "best_val_acc1": 100.0},  # before val_loss
        {"trial_id": "cut", "status": "pruned", "best_val_acc1": 100.0, "val_loss": 0.0},
    ]
    ranked = [row["trial_id"] for row in rank(rows, Objective())]
    assert ranked == ["sure", "unsure", "old", "worse", "cut"]
    by_loss = [row["trial_id"] for row in rank(rows, Objective(metric="val_loss", mode="min"))]
    assert by_loss == ["worse", "sure", "unsure", "old", "cut"]
