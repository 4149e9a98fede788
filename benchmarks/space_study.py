"""What a search space holds, over full-budget trials run on several seeds each: which knobs
move results beyond the noise, how far apart its settings land on test, and which way of
choosing a winner holds up on a seed it never saw, at equal compute.

    python benchmarks/space_study.py --space fonts --trials 24 --seeds 3    # runs the search
    python benchmarks/space_study.py --reuse /tmp/augkd_space_runs/NAME      # a finished one

The search is the space with the random sampler and FIFO (every trial at its full budget) and
objective.seeds = --seeds, so each trial reports every seed's best val Acc@1 and test Acc@1
(``best_val_acc1_seed<k>``, ``test_acc1_seed<k>``). Its first trial is the space's defaults.
Then, offline:

- **Which knobs matter.** fANOVA importance of each searched key for the objective (the mean
  best val over seeds), and each key's effect on the mean test Acc@1: per choice of a
  categorical (mean ± standard error over the trials that drew it), or the Spearman rank
  correlation of a numeric key's value with it (and, for a shape it cannot see, the mean ±
  standard error in each third of the key's drawn values). A knob "moves results" when a
  choice differs from another by more than two standard errors or its correlation has
  p < 0.05.
- **Spread.** The trials' mean test Acc@1 (quartiles), and where the defaults land.
- **Selection at equal compute** (budget: B trial-seeds, B = trials / 2 by default; seed
  ``held_out`` = the last seed is never used to choose): 1 seed, B trials, the best val on the
  first seed; 2 seeds, B / 2 trials, the best mean val over the first two; re-evaluation,
  B - 3 trials on the first seed, then its top 3 on the second seed too, the best mean. Each
  rule draws its trials at random from the pool (2,000 draws); printed: the mean test Acc@1 of
  its winner on the held-out seed, and how often that winner beats the defaults there.
- **What a larger val split could buy.** No val split, however large, tells a trial's seed-0
  model better than that model's own test Acc@1 does. So one bound is printed beside the
  rules: 1 seed, B trials, chosen on the first seed's *test*. It is not a rule one could ship,
  only the most any val split could give at one seed per trial. The rank correlations among
  the better half of the trials say why: val against test of the same seed's model (the val
  split's own noise) and test against test across seeds (the training seed's noise).

The rules never look at test; test is only what their winner is scored by. Writes
space_study_<space>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

DRAWS = 2000
BOUND = "bound of any val split: 1 seed, chosen on its test"


def load(search_path: str) -> tuple[list[dict[str, Any]], dict[str, Any], list[int]]:
    """The completed trials (in start order), the recorded space, and the trials' seeds."""
    from augkd.search.records.results import load_results
    from augkd.storage.files import join_uri, read_bytes

    space = json.loads(read_bytes(join_uri(search_path, "search_space.json")))
    rows = [r for r in load_results(search_path) if r.get("status") == "completed"]
    rows.sort(key=lambda r: r["trial_id"])
    seeds = sorted(
        int(key.removeprefix("test_acc1_seed"))
        for key in rows[0]
        if key.startswith("test_acc1_seed") and rows[0][key] is not None
    )
    return rows, space, seeds


def param(row: dict[str, Any], key: str) -> Any:
    return row.get(f"param:{key}")


def effects(rows: list[dict], space: dict, metric: str) -> dict[str, dict]:
    """Each searched key's effect on ``metric``: per choice (categorical) or rank correlation."""
    out: dict[str, dict] = {}
    for key, spec in space["params"].items():
        drawn = [(param(r, key), r[metric]) for r in rows if param(r, key) is not None]
        if len(drawn) < 3:
            continue
        if spec["type"] == "categorical":
            choices = {}
            for choice in spec["choices"]:
                values = [v for c, v in drawn if c == choice]
                if values:
                    choices[str(choice)] = _mean_se(values)
            means = [c for c in choices.values() if c["n"] > 1]
            moves = any(
                abs(a["mean"] - b["mean"]) > 2 * math.hypot(a["se"], b["se"])
                for a in means for b in means
            )  # fmt: skip
            out[key] = {"kind": "categorical", "choices": choices, "moves": moves}
        else:
            values = np.array([float(c) for c, _ in drawn])
            rho, p = spearmanr(values, [v for _, v in drawn])
            # Thirds of the drawn values show what the rank correlation cannot: a U shape.
            edges = np.quantile(values, [1 / 3, 2 / 3])
            third = np.digitize(values, edges)
            out[key] = {
                "kind": "numeric",
                "rho": float(rho),
                "p": float(p),
                "moves": bool(p < 0.05),
                "third_edges": [float(e) for e in edges],
                "thirds": [
                    _mean_se([v for (_, v), t in zip(drawn, third, strict=True) if t == k])
                    for k in range(3)
                ],
            }
    return out


def _mean_se(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "mean": math.nan, "se": math.nan}
    error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return {"n": len(values), "mean": statistics.fmean(values), "se": error}


def importances(rows: list[dict], space: dict, metric: str) -> dict[str, float]:
    """fANOVA importance of the searched keys for ``metric`` (higher is better)."""
    import optuna

    from augkd.search.prepare.space import Param

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {k: Param.model_validate(v).distribution() for k, v in space["params"].items()}
    study = optuna.create_study(direction="maximize")
    for row in rows:
        params = {k: param(row, k) for k in distributions if param(row, k) is not None}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={k: distributions[k] for k in params},
                value=row[metric],
            )
        )
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))


def selection(rows: list[dict], seeds: list[int], budget: int, defaults: dict | None) -> dict:
    """Each rule's winner, scored on the held-out seed (the last), over random draws."""
    held = seeds[-1]
    val = np.array([[r[f"best_val_acc1_seed{s}"] for s in seeds[:-1]] for r in rows])
    test = np.array([r[f"test_acc1_seed{held}"] for r in rows])
    first_seed_test = np.array([r.get(f"test_acc1_seed{seeds[0]}", math.nan) for r in rows])
    reference = defaults[f"test_acc1_seed{held}"] if defaults else math.nan
    rng = np.random.default_rng(0)

    def one_seed(pool):
        return pool[np.argmax(val[pool, 0])]

    def two_seeds(pool):
        return pool[: len(pool) // 2][np.argmax(val[pool[: len(pool) // 2], :2].mean(axis=1))]

    def reevaluate(pool):
        first = pool[: len(pool) - 3]
        top = first[np.argsort(-val[first, 0])[:3]]
        return top[np.argmax(val[top, :2].mean(axis=1))]

    def first_seed_test_bound(pool):
        return pool[np.argmax(first_seed_test[pool])]

    rules = {"1 seed": one_seed}
    if val.shape[1] >= 2:
        rules |= {
            "2 seeds, half the trials": two_seeds,
            "1 seed, top 3 re-run on a 2nd": reevaluate,
        }
    if not np.isnan(first_seed_test).any():
        rules[BOUND] = first_seed_test_bound
    out = {}
    for name, rule in rules.items():
        winners = [rule(rng.permutation(len(rows))[:budget]) for _ in range(DRAWS)]
        scores = test[winners]
        out[name] = {
            "held_out_test_mean": float(scores.mean()),
            "held_out_test_sd": float(scores.std()),
            "beats_defaults": float((scores > reference).mean()) if defaults else None,
        }
    out["best possible (chosen on test)"] = {"held_out_test_mean": float(test.max())}
    out["defaults"] = {"held_out_test_mean": float(reference)}
    return out


def seed_agreement(rows: list[dict], seeds: list[int]) -> dict[str, float]:
    """Rank correlations over the better half of the trials by mean val, averaged over seeds
    (and seed pairs): how well a model's val ranks its own test, and how well one seed's test
    ranks another's."""
    top = sorted(rows, key=lambda r: -statistics.fmean(r[f"best_val_acc1_seed{s}"] for s in seeds))
    top = top[: max(3, len(rows) // 2)]

    def rho(a: str, b: str) -> float:
        return float(spearmanr([r[a] for r in top], [r[b] for r in top])[0])

    pairs = [(s, u) for s in seeds for u in seeds if s < u]
    return {
        "trials": len(top),
        "val_vs_own_test": statistics.fmean(
            rho(f"best_val_acc1_seed{s}", f"test_acc1_seed{s}") for s in seeds
        ),
        "test_vs_other_seed_test": statistics.fmean(
            rho(f"test_acc1_seed{s}", f"test_acc1_seed{u}") for s, u in pairs
        ),
    }


def spread(rows: list[dict], defaults: dict | None) -> dict[str, Any]:
    """The trials' mean test Acc@1 in quartiles, and the defaults' value and rank."""
    values = sorted((r["mean_test_acc1"] for r in rows), reverse=True)
    return {
        "quartiles": [float(q) for q in np.percentile(values, [0, 25, 50, 75, 100])],
        "defaults": defaults["mean_test_acc1"] if defaults else None,
        "defaults_rank": 1 + values.index(defaults["mean_test_acc1"]) if defaults else None,
    }


def defaults_row(rows: list[dict], space: dict) -> dict | None:
    """The trial that ran the base config's values of every searched key (the first one)."""
    from augkd.basics.dotted import get_dotted

    for row in rows:
        if all(
            param(row, key) is None or param(row, key) == get_dotted(space["base_resolved"], key)
            for key in space["params"]
        ):
            return row
    return None


def main() -> None:
    from augkd.search.run.runner import run_full_budget_search  # torch and Ray: after --help

    parser = argparse.ArgumentParser()
    parser.add_argument("--space", default="fonts")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=3, help="objective.seeds of the trials")
    parser.add_argument("--budget", type=int, help="trial-seeds each rule may spend")
    parser.add_argument("--reuse", help="a finished search of this kind to analyse instead")
    parser.add_argument("--storage", default="/tmp/augkd_space_runs")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    storage = Path(args.storage)
    storage.mkdir(parents=True, exist_ok=True)
    search = (
        args.reuse
        or run_full_budget_search(
            args.space, storage, args.trials, [f"objective.seeds={args.seeds}", *args.overrides]
        ).search_path
    )
    rows, space, seeds = load(search)
    for row in rows:
        row["mean_test_acc1"] = statistics.fmean(row[f"test_acc1_seed{s}"] for s in seeds)
    defaults = defaults_row(rows, space)
    budget = args.budget or len(rows) // 2
    summary = {
        "search": search,
        "trials": len(rows),
        "seeds": seeds,
        "importance_val": importances(rows, space, "best_val_acc1"),
        "importance_test": importances(rows, space, "mean_test_acc1"),
        "effects_test": effects(rows, space, "mean_test_acc1"),
        "spread_test": spread(rows, defaults),
        "selection": selection(rows, seeds, budget, defaults) if len(seeds) > 1 else {},
        "seed_agreement": seed_agreement(rows, seeds) if len(seeds) > 1 else {},
        "budget": budget,
    }
    out = Path(args.out) / f"space_study_{space['name']}.json"
    out.write_text(json.dumps(summary, indent=2))
    print(f"{len(rows)} completed full-budget trials x seeds {seeds} from {search}")
    print("\n| key | fANOVA (val) | fANOVA (test) | effect on mean test Acc@1 | beyond noise |")
    print("|---|---|---|---|---|")
    for key in space["params"]:
        effect = summary["effects_test"].get(key)
        if effect is None:
            continue
        if effect["kind"] == "categorical":
            text = ", ".join(
                f"{c}: {v['mean']:.1f} ± {v['se']:.1f} (n {v['n']})"
                for c, v in effect["choices"].items()
            )
        else:
            low, high = effect["third_edges"]
            thirds = ", ".join(
                f"{label}: {t['mean']:.1f} ± {t['se']:.1f} (n {t['n']})"
                for label, t in zip(
                    (f"< {low:.3g}", f"{low:.3g}–{high:.3g}", f"> {high:.3g}"),
                    effect["thirds"],
                    strict=True,
                )
            )
            text = f"rho {effect['rho']:+.2f} (p {effect['p']:.2f}); thirds {thirds}"
        print(f"| {key} | {summary['importance_val'].get(key, 0):.2f} | "
              f"{summary['importance_test'].get(key, 0):.2f} | {text} | "
              f"{'yes' if effect['moves'] else 'no'} |")  # fmt: skip
    found = summary["spread_test"]
    low, q1, median, q3, high = found["quartiles"]
    print(f"\nmean test Acc@1 over the trials: min {low:.1f}, quartiles {q1:.1f} / {median:.1f} "
          f"/ {q3:.1f}, max {high:.1f}; the defaults {found['defaults']} (rank "
          f"{found['defaults_rank']} of {len(rows)})")  # fmt: skip
    print(f"\nselection at {budget} trial-seeds, scored on held-out seed {seeds[-1]}:")
    print("| rule | winner's test Acc@1 on the held-out seed | beats the defaults there |")
    print("|---|---|---|")
    for name, result in summary["selection"].items():
        beats = result.get("beats_defaults")
        print(f"| {name} | {result['held_out_test_mean']:.2f}"
              + (f" ± {result['held_out_test_sd']:.2f}" if "held_out_test_sd" in result else "")
              + f" | {'-' if beats is None else f'{beats:.0%}'} |")  # fmt: skip
    agreement = summary["seed_agreement"]
    if agreement:
        print(f"\nover the best {agreement['trials']} trials by mean val: rho(val, own test) "
              f"{agreement['val_vs_own_test']:+.2f}, rho(test, another seed's test) "
              f"{agreement['test_vs_other_seed_test']:+.2f}")  # fmt: skip
    print(f"written to {out}")


if __name__ == "__main__":
    main()
