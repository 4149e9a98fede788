"""Compare the trials of a finished search: leaderboard, parallel coordinates,
fANOVA importance, val curves against ASHA's rungs, mixup schedules, the diagnostics
of Modules 1-2, AuG-KD against
the baselines, and the child runs in MLflow.

Shared by ``analysis/compare_trials.ipynb`` (one function a cell) and
``augkd report --search PATH`` (PNG figures and a static ``index.html``). Every
section either draws its figure or says, in a note, why it cannot; a search with one
trial, only failed trials or no finished trial gives notes, never a traceback.

Modules: ``loading`` (find and read a search), ``tables``, ``params`` (parallel
coordinates, importance), ``curves`` (val curves, schedules), ``diagnostics``,
``baselines``, and
``page`` (the section list, Jupyter display and the HTML page).
"""

from augkd.report.baselines import find_baselines, plot_baselines
from augkd.report.curves import plot_curves, plot_mixup_schedule, schedule_curve
from augkd.report.diagnostics import plot_diagnostics
from augkd.report.loading import (
    SearchData,
    asha_rungs,
    budget_steps,
    load_search,
    resolve_search_path,
)
from augkd.report.page import SECTIONS, add_section, sections, show, show_summary, write_report
from augkd.report.params import importance_study, plot_importance, plot_parallel_coordinates
from augkd.report.section import Section
from augkd.report.tables import leaderboard, mlflow_runs
from augkd.storage.locations import (
    BASELINES_FILE,
    SPACE_FILE,
    default_storage,
    default_tracking_uri,
)

__all__ = [
    "BASELINES_FILE",
    "SECTIONS",
    "SPACE_FILE",
    "SearchData",
    "Section",
    "add_section",
    "asha_rungs",
    "budget_steps",
    "default_storage",
    "default_tracking_uri",
    "find_baselines",
    "importance_study",
    "leaderboard",
    "load_search",
    "mlflow_runs",
    "plot_baselines",
    "plot_curves",
    "plot_diagnostics",
    "plot_importance",
    "plot_mixup_schedule",
    "plot_parallel_coordinates",
    "resolve_search_path",
    "schedule_curve",
    "sections",
    "show",
    "show_summary",
    "write_report",
]
