"""Speed under contention: a 2-thread Module-1 task beside another CPU-bound process.

    python benchmarks/thread_contention.py [--seconds 20] [--policies default,PASSIVE]

A local search gives each seed's shared-stage task every CPU as torch threads. On a machine
where something else also computes (a second search, a test suite, another user), that task
was seen to slow about tenfold (2.7-4.35 Module-1 iterations a second alone, 0.18-0.25
beside another job), far more than its share of the cores would explain. The usual cause is
OpenMP's worker threads spinning while they wait for each other, which steals the cores that
the one thread still working needs.

This runs the fonts space's real Module-1 iteration (``datafree.train_iteration``, untrained
networks at its shapes) in a child process with 2 threads, alone and then beside a
competitor (the same loop with 1 thread), under each OpenMP wait policy in turn, all in one
run; the competitor always runs at the runtime's default, as another user's job would. It
prints iterations a second and the contended / alone ratio per policy. The policy must be set
before the process starts (the OpenMP runtime reads it once).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(threads: int, seconds: float) -> None:
    """Run Module-1 iterations for ``seconds``; print iterations a second."""
    sys.path.insert(0, str(HERE))
    import torch
    from module1_overhead import _config, _nets

    from augkd.hardware.runtime import configure_torch
    from augkd.method.datafree import train_iteration

    configure_torch(threads)
    config = _config("fonts", [])
    nets, bn_stats, normalize = _nets(config, torch.device("cpu"))
    train_iteration(nets, normalize, bn_stats, config.module1)  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        train_iteration(nets, normalize, bn_stats, config.module1)
        done += 1
    print(f"{done / (time.perf_counter() - started):.4f}", flush=True)


def _spawn(threads: int, seconds: float, policy: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    env["OMP_NUM_THREADS"] = str(threads)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    command = [sys.executable, __file__, "--child", str(threads), "--seconds", str(seconds)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def _rate(process: subprocess.Popen) -> float:
    out, _ = process.communicate()
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--policies", default="default,PASSIVE")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.seconds)
        return
    print(f"cores: {len(os.sched_getaffinity(0))}; {args.seconds:g} s per measurement")
    print(f"{'policy':<10} {'alone it/s':>11} {'contended it/s':>15} {'ratio':>7}")
    for policy in args.policies.split(","):
        alone = _rate(_spawn(2, args.seconds, policy))
        # The competitor runs a little longer, so that it computes through the whole window.
        competitor = _spawn(1, args.seconds + 15, "default")  # another user's job
        time.sleep(8)  # its imports and warm-up
        contended = _rate(_spawn(2, args.seconds, policy))
        competitor.kill()
        competitor.wait()
        print(f"{policy:<10} {alone:>11.2f} {contended:>15.2f} {contended / alone:>7.2f}")


if __name__ == "__main__":
    main()
