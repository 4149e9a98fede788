"""Rates and ETAs: the one place that turns (done, total, seconds) into a rate, an ETA and a
progress line, for the shared stages, the trials, the evaluation and ``search.py --estimate``.

A stage reports its steps through ``StepHook`` (stage, done, total); inside a Ray task a
``ProgressFile`` writes them into a small JSON file in the stage cache, which the driver's
``ProgressFiles`` reads while it waits (Ray does not forward the task's output to the driver).
``LineCadence`` decides when a line is worth printing: a live line in a terminal, and in a log
(not a TTY, e.g. ``ray job logs``) one line per ``log_every_s`` plus the start and end lines.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

StepHook = Callable[[str, int, int], None]
"""on_step(stage, done, total): ``done`` of ``total`` units of ``stage`` are finished."""

LOG_EVERY_S = 15.0
"""A line per update in a log at most this often (start and end lines always)."""
LIVE_EVERY_S = 1.0
"""How often a terminal's live line is redrawn."""
FILE_EVERY_S = 2.0
"""How often a stage task rewrites its progress file."""

UNITS = {
    "teacher": "steps",
    "module1": "iterations",
    "encoder": "steps",
    "module2": "steps",
    "module3": "steps",
    "runs": "runs",
}


def format_duration(seconds: float) -> str:
    """12s, 4m05s, 2h03m: short enough for a progress line."""
    if seconds != seconds or seconds == float("inf"):  # nan or unknown
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_rate(per_second: float, unit: str) -> str:
    """3.2 steps/s, or 4.1 runs/min when slower than one a second."""
    if per_second <= 0:
        return f"? {unit}/s"
    if per_second >= 1:
        return f"{per_second:.3g} {unit}/s"
    if per_second * 60 >= 1:
        return f"{per_second * 60:.3g} {unit}/min"
    return f"{per_second * 3600:.3g} {unit}/h"


@dataclass(frozen=True)
class Rate:
    """``done`` of ``total`` units, ``seconds`` after the first ``base`` of them were done:
    the measured rate and the ETA. ``base`` leaves out what came before the clock started
    (a stage's first step, which pays for warm-up, or a resumed stage's earlier epochs)."""

    done: float
    total: float
    seconds: float
    base: float = 0.0

    @property
    def per_second(self) -> float:
        timed = self.done - self.base
        return timed / self.seconds if self.seconds > 0 and timed > 0 else 0.0

    @property
    def seconds_per_unit(self) -> float:
        timed = self.done - self.base
        return self.seconds / timed if timed > 0 else float("nan")

    @property
    def eta_s(self) -> float:
        """Seconds left at the rate so far (nan before the first unit)."""
        if self.done >= self.total:
            return 0.0
        rate = self.per_second
        return (self.total - self.done) / rate if rate > 0 else float("nan")

    def describe(self, unit: str) -> str:
        text = f"{self.done:.0f}/{self.total:.0f} {unit}"
        if self.done >= self.total:
            return f"{text}, done in {format_duration(self.seconds)}"
        if self.per_second <= 0:
            return f"{text}, timing"
        return f"{text}, {format_rate(self.per_second, unit)}, ETA {format_duration(self.eta_s)}"


class LineCadence:
    """When to print the next progress line of one job: a line at its start and at its end
    always; in between, at most every ``every_s`` (a live redraw in a terminal, a line in a
    log)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last: float | None = None

    def due(self, final: bool = False, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if final or self.last is None or now - self.last >= self.every_s:
            self.last = now
            return True
        return False


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


class LinePrinter:
    """Progress lines of several jobs (keyed): in a terminal, the job's live line redrawn in
    place; in a log, one line per update at ``log_every_s``. ``echo``: where lines go when
    not drawing live (the search's echo)."""

    def __init__(
        self,
        echo: Callable[[str], None] = print,
        live: bool | None = None,
        log_every_s: float = LOG_EVERY_S,
    ) -> None:
        self.echo = echo
        self.live = is_terminal() if live is None else live
        self.every_s = LIVE_EVERY_S if self.live else log_every_s
        self.cadences: dict[str, LineCadence] = {}
        self.drawn = False

    def show(self, key: str, text: str, final: bool = False) -> None:
        cadence = self.cadences.setdefault(key, LineCadence(self.every_s))
        if not cadence.due(final):
            return
        if self.live:
            sys.stdout.write("\r\033[K" + text + ("\n" if final else ""))
            sys.stdout.flush()
            self.drawn = not final
        else:
            self.echo(text)

    def end_live_line(self) -> None:
        """Before other output: a live line still drawn gets its newline."""
        if self.drawn:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.drawn = False


class RunsProgress:
    """Progress of a fixed number of runs (the evaluation): a start line, then a line per
    finished run with runs done/total, the rate and the ETA."""

    def __init__(
        self,
        total: int,
        echo: Callable[[str], None] = print,
        prefix: str = "[evaluate]",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.done = 0
        self.echo = echo
        self.prefix = prefix
        self.clock = clock
        self.started = clock()
        echo(f"{prefix} progress: {Rate(0, total, 0.0).describe('runs')}")

    def finished(self, what: str = "") -> None:
        self.done += 1
        rate = Rate(self.done, self.total, self.clock() - self.started)
        self.echo(
            f"{self.prefix} progress: {rate.describe('runs')}" + (f" ({what})" if what else "")
        )


# --------------------------------------------------------------------------- stage files


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
        from augkd.storage.files import write_file

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
        from augkd.storage.files import resolve_filesystem

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
        from pyarrow import fs as pafs

        from augkd.storage.files import read_file

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
