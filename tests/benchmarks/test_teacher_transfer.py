"""benchmarks/teacher_transfer.py covers the forms regime: the teacher's accuracy on the
whole typed domain, per class, and the sizes of both domains and of the student's split."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.paths import REPO as ROOT


def test_forms_row_reports_accuracy_and_sizes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "teacher_transfer.py"), "--benchmark", "forms",
         "--per-class", "--set", "teacher.epochs=1", "--set", f"teacher.cache_dir={tmp_path}"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    row = next(line for line in run.stdout.splitlines() if line.startswith("| forms"))
    found = re.fullmatch(
        r"\| forms \| handwritten \(1797, ([\d.]+) on 90\) \| typed \(3000\) \| ([\d.]+) "
        r"\| 150 / 1425 / 1425 \|",
        row,
    )
    assert found, row
    assert all(0.0 <= float(value) <= 100.0 for value in found.groups())
    per_class = next(line for line in run.stdout.splitlines() if "per class:" in line)
    assert re.findall(r"(\d) [\d.]+", per_class.split(":", 1)[1]) == [str(d) for d in range(10)]
