"""benchmarks/rung_study.py: ASHA replayed on full-budget curves counts the stops of trials
that would have tied the winner, and what each setting spends."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.paths import REPO as ROOT


@pytest.fixture(scope="module")
def rung_study():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(
            "rung_study", ROOT / "benchmarks" / "rung_study.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["rung_study"] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
        sys.modules.pop("rung_study", None)


def _curve(values: list[float], seconds_per_report: float = 1.0) -> list[dict]:
    """One trial's reports every 100 steps; ``best_val_acc1`` is the running best."""
    reports, best = [], 0.0
    for index, value in enumerate(values, start=1):
        best = max(best, value)
        reports.append({"step": 100 * index, "best_val_acc1": best,
                        "time_total_s": seconds_per_report * index})  # fmt: skip
    return reports


FAST = [80, 85, 88, 90, 90, 90, 90, 90]
SLOW_STARTER = [50, 60, 70, 80, 86, 89, 90, 90]  # ends tied with the winner
WEAK = [70, 72, 74, 75, 76, 77, 78, 78]


def test_a_slow_starter_that_ties_the_winner_is_counted_when_asha_stops_it(rung_study):
    trials = [_curve(FAST), _curve(SLOW_STARTER), _curve(WEAK)]
    replay = rung_study.study(trials, 100, 2.0, 1, margin=0.5, draws=1)
    assert replay.tied == 2
    assert replay.tied_stopped == 1.0  # the slow starter, below the winner at the first rung
    assert replay.winner_kept == 1.0
    assert replay.trial_seconds_share < 1.0


def test_a_first_rung_past_the_slow_start_keeps_every_tied_trial(rung_study):
    trials = [_curve(FAST), _curve(SLOW_STARTER), _curve(WEAK)]
    replay = rung_study.study(trials, 700, 2.0, 1, margin=0.5, draws=1)
    assert replay.tied_stopped == 0.0
    assert replay.completed == 2.0  # the weak trial still stops at step 700


def _record(root, space: str, curves: list[list[float]]) -> None:
    """A full-budget search as rung_correlation leaves it: one result.json per trial and
    rung_correlation_<space>.json naming the search."""
    import json

    search = root / f"{space}-search"
    for number, values in enumerate(curves):
        trial = search / f"trial_{number}"
        trial.mkdir(parents=True)
        reports = _curve(values)
        for report in reports:
            report |= {"epoch": report["step"] // 100, "epochs": len(values),
                       "timestamp": 1000.0 * number + report["time_total_s"]}  # fmt: skip
        (trial / "result.json").write_text("\n".join(json.dumps(r) for r in reports))
    (root / f"rung_correlation_{space}.json").write_text(json.dumps({"search": str(search)}))


def test_the_choice_keeps_todays_rungs_unless_one_at_its_compute_stops_fewer_ties(
    rung_study, tmp_path, monkeypatch
):
    """Late risers that end tied with the winner: no setting at today's compute keeps them,
    so today's stays chosen, and the cheapest setting that stops at most one tie is named
    with its (higher) compute."""
    import json

    late_riser = [60, 80, 84, 87, 88, 89, 90, 90]  # behind at step 100, ahead of WEAK by 200
    curves = [FAST, WEAK, late_riser, WEAK, WEAK, late_riser, WEAK, WEAK]
    _record(tmp_path, "a", curves)
    _record(tmp_path, "b", curves)
    out = tmp_path / "study.json"
    monkeypatch.setattr(sys, "argv", ["rung_study", "--choose-on", "a", "--check-on", "b",
                                      "--runs", str(tmp_path), "--out", str(out),
                                      "--draws", "20"])  # fmt: skip
    rung_study.main()
    found = json.loads(out.read_text())
    replays = {tuple(r[k] for k in ("grace_period", "reduction_factor", "brackets")): r
               for r in found["replays"]["a"]}  # fmt: skip
    today, chosen, rare = (tuple(found[k]) for k in ("today", "chosen", "rare"))
    assert chosen == today
    assert replays[rare]["tied_stopped"] <= rung_study.RARE < replays[today]["tied_stopped"]
    assert replays[rare]["winner_kept"] >= 0.9
    assert replays[rare]["trial_seconds_share"] > replays[today]["trial_seconds_share"]
