"""analysis/: the notebooks and `augkd report`, on one real smoke-size search and on
results tables with one trial, only failed trials and no finished trial."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from augkd import report
from augkd.basics.errors import ConfigError
from augkd.cli import main as cli_main
from augkd.search.records.results import ResultsTable
from tests.paths import REPO

NOTEBOOKS = sorted((REPO / "analysis").glob("*.ipynb"))
FIGURES = (
    "parallel_coordinates",
    "importance",
    "val_curves",
    "mixup_schedule",
    "diagnostics",
    "baselines",
)
TABLES = ("leaderboard", "mlflow_runs")
BASELINES = {
    "methods": {
        "augkd": {"test_acc1": [41.1, 43.3, 40.0]},
        "ce": {"test_acc1": [30.0, 32.2, 31.1]},
        "kd": {"test_acc1": [35.6, 34.4, 36.7]},
    }
}


@pytest.fixture(scope="module")
def search(tiny_search, tmp_path_factory):
    """The session's tiny real search, and a baselines file kept outside it."""
    baselines = tmp_path_factory.mktemp("baselines") / "baselines-elsewhere.json"
    baselines.write_text(json.dumps(BASELINES))
    return {**tiny_search, "baselines": str(baselines)}


@pytest.fixture
def clean_env(monkeypatch):
    for name in (
        "AUGKD_SEARCH_PATH",
        "AUGKD_TRACKING_URI",
        "AUGKD_BASELINES_JSON",
        "AUGKD_STORAGE",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def run_notebook(path: Path, env, search_path: str, tracking_uri: str, baselines: str | None):
    """Execute a notebook headless with the venv's python3 kernel (jupyter_client runs
    the spec's "python" as sys.executable); nbclient raises on any failing cell."""
    env.setenv("AUGKD_SEARCH_PATH", search_path)
    env.setenv("AUGKD_TRACKING_URI", tracking_uri)
    if baselines:
        env.setenv("AUGKD_BASELINES_JSON", baselines)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    return notebook


def tagged_outputs(notebook) -> dict[str, list[dict]]:
    """Outputs of the cells tagged section:<key>, by key."""
    found = {}
    for cell in notebook.cells:
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith("section:"):
                found[tag.removeprefix("section:")] = cell.get("outputs", [])
    return found


def mime_text(outputs: list[dict], mime: str) -> str:
    return "\n".join(str(o.get("data", {}).get(mime, "")) for o in outputs)


def has_image(outputs: list[dict]) -> bool:
    return any("image/png" in o.get("data", {}) for o in outputs)


def notes_of(outputs: list[dict]) -> str:
    return mime_text(outputs, "text/markdown")


def img_sources(index: Path) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', index.read_text())


# -- the real search -----------------------------------------------------------------
def test_the_fixture_is_a_real_finished_search(search):
    statuses = {row["status"] for row in search["rows"]}
    assert len(search["rows"]) == 3
    assert "completed" in statuses
    assert statuses <= {"completed", "pruned"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
@pytest.mark.slow
def test_notebook_draws_every_figure(path, search, clean_env):
    notebook = run_notebook(path, clean_env, search["path"], search["uri"], search["baselines"])
    sections = tagged_outputs(notebook)
    assert set(FIGURES + TABLES) <= set(sections), f"{path.name}: cells not tagged section:<key>"
    for key in FIGURES:
        assert has_image(sections[key]), (
            f"{path.name}: no figure for {key}: {notes_of(sections[key])}"
        )
    trial_ids = [row["trial_id"] for row in search["rows"]]
    for key in TABLES:
        html_text = mime_text(sections[key], "text/html")
        assert all(trial in html_text for trial in trial_ids), f"{key} lacks trials"
    assert "completed" in notes_of(sections["importance"])  # the title names which trials


def test_notebooks_exist_and_are_thin():
    assert NOTEBOOKS, "analysis/ holds no notebook"
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code = [c.source for c in notebook.cells if c.cell_type == "code"]
        assert any("from augkd import report" in source for source in code)
        assert all(len(source.splitlines()) <= 4 for source in code), "logic belongs in report.py"
        assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code")


def test_write_report_writes_every_png_and_an_index(search, tmp_path, clean_env):
    index = report.write_report(search["path"], str(tmp_path / "out"), search["uri"])
    assert index == tmp_path / "out" / "index.html"
    sources = img_sources(index)
    assert set(sources) == {f"{key}.png" for key in FIGURES if key != "baselines"}
    for name in sources:
        assert (index.parent / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    text = index.read_text()
    for row in search["rows"]:
        assert text.count(row["trial_id"]) >= 2  # leaderboard and MLflow runs
    assert "No multi-seed evaluation found" in text  # no baselines.json: a note


def test_report_shows_each_trials_diagnostics_and_the_best_ones_pictures(
    search, tmp_path, clean_env
):
    from mlflow.tracking import MlflowClient

    rows = search["rows"]
    assert all(row["diag_recon_acc1"] is not None for row in rows)  # in the results table
    client = MlflowClient(search["uri"])
    for row in rows:
        logged = {a.path for a in client.list_artifacts(row["mlflow_run_id"], "diagnostics")}
        assert logged == {"diagnostics/generator_samples.png", "diagnostics/module_rows.png"}
        assert "diag_anchor_acc1" in client.get_run(row["mlflow_run_id"]).data.metrics
    index = report.write_report(search["path"], str(tmp_path / "out"), search["uri"])
    assert (index.parent / "diagnostics.png").read_bytes().startswith(b"\x89PNG")
    section = index.read_text().split('id="diagnostics"')[1].split("<h2")[0]
    assert "recon_acc1" in section and "Pictures of trial" in section


def test_cli_report_defaults_to_the_search_folder(search, capsys, clean_env):
    folder = Path(search["path"])
    shutil.copy(search["baselines"], folder / report.BASELINES_FILE)
    try:
        assert (
            cli_main(["report", "--search", search["path"], "--tracking-uri", search["uri"]]) == 0
        )
    finally:
        (folder / report.BASELINES_FILE).unlink()
    index = folder / "report" / "index.html"
    assert str(index) in capsys.readouterr().out
    assert "baselines.png" in img_sources(index)


def test_sections_agree_with_the_table(search, clean_env):
    data = report.load_search(search["path"], search["uri"])
    assert data.notes == []
    # grace 2 steps, factor 2, a budget of 3 epochs of 6 steps (the smoke test's grace; the
    # tiny search's module3.epochs=3 on digits' 720 train images)
    assert report.budget_steps(data) == 18
    assert report.asha_rungs(data) == [2.0, 4.0, 8.0, 16.0]
    study, step, statuses = report.importance_study(data)
    assert step in [*report.asha_rungs(data), 18.0]  # one fidelity: a rung or the full budget
    at_step = {}  # each trial's value at its first report at or past that step
    for row in search["rows"]:
        history = json.loads(row["history_json"])
        reached = [h for h in history if h["step"] >= step]
        if reached:
            at_step[row["trial_id"]] = reached[0]["best_val_acc1"]
    assert sum(statuses.values()) == len(study.trials) == len(at_step) >= 2
    assert sorted(t.value for t in study.trials) == sorted(at_step.values())
    for row in search["rows"]:
        epochs, shares = report.schedule_curve(data, row)
        logged = {h["epoch"]: h["mixup_share"] for h in json.loads(row["history_json"])}
        assert logged, row
        for epoch, share in logged.items():
            assert shares[epochs.index(int(epoch))] == pytest.approx(share)


def test_asha_rungs_fall_back_to_the_budget_the_trials_reported():
    space = {
        "scheduler": {"name": "asha", "grace_period": 2, "reduction_factor": 3, "max_steps": None},
        "base_resolved": {"module3": {"steps": 20}},
    }
    rows = [{"trial_id": "a", "status": "completed",
             "history_json": json.dumps([{"epoch": 1, "step": 10, "steps": 20}])}]  # fmt: skip
    assert report.asha_rungs(report.SearchData("s", "u", rows=rows, space=space)) == [2, 6, 18]
    space["scheduler"]["name"] = "fifo"
    assert report.asha_rungs(report.SearchData("s", "u", rows=rows, space=space)) == []


def test_search_and_store_are_found_without_arguments(tmp_path, clean_env):
    for name in ("digits-20261126-120000", "office31-20261127-080000", "stage_cache", "notes"):
        (tmp_path / name).mkdir()
    for name in ("digits-20261126-120000", "office31-20261127-080000"):
        (tmp_path / name / report.SPACE_FILE).write_text("{}")
    latest = str(tmp_path / "office31-20261127-080000")
    clean_env.setenv("AUGKD_STORAGE", str(tmp_path))
    assert report.resolve_search_path() == latest
    assert report.resolve_search_path(str(tmp_path)) == latest  # a storage root
    clean_env.setenv("AUGKD_SEARCH_PATH", "elsewhere")
    assert report.resolve_search_path() == "elsewhere"
    clean_env.chdir(tmp_path)
    assert report.default_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert report.default_tracking_uri(workdir=REPO) == f"sqlite:///{REPO / 'mlflow.db'}"
    clean_env.setenv("AUGKD_TRACKING_URI", "sqlite:////x/y.db")
    assert report.default_tracking_uri() == "sqlite:////x/y.db"


# -- edge cases: real space, rows written with ResultsTable --------------------------
def synthetic_search(search, tmp_path: Path, kind: str) -> str:
    """A search folder with the real search's space and a table edited from its rows."""
    folder = tmp_path / "digits-20990101-000000"
    folder.mkdir()
    shutil.copy(Path(search["path"]) / report.SPACE_FILE, folder / report.SPACE_FILE)
    if kind == "no_table":
        return str(folder)
    real = sorted(search["rows"], key=lambda r: r["status"] != "completed")
    table = ResultsTable(str(folder))
    if kind == "one_trial":
        table.update(real[0]["trial_id"], **{k: v for k, v in real[0].items() if k != "trial_id"})
    for place, row in enumerate(real):
        params = {k: v for k, v in row.items() if k.startswith("param:")}
        if kind == "failed_only":
            table.update(
                f"f{place}",
                status="failed",
                error="Traceback (most recent call last):\n  ...\naugkd.errors.TrainingError: "
                "Module 2 anchor loss at epoch 1 became nan (training diverged)",
                **params,
            )
        elif kind == "no_finished":
            history = json.loads(row["history_json"])[:1]
            status = "running" if place == 0 else "failed"
            table.update(f"r{place}", status=status, history_json=json.dumps(history), **params)
    table.write()
    return str(folder)


EDGE_NOTES = {
    # section -> a phrase of its note, per case; None: the figure is drawn
    "one_trial": {"importance": "at least 2", "parallel_coordinates": None, "val_curves": None},
    "failed_only": {
        "parallel_coordinates": "No trial reported",
        "importance": "at least 2",
        "val_curves": "No trial reported",
        "mixup_schedule": "no schedule",
    },
    "no_finished": {
        "importance": "at least 2",
        "mixup_schedule": "no schedule",
        "val_curves": None,
    },
    "no_table": {"leaderboard": "No trials", "parallel_coordinates": "No trial reported"},
}


@pytest.mark.parametrize("kind", list(EDGE_NOTES))
def test_edge_cases_give_notes_in_the_report(kind, search, tmp_path, clean_env):
    folder = synthetic_search(search, tmp_path, kind)
    index = report.write_report(folder, None, search["uri"])
    assert index == Path(folder) / "report" / "index.html"
    text = index.read_text()
    drawn = set(img_sources(index))
    for key, phrase in EDGE_NOTES[kind].items():
        if phrase is None:
            assert f"{key}.png" in drawn
        else:
            assert f"{key}.png" not in drawn
            section = text.split(f'id="{key}"')[1].split("<h2")[0]
            assert phrase in section, (key, section)
    assert "No child runs of digits-20990101-000000" in text  # MLflow knows no such search
    if kind == "failed_only":
        assert "became nan (training diverged)" in text  # the error's last line
    if kind == "no_table":
        assert "No results table" in text


@pytest.mark.parametrize("kind", ["one_trial", "failed_only", "no_finished"])
@pytest.mark.slow
def test_edge_cases_give_a_readable_notebook(kind, search, tmp_path, clean_env):
    folder = synthetic_search(search, tmp_path, kind)
    for path in NOTEBOOKS:
        sections = tagged_outputs(run_notebook(path, clean_env, folder, search["uri"], None))
        for key, phrase in EDGE_NOTES[kind].items():
            if phrase is None:
                assert has_image(sections[key]), (path.name, key)
            else:
                assert not has_image(sections[key]) and phrase in notes_of(sections[key])
        assert "No multi-seed evaluation found" in notes_of(sections["baselines"])


def test_an_unreadable_tracking_store_is_a_note_and_is_not_created(search, tmp_path, clean_env):
    data = report.load_search(search["path"], f"sqlite:///{tmp_path}/missing.db")
    section = report.mlflow_runs(data)
    assert section.table is None and "does not exist" in section.note
    assert not (tmp_path / "missing.db").exists()
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    section = report.mlflow_runs(report.load_search(search["path"], f"sqlite:///{broken}"))
    assert section.table is None and "cannot be read" in section.note


def test_a_bad_baselines_file_is_a_note(search, tmp_path, clean_env):
    data = report.load_search(search["path"], search["uri"])
    bad = tmp_path / "baselines.json"
    bad.write_text('{"methods": {"augkd": {"test_acc1": []}}}')
    assert "no method with test_acc1" in report.plot_baselines(data, str(bad)).note
    bad.write_text("{not json")
    assert "cannot be read" in report.plot_baselines(data, str(bad)).note
    section = report.plot_baselines(data, search["baselines"])
    assert section.figure is not None and section.note is None


def test_a_missing_search_is_an_error_in_the_cli_and_a_note_in_the_notebook(tmp_path, clean_env):
    missing = str(tmp_path / "digits-20000101-000000")
    clean_env.setenv("AUGKD_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(ConfigError, match="does not exist"):
        report.write_report(missing)
    assert cli_main(["report", "--search", missing]) == 2
    data = report.load_search(missing)
    assert data.rows == [] and "does not exist" in data.notes[0]
    assert all(s.figure is None and s.note for s in report.sections(data))


def test_every_command_takes_a_storage_root_for_its_latest_search(search, tmp_path, capsys):
    root, latest = str(search["root"]), search["path"]
    out = tmp_path / "exported"
    assert cli_main(["export", "--search", root, "--top-k", "1", "--out", str(out)]) == 0
    assert f"# exported from {latest}," in (out / "rank1.yaml").read_text()
    assert cli_main(["compare", "--search", root]) == 0
    assert cli_main(["report", "--search", root, "--out", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    assert captured.err.count(f"using the latest search under {root}: {latest}") == 3
    assert search["rows"][0]["trial_id"] in captured.out


def test_report_refuses_what_is_not_a_search_and_writes_nothing(search, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a search")
    corrupt = tmp_path / "digits-20990101-000000"
    corrupt.mkdir()
    shutil.copy(Path(search["path"]) / report.SPACE_FILE, corrupt / report.SPACE_FILE)
    (corrupt / "results.parquet").write_bytes(b"PAR1 truncated")
    expected = {empty: "neither a search folder", foreign: "neither a search folder",
                corrupt: "results table of"}  # fmt: skip
    for folder, phrase in expected.items():
        assert cli_main(["report", "--search", str(folder), "--out", str(folder / "r")]) == 2
        err = capsys.readouterr().err
        assert phrase in err and str(folder) in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        assert not (folder / "r").exists()
