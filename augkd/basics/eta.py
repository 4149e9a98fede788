"""Rates and ETAs: the one place that turns (done, total, seconds) into a rate, an ETA and a
progress line, for the shared stages, the trials, the evaluation and ``search.py --estimate``.

A stage reports its steps through ``StepHook`` (stage, done, total); inside a Ray task they
reach the driver through files in the storage (augkd.storage.progress_files).
``LineCadence`` decides when a line is worth printing: a live line in a terminal, and in a log
(not a TTY, e.g. ``ray job logs``) one line per ``log_every_s`` plus the start and end lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

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
