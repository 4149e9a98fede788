"""AuG-KD against the baselines over seeds (the evaluation's baselines file)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from matplotlib.figure import Figure

from augkd.basics.metric_names import TEST_ACC1
from augkd.basics.seed_stats import mean_std
from augkd.report.loading import (
    NO_SEARCH,
    SearchData,
    num,
)
from augkd.report.section import Section
from augkd.search.answer.candidates import DEFAULTS
from augkd.search.answer.evaluation_files import WINNER_KEY
from augkd.storage.files import uri_is_file
from augkd.storage.locations import BASELINES_FILE

METHOD_LABELS = {WINNER_KEY: "AuG-KD", DEFAULTS: "defaults", "ce": "CE", "kd": "KD", "dfkd": "DFKD"}


def find_baselines(data: SearchData, path: str | None = None) -> str | None:
    """The multi-seed evaluation: the argument, $AUGKD_BASELINES_JSON, or SEARCH/baselines.json."""
    from augkd.storage.files import join_uri

    candidates = [path, os.environ.get("AUGKD_BASELINES_JSON")]
    if data.search_path != NO_SEARCH:
        candidates.append(join_uri(data.search_path, BASELINES_FILE))
    for candidate in candidates:
        if candidate and uri_is_file(candidate):
            return candidate
    return None


def plot_baselines(data: SearchData, path: str | None = None, metric: str = TEST_ACC1) -> Section:
    """AuG-KD against the baselines: mean ± std over seeds, every seed as a dot."""
    from augkd.storage.files import read_bytes

    key = "baselines"
    title = "AuG-KD against the baselines (test Acc@1, mean ± std over seeds)"
    found = find_baselines(data, path)
    if found is None:
        return Section(
            key,
            title,
            note=f"No multi-seed evaluation found: write {BASELINES_FILE} into the search folder "
            'or set AUGKD_BASELINES_JSON (format: {"methods": {"augkd": {"test_acc1": '
            '[seed0, seed1, ...]}, "ce": {...}}}).',
        )
    try:
        payload = json.loads(read_bytes(found))
        methods = payload["methods"]
        series = {
            name: [v for v in map(num, values[metric]) if v is not None]
            for name, values in methods.items()
            if isinstance(values, dict) and isinstance(values.get(metric), list)
        }
    except Exception as error:
        return Section(
            key, title, note=f"{found} cannot be read as a multi-seed evaluation ({error})."
        )
    series = {name: values for name, values in series.items() if values}
    if not series:
        return Section(key, title, note=f"{found} holds no method with {metric} values.")
    order = sorted(series, key=lambda n: (n != WINNER_KEY, n != DEFAULTS, n))
    means, stds = zip(*(mean_std(series[n]) for n in order), strict=True)
    figure = Figure(figsize=(max(5.0, 1.0 * len(order) + 2), 4.0))
    ax = figure.subplots()
    colors = ["tab:red" if n == WINNER_KEY else "tab:gray" for n in order]
    ax.bar(range(len(order)), means, yerr=stds, capsize=5, color=colors, alpha=0.75)
    for i, name in enumerate(order):
        ax.scatter([i] * len(series[name]), series[name], color="black", s=12, zorder=3)
    ax.set_xticks(range(len(order)), [METHOD_LABELS.get(n, n) for n in order])
    ax.set_ylabel(f"{metric} (%)")
    seeds = sorted({len(v) for v in series.values()})
    ax.set_title(
        f"{metric}: mean ± std over {'/'.join(map(str, seeds))} seeds ({Path(found).name})",
        fontsize=9,
    )
    ax.grid(axis="y", alpha=0.3)
    verdict = (payload.get("verdict") or {}).get("sentence")
    recipes = payload.get("recipes") or {}
    note = f"Verdict: {verdict}." if verdict else None
    if recipes:
        said = "; ".join(f"{m} at {r}" for m, r in recipes.items())
        note = f"{note + ' ' if note else ''}Baselines' recipes (the better val kept): {said}."
    return Section(key, title, figure=figure, note=note)
