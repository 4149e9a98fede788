"""Progress of a stage that runs in a Ray task, carried to the driver through the storage.

Ray does not forward a task's output to the driver, so a stage task's ``ProgressFile``
writes its steps into a small JSON file beside the stage cache (``<root>/.live/``), and the
driver's ``ProgressFiles`` reads them while it waits and prints them through a LinePrinter
(augkd.basics.eta, which turns them into rates and ETAs).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any

from pyarrow import fs as pafs

from augkd.basics.eta import FILE_EVERY_S, UNITS, LineCadence, LinePrinter, Rate
from augkd.storage.files import read_file, resolve_filesystem, write_file


class ProgressFile:
    """A stage task's progress, written (atomically) at most every ``every_s`` to a JSON file
    per stage (``<prefix>.<stage>.json``, so that a stage's last update is never overwritten
    by the next stage's first): the driver reads them while it waits for the task. Writes
    that fail are skipped: progress is never worth failing a stage for."""

    def __init__(self, filesystem: Any, prefix: str, label: str, every_s: float = FILE_EVERY_S):
        self.filesystem = filesystem
        self.prefix = prefix
        self.label = label
        self.every_s = every_s
        self.stage: str | None = None
        self.stage_started = time.monotonic()
        self.base = 0
        self.cadence = LineCadence(every_s)

    def on_step(self, stage: str, done: int, total: int) -> None:
        """A StepHook."""
        if stage != self.stage:  # the clock starts after the stage's first step
            self.stage, self.stage_started, self.base = stage, time.monotonic(), done
            self.cadence = LineCadence(self.every_s)
        if self.cadence.due(final=done >= total):
            self._write(stage, done, total)

    def _write(self, stage: str, done: int, total: int) -> None:
        payload = {
            "label": self.label,
            "stage": stage,
            "done": done,
            "total": total,
            "base": self.base,
            "seconds": time.monotonic() - self.stage_started,
            "id": uuid.uuid4().hex[:8],
        }
        with contextlib.suppress(OSError):
            write_file(self.filesystem, f"{self.prefix}.{stage}.json", json.dumps(payload).encode())


class ProgressFiles:
    """The driver's side: reads every task's progress file under ``folder`` and prints a
    line per stage through a LinePrinter (one key per task and stage)."""

    def __init__(self, root: str, printer: LinePrinter, prefix: str = "[search]") -> None:
        self.filesystem, base = resolve_filesystem(root)
        self.folder = f"{base.rstrip('/')}/.live/{uuid.uuid4().hex[:12]}"
        self.root = root.rstrip("/")
        self.printer = printer
        self.prefix = prefix
        self.seen: dict[str, str] = {}
        """(task, stage) key -> the id of the last update shown."""
        self.finished: set[str] = set()

    def path_for(self, task: str) -> str:
        """The prefix of task ``task``'s progress files (a path in the cache's filesystem)."""
        return f"{self.folder}/{task}"

    def poll(self) -> None:
        try:
            infos = self.filesystem.get_file_info(
                pafs.FileSelector(self.folder, allow_not_found=True)
            )
        except OSError:
            return
        for info in sorted(infos, key=lambda i: i.path):
            if info.type != pafs.FileType.File or not info.path.endswith(".json"):
                continue
            try:
                update = json.loads(read_file(self.filesystem, info.path))
            except (OSError, ValueError):
                continue  # being replaced; the next poll reads it
            self._show(update)

    def _show(self, update: dict[str, Any]) -> None:
        key = f"{update['label']}/{update['stage']}"
        if self.seen.get(key) == update["id"] or key in self.finished:
            return
        self.seen[key] = update["id"]
        rate = Rate(update["done"], update["total"], update["seconds"], update.get("base", 0))
        final = update["done"] >= update["total"]
        if final:
            self.finished.add(key)
        unit = UNITS.get(update["stage"], "steps")
        self.printer.show(
            key,
            f"{self.prefix} {update['stage']} ({update['label']}): {rate.describe(unit)}",
            final,
        )

    def close(self) -> None:
        """The last updates, then the folder goes (best effort)."""
        self.poll()
        self.printer.end_live_line()
        with contextlib.suppress(OSError):
            self.filesystem.delete_dir(self.folder)
