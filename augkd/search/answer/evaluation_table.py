"""An evaluation as the table it prints: mean ± std over the fresh seeds, the paired
differences to the best baseline and to the defaults, how each row was judged, the verdict."""

from __future__ import annotations

from augkd.basics.metric_names import BEST_VAL_ACC1, REPORTED, TEST_ACC1, TEST_ACC3, TEST_ACC5
from augkd.basics.seed_stats import CONFIDENCE, format_mean_std
from augkd.search.answer.candidates import DEFAULTS, Candidate
from augkd.search.answer.racing import Evaluation


def _difference_cell(candidate: Candidate, reference: Candidate | None) -> str:
    if reference is None or candidate is reference:
        return "-"
    difference = candidate.difference_to(reference)
    return difference.with_interval(CONFIDENCE) if difference is not None else "-"


def _status(candidate: Candidate) -> str:
    """Which rung judged a searched config, whose recipe a baseline ran, and whether it
    stayed in the race."""
    parts = []
    if candidate.judged_at is not None:
        parts.append(f"judged at step {candidate.judged_at:g}")
    if candidate.recipe is not None:
        parts.append(f"recipe: {candidate.recipe}")
    if candidate.dropped is not None:
        parts.append(f"left {candidate.dropped}")
    return "; ".join(parts) or "-"


HEADINGS = {
    TEST_ACC1: "test Acc@1",
    TEST_ACC3: "test Acc@3",
    TEST_ACC5: "test Acc@5",
    BEST_VAL_ACC1: "val Acc@1",
}


def format_table(evaluation: Evaluation) -> str:
    """Mean ± std over the fresh seeds; the paired differences in test Acc@1 to the best
    baseline and to the defaults (both chosen or named before looking at test), as mean ±
    the half width of its 95 % interval; the verdict last."""
    objective = evaluation.objective
    base, defaults = evaluation.best_baseline, evaluation.defaults
    shown = list(dict.fromkeys([*REPORTED, objective.metric]))
    header = ["method", "seeds", *(HEADINGS.get(m, m) for m in shown)]
    references: dict[str, Candidate] = {}
    if base is not None:
        references[base.label] = base
    if defaults is not None:
        references[DEFAULTS] = defaults
    header += [f"Δ Acc@1 vs {name} ({CONFIDENCE:.0%})" for name in references]
    header.append("how")
    lines = []
    for candidate in evaluation.candidates:
        name = candidate.label
        if candidate.trial_id:
            name += f" ({candidate.trial_id})"
        if candidate.is_defaults and candidate.kind != "defaults":
            name += f" = {DEFAULTS}"
        if candidate is evaluation.winner:
            name += " *"
        cells = [name, str(len(candidate.values(TEST_ACC1)))]
        cells += [format_mean_std(candidate.values(m)) for m in shown]
        cells += [_difference_cell(candidate, reference) for reference in references.values()]
        cells.append(_status(candidate))
        lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    render = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    note = f"fresh seeds {evaluation.seeds}; * the winner by mean {objective.label()}"
    if base is not None:
        note += f"; best baseline by mean {objective.metric}: {base.label}"
    if defaults is not None:
        note += f"; {DEFAULTS}: the base config's values of the searched keys"
        if defaults.kind != "defaults":
            note += f" ({defaults.label} is them)"
    verdict = [f"verdict: {evaluation.verdict.sentence}"] if evaluation.verdict else []
    return "\n".join([render(header), *(render(line) for line in lines), note, *verdict])
