"""Where a command's CPU goes, by kind of process: Ray's workers, Ray's own processes, pytest,
other Python processes. Samples every process started after it began, 4 times a second,
until the command ends (a process shorter than a sample is missed, so the total is a floor).

    python benchmarks/suite_cpu.py -- pytest -q          # docs/development.md's breakdown
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections import Counter

import psutil

KINDS = (
    ("ray worker", ("default_worker.py", "ray::")),
    ("ray's own processes", ("raylet", "gcs_server", "dashboard", "log_monitor", "RuntimeEnv")),
    ("pytest", ("pytest", "execnet", "sys.stdin.readline")),
)


def kind_of(command_line: str) -> str:
    for kind, signs in KINDS:
        if any(sign in command_line for sign in signs):
            return kind
    return "other python" if "python" in command_line else "other"


def sample(command: list[str], every_s: float = 0.25) -> tuple[Counter, Counter, float]:
    """CPU-seconds and process counts by kind, and the command's wall seconds."""
    started = time.time()
    before = {(p.pid, p.create_time()) for p in psutil.process_iter()}
    child = subprocess.Popen(command)
    seen: dict[tuple[int, float], tuple[str, float]] = {}
    while child.poll() is None:
        for process in psutil.process_iter():
            try:
                key = (process.pid, process.create_time())
                if key in before:
                    continue
                kind = kind_of(" ".join(process.cmdline()))  # again: a title changes on exec
                times = process.cpu_times()
                seen[key] = (kind, times.user + times.system)
            except (psutil.Error, OSError):
                continue
        time.sleep(every_s)
    cpu, count = Counter(), Counter()
    for kind, seconds in seen.values():
        cpu[kind] += seconds
        count[kind] += 1
    return cpu, count, time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs=argparse.REMAINDER, help="after --")
    command = [part for part in parser.parse_args().command if part != "--"]
    cpu, count, wall = sample(command)
    total = sum(cpu.values())
    print(f"{wall:.0f} s wall, {total:.0f} CPU-seconds seen")
    for kind, seconds in cpu.most_common():
        print(f"{kind:>20}: {seconds:7.0f} CPU-s ({seconds / total:4.0%}), {count[kind]} processes")


if __name__ == "__main__":
    main()
