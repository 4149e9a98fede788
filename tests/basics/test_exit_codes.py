"""The failure policy at the `augkd` command line (docs/errors.md).

Each class of failure runs the real command and checks its exit code, that stderr is
one line naming the key or file (no traceback), and that nothing was half done: bad
input is refused before any training, and nothing is written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from augkd.basics.errors import ExitCode
from augkd.cli import main
from tests.conftest import TINY, sigint_as_from_a_terminal
from tests.paths import REPO as ROOT


@pytest.fixture
def tiny_args(cache_home: str) -> list[str]:
    return [arg for item in [*TINY, f"teacher.cache_dir={cache_home}"] for arg in ("--set", item)]


def one_line(captured) -> str:
    """The single stderr line of a failed command; no traceback."""
    assert "Traceback" not in captured.err, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def _refused(argv: list[str], capsys) -> tuple[str, str]:
    """Run the command; it must exit 2 (bad input). Returns (stderr line, stdout)."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses flags itself, with the same code
        code = exit_.code
    assert code == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    return one_line(captured), captured.out


# -- raw tracebacks -------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_asked_for_on_a_cpu_machine_is_refused_before_training(tmp_path, tiny_args, capsys):
    out = tmp_path / "results.json"
    line, printed = _refused(
        ["train", *tiny_args, "--set", "device=cuda", "--out", str(out)], capsys
    )
    assert (
        line.startswith("error: config key 'device' is 'cuda'")
        and "no CUDA GPU is visible here" in line
    )
    assert "epoch" not in printed and not out.exists()


def test_malformed_device_is_refused_by_the_schema(tiny_args, capsys):
    line, _ = _refused(["train", *tiny_args, "--set", "device=cuda:abc"], capsys)
    assert line.startswith("error: config key 'device':") and "'cuda:abc'" in line


@pytest.mark.parametrize("command", ["train", "teacher"])
def test_unwritable_out_is_refused_before_training(command, tmp_path, tiny_args, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "out.json"
    line, printed = _refused([command, *tiny_args, "--out", str(out)], capsys)
    assert f"--out '{out}'" in line and f"'{blocker}' is a file" in line
    assert "epoch" not in printed
    line, _ = _refused([command, *tiny_args, "--out", str(tmp_path)], capsys)
    assert line.startswith(f"error: --out '{tmp_path}' is a folder; pass a file path")


def test_export_into_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "best").write_text("")
    line, _ = _refused(
        ["export", "--search", str(tmp_path), "--out", str(tmp_path / "best")], capsys
    )
    assert (
        line == f"error: --out '{tmp_path / 'best'}' is a file, not a folder; pass a folder path."
    )


def test_damaged_results_table_is_named(tmp_path, capsys):
    table = tmp_path / "search" / "results.parquet"
    table.parent.mkdir()
    table.write_bytes(b"PAR1 truncated by a full disk")
    for command in (["compare"], ["export", "--out", str(tmp_path / "best")]):
        line, _ = _refused([*command, "--search", str(table.parent)], capsys)
        assert f"Results table '{table}' cannot be read" in line


def test_teacher_file_that_cannot_be_loaded_safely_is_named_without_unsafe_advice(
    tmp_path, tiny_args, capsys
):
    path = tmp_path / "pickled_teacher.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a whole module: pickled code
    line, _ = _refused(["train", *tiny_args, "--set", f"teacher.checkpoint={path}"], capsys)
    assert f"Teacher checkpoint '{path}' holds Python objects" in line
    assert "weights_only" not in line and "augkd teacher" in line


# -- vague or misplaced blame ---------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("device=banana", "config key 'device': must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("student.arch=resnet1000", "config key 'student.arch': unknown architecture"),
    ],
)
def test_bad_value_names_its_key_and_nothing_else(setting, named, tiny_args, capsys):
    line, _ = _refused(["train", *tiny_args, "--set", setting], capsys)
    assert line.startswith(f"error: {named}")
    assert "cache_dir" not in line  # the other overrides are not dumped


def test_folder_given_as_config_is_called_a_folder(tmp_path, capsys):
    line, _ = _refused(["train", "--config", str(tmp_path)], capsys)
    assert line == f"error: Config file '{tmp_path}' is a folder; pass --config a YAML file."


# -- silently accepted nonsense -------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["train", "--seeds", "0"], "argument --seeds: must be 1 or more, got 0"),
        (["compare", "--search", "x", "--top-k", "0"], "argument --top-k: must be 1 or more"),
        (["export", "--search", "x", "--top-k", "-2"], "argument --top-k: must be 1 or more"),
        (
            ["train", "--set", "module3.epochs=true"],
            "config key 'module3.epochs': must be a number",
        ),
    ],
)
def test_nonsense_numbers_are_refused(argv, named, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line, _ = _refused(argv, capsys)
    assert line.startswith(f"error: {named}")
    assert list(tmp_path.iterdir()) == []  # no results.json, no best_configs/


# -- noise ----------------------------------------------------------------------------


def test_single_run_prints_only_its_own_lines_and_no_spread(tmp_path, tiny_args, capfd):
    out = tmp_path / "results.json"
    assert main(["train", "--method", "ce", *tiny_args, "--out", str(out)]) == ExitCode.OK
    captured = capfd.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    own = ("== ce seed 0 ==", "teacher epoch", "epoch ", "method ", "ce ", "results written")
    assert all(line.startswith(own) for line in lines), lines
    table_row = next(line for line in lines if line.startswith("ce "))
    test_acc1 = json.loads(out.read_text())["summary"]["test_acc1"]["mean"]
    assert f"{test_acc1:.2f}" in table_row and "±" not in table_row


# -- interruption ---------------------------------------------------------------------


def test_ctrl_c_of_train_says_one_line_and_leaves_no_file(tmp_path):
    out, cache = tmp_path / "results.json", tmp_path / "cache"
    command = [
        sys.executable, "-m", "augkd.cli", "train", "--method", "ce", "--out", str(out),
        "--set", "teacher.epochs=100", "--set", f"teacher.cache_dir={cache}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    train = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=sigint_as_from_a_terminal,
    )  # fmt: skip
    assert train.stdout.readline() == "== ce seed 0 ==\n"
    # Ctrl-C once the teacher is training, not while the libraries are still importing: a
    # third-party import can swallow KeyboardInterrupt (the run then ends 0), and one inside
    # an exec'd string makes CPython re-raise SIGINT at exit (it ends -2).
    assert train.stdout.readline().startswith("teacher epoch 10/100 ")
    train.send_signal(signal.SIGINT)
    printed, err = train.communicate()
    assert train.returncode == ExitCode.INTERRUPTED, err
    assert err == "interrupted; nothing written\n"
    assert "results written" not in printed and not out.exists()
    leftovers = [p for p in cache.rglob("*") if p.is_file() and p.parent.name != ".locks"]
    assert leftovers == []  # no teacher artifact, whole or partial


def test_debug_shows_the_traceback_behind_the_sentence(capsys):
    assert main(["train", "--set", "module3.epochs=true", "--debug"]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1] == (
        "error: config key 'module3.epochs': must be a number, not true/false (got True)"
    )
