"""`augkd` command line: train, diagnose, teacher, export, compare, evaluate, report,
restore."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from augkd.basics.entry import ArgumentParser, add_debug_flag, positive_int, run_command
from augkd.basics.errors import ConfigError
from augkd.basics.metric_names import REPORTED
from augkd.basics.seed_stats import format_mean_std, mean_std
from augkd.search.flags import (
    add_address_flag,
    add_baselines_flag,
    add_race_flags,
    add_tracking_flag,
)

ON_INTERRUPT = {
    "train": "interrupted; nothing written",
    "teacher": "interrupted; nothing written",
    "evaluate": "interrupted; the runs finished so far are kept in the search folder's "
    "evaluation_runs/, and the same command continues from there",
}
"""What Ctrl-C leaves behind, per command (each writes its output once, at the end)."""


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (defaults: the built-in digits benchmark)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set module3.epochs=10 (repeatable)",
    )  # fmt: skip


def _config(args: argparse.Namespace):
    """The config a command runs: --config, then --set, then --method."""
    from augkd.basics.config import load_config, with_overrides

    config = load_config(args.config, args.overrides)
    if getattr(args, "method", None):
        config = with_overrides(config, {"method": args.method})
    return config


def cmd_train(args: argparse.Namespace) -> int:
    from augkd.basics.config import with_overrides
    from augkd.basics.seeds import trial_seeds
    from augkd.hardware.runtime import resolve_device
    from augkd.method.memory import check_config_before_work
    from augkd.storage.files import write_bytes
    from augkd.storage.outputs import check_file_writable
    from augkd.trial.pipeline import run_trial

    config = _config(args)
    device = resolve_device(config.device)
    check_file_writable(args.out, "--out")
    check_config_before_work(config, device)
    if args.cache:
        config = with_overrides(config, {"teacher.cache_dir": args.cache})
    rows = []
    for seed in trial_seeds(config.seed, args.seeds):
        seeded = with_overrides(config, {"seed": seed})
        print(f"== {seeded.method} seed {seeded.seed} ==", flush=True)
        result = run_trial(seeded, log=lambda line: print(line, flush=True))
        rows.append({"seed": seeded.seed, **result.metrics})
    summary = summarise(rows)
    print(format_results_table(config.method, rows))
    payload = {
        "method": config.method,
        "config": config.to_dict(),
        "runs": rows,
        "summary": summary,
    }
    write_bytes(args.out, json.dumps(payload, indent=2).encode())
    print(f"results written to {args.out}")
    return 0


def summarise(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    summary = {}
    for key in REPORTED:
        values = [row[key] for row in rows if key in row]
        if values:
            mean, spread = mean_std(values)
            summary[key] = {"mean": mean, "std": spread}
    return summary


def format_results_table(method: str, rows: list[dict[str, float]]) -> str:
    """Mean ± std over seeds of each reported metric."""
    columns = {key: [row[key] for row in rows if key in row] for key in REPORTED}
    cells = {key: format_mean_std(values, digits=2) for key, values in columns.items() if values}
    widths = {key: max(len(key), len(cell)) for key, cell in cells.items()}
    header = f"{'method':<10} {'runs':>4} " + " ".join(f"{k:>{widths[k]}}" for k in cells)
    line = f"{method:<10} {len(rows):>4} " + " ".join(f"{c:>{widths[k]}}" for k, c in cells.items())
    return f"{header}\n{line}"


def cmd_diagnose(args: argparse.Namespace) -> int:
    from augkd.storage.cache import StageCache
    from augkd.trial.pipeline import prepare_trial, trial_diagnostics
    from augkd.trial.teacher import default_cache_root

    config = _config(args)
    cache = StageCache(default_cache_root(config))
    trial = prepare_trial(config, cache, log=lambda line: print(line, flush=True))
    diagnostics = trial_diagnostics(trial, cache)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(diagnostics.metrics, indent=2))
    for name, png in diagnostics.pictures.items():
        (out / name).write_bytes(png)
    for name, value in diagnostics.metrics.items():
        print(f"{name:<28} {value:8.3f}")
    print(f"diagnostics written to {out}")
    return 0


def cmd_teacher(args: argparse.Namespace) -> int:
    from augkd.hardware.free_memory import check_fits
    from augkd.hardware.runtime import resolve_device
    from augkd.method.memory import estimate_teacher_training
    from augkd.storage.outputs import check_file_writable
    from augkd.storage.teacher_checkpoint import save_teacher
    from augkd.trial.teacher import train_teacher

    config = _config(args)
    device = resolve_device(config.device)
    check_file_writable(args.out, "--out")
    check_fits([estimate_teacher_training(config, 10)], device)  # again once the data loads
    checkpoint = train_teacher(config, device)
    save_teacher(checkpoint, args.out)
    print(
        f"teacher ({checkpoint['arch']}, held-out acc1 {checkpoint['held_out_acc1']:.1f}) -> {args.out}"
    )
    return 0


def _tell(line: str) -> None:
    print(line, file=sys.stderr)


def _search_folder(args: argparse.Namespace) -> str:
    """--search as a search folder; a storage root stands for its latest search."""
    from augkd.storage.locations import resolve_search

    return resolve_search(args.search, echo=_tell)


def cmd_export(args: argparse.Namespace) -> int:
    from augkd.search.records.results import export_best, fewer_completed
    from augkd.storage.outputs import check_folder_writable

    check_folder_writable(args.out, "--out")
    search = _search_folder(args)
    written = export_best(search, args.top_k, args.out)
    for path in written:
        print(path)
    if len(written) < args.top_k:
        _tell(fewer_completed(search, len(written), args.top_k))
    if args.register:
        from augkd.search.records.model_logging import register_model
        from augkd.search.records.results import best_completed
        from augkd.storage.locations import resolve_tracking_uri

        best = best_completed(search)
        if not best.get("model_uri"):
            raise ConfigError(
                f"The best trial of '{search}' ({best['trial_id']}) has no logged model to "
                "register; it predates model logging: re-run its config with augkd train."
            )
        uri = resolve_tracking_uri(args.tracking_uri)
        print(f"registered {register_model(uri, best['model_uri'], args.register)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from augkd.search.prepare.space import recorded_objective
    from augkd.search.records.results import format_leaderboard, load_results

    search = _search_folder(args)
    print(format_leaderboard(load_results(search), recorded_objective(search), limit=args.top_k))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from augkd.report import write_report
    from augkd.storage.outputs import check_local_folder

    if args.out is not None:
        check_local_folder(args.out, "--out")
    index = write_report(args.search, args.out, tracking_uri=args.tracking_uri, echo=_tell)
    print(f"report written to {index}")
    return 0


SEARCH_HELP = (
    "a search folder (augkd_runs/digits-20261126-130721) or a storage root such as "
    "augkd_runs or s3://bucket/prefix, which means its latest search; default: "
    "$AUGKD_SEARCH_PATH, else $AUGKD_STORAGE, else augkd_runs in the working directory"
)


def _add_search_arg(parser: argparse.ArgumentParser, tracking: bool = True) -> None:
    """--search, and (for the commands that read its MLflow runs) --tracking-uri."""
    parser.add_argument("--search", default=None, metavar="PATH", help=SEARCH_HELP)
    if tracking:
        add_tracking_flag(parser, "the MLflow store the search logged to")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from augkd.search.answer.candidates import parse_baselines, plan
    from augkd.search.answer.evaluate import run_evaluation
    from augkd.search.answer.evaluation_table import format_table
    from augkd.search.answer.racing import RaceSettings
    from augkd.search.run.ray_session import init_ray

    search = _search_folder(args)
    baselines = parse_baselines(args.baselines)
    # bad input is named before Ray starts
    RaceSettings(first_seeds=args.seeds, max_seeds=args.max_seeds, margin=args.margin)
    plan(search, args.top_k, args.seeds, baselines)
    _tell(f"[evaluate] {init_ray(args.address).summary}")
    evaluation = run_evaluation(
        search, args.top_k, args.seeds, baselines, args.tracking_uri, echo=_tell,
        max_seeds=args.max_seeds, margin=args.margin, tune_baselines=args.tune_baselines,
    )  # fmt: skip
    print(format_table(evaluation))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from augkd.search.records.backup import restore_command
    from augkd.storage.locations import default_tracking_uri

    search = _search_folder(args)
    return restore_command(search, args.tracking_uri or default_tracking_uri(), echo=_tell)


def build_parser() -> argparse.ArgumentParser:
    from augkd.basics.methods import METHODS

    parser = ArgumentParser(prog="augkd", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one AuG-KD trial (or a baseline)")
    _add_config_args(train)
    train.add_argument("--method", choices=METHODS)
    train.add_argument("--seeds", type=positive_int, default=1, help="evaluate N seeds: mean ± std")
    train.add_argument("--out", default="results.json", help="results JSON path")
    train.add_argument(
        "--cache",
        metavar="PATH",
        help="stage cache to read and fill, e.g. a search's <storage>/stage_cache "
        "(default: the config's teacher.cache_dir, which an exported config sets to its "
        "search's cache; else ~/.cache/augkd/stages)",
    )
    train.set_defaults(handler=cmd_train)

    diagnose = commands.add_parser(
        "diagnose", help="teacher metrics and pictures of Modules 1-2 (no Module 3)"
    )
    _add_config_args(diagnose)
    diagnose.add_argument("--method", choices=METHODS)
    diagnose.add_argument("--out", required=True, help="folder for metrics.json and the PNGs")
    diagnose.set_defaults(handler=cmd_diagnose)

    teacher = commands.add_parser("teacher", help="train a teacher on the teacher domains")
    _add_config_args(teacher)
    teacher.add_argument("--out", required=True, help="checkpoint path to write")
    teacher.set_defaults(handler=cmd_teacher)

    for name, handler, text in (
        ("export", cmd_export, "write the best trials of a search as re-runnable configs"),
        ("compare", cmd_compare, "print a search's leaderboard"),
    ):
        sub = commands.add_parser(name, help=text)
        _add_search_arg(sub)
        sub.add_argument("--top-k", type=positive_int, default=3 if name == "export" else 20)
        if name == "export":
            sub.add_argument("--out", default="best_configs")
            sub.add_argument(
                "--register",
                metavar="NAME",
                help="also register the best trial's model in MLflow's model registry",
            )
        sub.set_defaults(handler=handler)

    evaluate = commands.add_parser(
        "evaluate",
        help="re-run a search's top-k configs and the baselines over fresh seeds (Ray)",
    )
    _add_search_arg(evaluate)
    evaluate.add_argument("--top-k", type=positive_int, default=3, help="configs to re-run, by val")
    evaluate.add_argument(
        "--seeds", type=positive_int, default=3, help="fresh seeds of the first round"
    )
    add_race_flags(evaluate, "--seeds")
    add_baselines_flag(evaluate)
    add_address_flag(evaluate, "this command's")
    evaluate.set_defaults(handler=cmd_evaluate)

    report = commands.add_parser("report", help="write a search's figures as PNG and HTML")
    _add_search_arg(report)
    report.add_argument("--out", default=None, help="folder (default: SEARCH/report)")
    report.set_defaults(handler=cmd_report)

    restore = commands.add_parser(
        "restore",
        help="copy a search's MLflow runs and Optuna journal from its s3:// storage to here "
        "(e.g. after `ray down`)",
    )
    _add_search_arg(restore, tracking=False)
    add_tracking_flag(
        restore, "SQLite file to restore the MLflow runs into; it must not hold runs yet"
    )
    restore.set_defaults(handler=cmd_restore)
    for command in commands.choices.values():
        add_debug_flag(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every command ends under one failure policy (augkd.basics.entry.run_command)."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return run_command(
        lambda: handler(args),
        debug=args.debug,
        on_interrupt=ON_INTERRUPT.get(args.command, "interrupted"),
    )


if __name__ == "__main__":
    sys.exit(main())
