import json

from augkd.cli import main
from tests.conftest import TINY


def test_train_with_seeds_writes_mean_and_std(tmp_path, cache_home, capsys):
    out = tmp_path / "results.json"
    args = ["train", "--method", "ce", "--seeds", "2", "--out", str(out)]
    for override in [*TINY, f"teacher.cache_dir={cache_home}"]:
        args += ["--set", override]
    assert main(args) == 0
    payload = json.loads(out.read_text())
    assert [run["seed"] for run in payload["runs"]] == [0, 1]
    tests = [run["test_acc1"] for run in payload["runs"]]
    assert payload["summary"]["test_acc1"]["mean"] == sum(tests) / 2
    printed = capsys.readouterr().out
    assert "epoch 3/3" in printed and "±" in printed


def test_bad_key_exits_2_with_one_sentence(capsys):
    assert main(["train", "--set", "module9.epochs=3"]) == 2
    assert "unknown config key 'module9'" in capsys.readouterr().err


def test_export_of_missing_search_names_the_path(tmp_path, capsys):
    missing = tmp_path / "nothing"
    assert main(["export", "--search", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"'{missing}' does not exist" in err and "storage root" in err
