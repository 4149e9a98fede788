"""A stage task's progress reaches the driver through files in the storage
(augkd.storage.progress_files)."""

from __future__ import annotations

from augkd.basics.eta import LinePrinter
from augkd.storage.files import resolve_filesystem
from augkd.storage.progress_files import ProgressFile, ProgressFiles


def test_stage_progress_written_in_a_task_reaches_the_drivers_log(tmp_path):
    """The file a stage task writes in the stage cache, read by the driver: a line when a
    stage starts and one when it ends, for every stage, though the task moved on."""
    lines: list[str] = []
    watch = ProgressFiles(str(tmp_path), LinePrinter(lines.append, live=False, log_every_s=60))
    filesystem, _ = resolve_filesystem(str(tmp_path))
    task = ProgressFile(filesystem, watch.path_for("seed0"), "seed 0", every_s=0)
    for done in range(1, 5):
        task.on_step("module1", done, 4)
    task.on_step("encoder", 1, 2)
    watch.poll()
    task.on_step("encoder", 2, 2)
    watch.close()
    assert lines[0].startswith("[search] encoder (seed 0): 1/2 steps")
    assert "[search] module1 (seed 0): 4/4 iterations, done in" in lines[1]
    assert "[search] encoder (seed 0): 2/2 steps, done in" in lines[2]
    assert len(lines) == 3
    assert not (tmp_path / ".live").exists() or not any((tmp_path / ".live").iterdir())
