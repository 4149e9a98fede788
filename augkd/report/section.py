"""One figure or table of the report, or the note that stands in for it."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure


@dataclass
class Section:
    """One figure or table of the report, or the note that stands in for it."""

    key: str
    title: str
    figure: Figure | None = None
    table: pd.DataFrame | None = None
    note: str | None = None

    def png(self) -> bytes | None:
        if self.figure is None:
            return None
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        return buffer.getvalue()
