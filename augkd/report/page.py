"""The report as a page: every section in order, shown in Jupyter or written as PNG
files and one static index.html. Other figures join through ``add_section``."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from augkd.report.baselines import plot_baselines
from augkd.report.curves import plot_curves, plot_mixup_schedule
from augkd.report.diagnostics import plot_diagnostics
from augkd.report.loading import SearchData, error_line, load_search
from augkd.report.params import plot_importance, plot_parallel_coordinates
from augkd.report.section import Section
from augkd.report.tables import leaderboard, mlflow_runs
from augkd.storage.locations import local_folder

SectionBuilder = Callable[[SearchData], Section]
SECTIONS: list[tuple[str, SectionBuilder]] = [
    ("leaderboard", leaderboard),
    ("parallel_coordinates", plot_parallel_coordinates),
    ("importance", plot_importance),
    ("val_curves", plot_curves),
    ("mixup_schedule", plot_mixup_schedule),
    ("diagnostics", plot_diagnostics),
    ("baselines", plot_baselines),
    ("mlflow_runs", mlflow_runs),
]
"""(key, builder) of every section, in page order."""


def add_section(key: str, build: SectionBuilder, before: str | None = None) -> None:
    """Add a section to every report and notebook (before the named one, else at the end)."""
    keys = [name for name, _ in SECTIONS]
    SECTIONS.insert(keys.index(before) if before in keys else len(SECTIONS), (key, build))


def sections(data: SearchData) -> list[Section]:
    """Every section of the report, in order; one that fails becomes a note."""
    out = []
    for key, build in SECTIONS:
        try:
            out.append(build(data))
        except Exception as error:  # a figure must never take the report down
            note = f"could not be drawn ({type(error).__name__}: {error_line(error)})"
            out.append(Section(key, key, note=note))
    return out


def show(section: Section) -> None:
    """Display a section in Jupyter: its title, then its figure, table or note."""
    from IPython.display import Image, Markdown, display

    display(Markdown(f"### {section.title}"))
    if section.figure is not None:
        display(Image(data=section.png(), format="png"))
    if section.table is not None:
        display(section.table)
    if section.note:
        display(Markdown(f"*Note:* {section.note}"))


def show_summary(data: SearchData) -> None:
    """Display which search and tracking store the notebook reads, and their notes."""
    from IPython.display import Markdown, display

    lines = [
        f"**{data.summary()}**",
        f"- results: `{data.search_path}`",
        f"- MLflow: `{data.tracking_uri}`",
    ]
    lines += [f"- *Note:* {note}" for note in data.notes]
    display(Markdown("\n".join(lines)))


def _table_html(table: pd.DataFrame) -> str:
    return table.to_html(
        index=False,
        na_rep="-",
        border=0,
        classes="table",
        float_format=lambda v: f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}",
    )


STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; }
table.table { border-collapse: collapse; font-size: 0.85em; }
table.table td, table.table th { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }
.note { color: #555; font-style: italic; }
img { max-width: 100%; }
"""


def write_report(
    search_path: str | None,
    out_dir: str | None = None,
    tracking_uri: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Write every figure as PNG and an index.html (figures, leaderboard, MLflow runs).

    ``search_path``: a search folder or a storage root (its latest search). Nothing is
    written for a path that is not a search or whose results table is unreadable.
    """
    data = load_search(search_path, tracking_uri, strict=True, echo=echo)
    out = Path(out_dir) if out_dir is not None else Path(local_folder(data.search_path)) / "report"
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        f"<h1>Search {html.escape(data.name)}</h1>",
        f"<p>{html.escape(data.summary())} Results: <code>{html.escape(data.search_path)}</code>; "
        f"MLflow: <code>{html.escape(data.tracking_uri)}</code></p>",
    ]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in data.notes]
    for section in sections(data):
        parts.append(f'<h2 id="{section.key}">{html.escape(section.title)}</h2>')
        png = section.png()
        if png is not None:
            (out / f"{section.key}.png").write_bytes(png)
            parts.append(f'<img src="{section.key}.png" alt="{html.escape(section.title)}">')
        if section.table is not None:
            parts.append(_table_html(section.table))
        if section.note:
            parts.append(f'<p class="note">{html.escape(section.note)}</p>')
    index = out / "index.html"
    index.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>augkd report: {html.escape(data.name)}</title><style>{STYLE}</style></head>"
        "<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    return index
