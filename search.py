"""Run a hyperparameter search for AuG-KD: `python search.py` on a laptop, or
`ray submit clusters/aws.yaml search.py -- --address auto --space office31 ...`.

Stands alone (ray submit copies only this file): everything else comes from the
installed `augkd` package.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from augkd.basics.entry import ArgumentParser, add_debug_flag, positive_float, positive_int
    from augkd.search.flags import (
        add_address_flag,
        add_baselines_flag,
        add_race_flags,
        add_tracking_flag,
    )

    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="fonts", help="search-space YAML (or a packaged name)")
    parser.add_argument(
        "--storage", default=None,
        help="results, checkpoints and stage artifacts: a path or s3://bucket/prefix "
        "(default: $AUGKD_STORAGE, else augkd_runs in the working directory)",
    )  # fmt: skip
    parser.add_argument("--name", help="search name (default: SPACE-TIMESTAMP; --resume: latest)")
    add_tracking_flag(parser, "MLflow tracking URI")
    parser.add_argument("--num-samples", type=positive_int, help="number of trials")
    parser.add_argument(
        "--time-budget",
        type=positive_float,
        help="end the search after N seconds of trials; trials still running are kept as "
        "interrupted, and --resume continues them",
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted search")
    parser.add_argument("--smoke-test", action="store_true", help="a tiny complete search")
    add_address_flag(parser, "this search's")
    parser.add_argument(
        "--evaluate", type=positive_int, default=None, metavar="K",
        help="after the search, re-run its top K configs and the baselines over fresh seeds "
        "(as `augkd evaluate`)",
    )  # fmt: skip
    parser.add_argument(
        "--eval-seeds", type=positive_int, default=3,
        help="fresh seeds of --evaluate's first round",
    )  # fmt: skip
    add_race_flags(parser, "--eval-seeds")
    add_baselines_flag(parser)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a search-space key (sampler.name=random) or a config key "
        "(module3.epochs=10); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--estimate", action="store_true",
        help="time a few iterations of every stage this search would run (cached stages are "
        "free) and print its projected wall time, device-hours and cost (with --evaluate, the "
        "evaluation's too); trains nothing more",
    )  # fmt: skip
    parser.add_argument(
        "--price-per-hour", type=positive_float, default=None, metavar="USD",
        help="with --estimate: what one worker costs an hour (e.g. 1.006 for a g5.xlarge)",
    )  # fmt: skip
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Exit codes follow augkd's failure policy: 0 done, 2 bad input, 3 every trial
    failed, 4 a task before the trials kept losing its workers (spot reclaims; the command
    that continues is printed), 130 Ctrl-C (the search is saved; the resume command is
    printed)."""
    try:
        from augkd.basics.entry import run_command
        from augkd.search.run.runner import SearchOptions, run_search
    except ImportError as error:
        print(
            f"error: the augkd package is not installed ({error}); run `pip install -e .`",
            file=sys.stderr,
        )
        return 2
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = SearchOptions(
        space=args.space, storage=args.storage, name=args.name, tracking_uri=args.tracking_uri,
        num_samples=args.num_samples, time_budget=args.time_budget, resume=args.resume,
        smoke_test=args.smoke_test, overrides=args.overrides, address=args.address,
    )  # fmt: skip

    def search() -> None:
        if args.evaluate:
            from augkd.search.answer.candidates import parse_baselines
            from augkd.search.answer.evaluate import run_evaluation
            from augkd.search.answer.evaluation_table import format_table
            from augkd.search.answer.racing import RaceSettings

            baselines = parse_baselines(args.baselines)  # refused before the search starts
            RaceSettings(first_seeds=args.eval_seeds, max_seeds=args.max_seeds, margin=args.margin)
        if args.estimate:
            from augkd.search.prepare.estimate import (
                EvaluationAsk,
                estimate_search,
                format_forecast,
            )

            ask = None
            if args.evaluate:
                ask = EvaluationAsk(
                    args.evaluate, args.eval_seeds, args.max_seeds, tuple(baselines)
                )
            print(format_forecast(estimate_search(options, evaluation=ask), args.price_per_hour))
            return
        outcome = run_search(options)
        if args.evaluate:
            try:
                evaluation = run_evaluation(
                    outcome.search_path, args.evaluate, args.eval_seeds, baselines,
                    outcome.tracking_uri, max_seeds=args.max_seeds, margin=args.margin,
                    tune_baselines=args.tune_baselines,
                )  # fmt: skip
            except KeyboardInterrupt:
                print(_continue_evaluation(args, outcome), file=sys.stderr, flush=True)
                raise
            print(format_table(evaluation))

    return run_command(search, debug=args.debug)


def _continue_evaluation(args: argparse.Namespace, outcome) -> str:
    """Ctrl-C during --evaluate: the search is complete and the evaluation's finished runs are
    kept, so the command that continues is `augkd evaluate` on that search, not this one
    (which would start a new search)."""
    command = [
        "augkd", "evaluate", "--search", outcome.search_path, "--top-k", str(args.evaluate),
        "--seeds", str(args.eval_seeds), "--max-seeds", str(args.max_seeds),
        "--margin", str(args.margin), "--baselines", args.baselines,
        "--tracking-uri", outcome.tracking_uri,
    ]  # fmt: skip
    if args.tune_baselines:
        command.append("--tune-baselines")
    if args.address:
        command += ["--address", args.address]
    return (
        "interrupted during the evaluation: the search is complete and the evaluation's "
        f"finished runs are kept; continue it with: {shlex.join(command)}"
    )


if __name__ == "__main__":
    sys.exit(main())
