"""The records every report is made of: a :class:`CheckResult` per section, holding
:class:`Table` and :class:`Figure` objects, and the verdict scale.

They are plain dataclasses with no dependency on torch, so the audit, the labs and the
CLI can all build and read them.
"""

from __future__ import annotations

import base64
import io
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MatplotlibFigure

Verdict = Literal["pass", "info", "warn", "fail", "skipped", "error"]
VERDICT_SEVERITY: dict[str, int] = {
    "pass": 0, "info": 1, "skipped": 1, "warn": 2, "fail": 3, "error": 4,
}


@dataclass
class Figure:
    """A PNG figure, stored base64-encoded so that results are self-contained JSON."""

    title: str
    png_base64: str
    caption: str = ""

    @classmethod
    def from_matplotlib(cls, figure: MatplotlibFigure, title: str, caption: str = "",
                        dpi: int = 110) -> Figure:
        """Render a matplotlib figure (use ``matplotlib.figure.Figure()``, not pyplot)."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        return cls(title, base64.b64encode(buffer.getvalue()).decode("ascii"), caption)


@dataclass
class Table:
    """A small table: column names and rows of JSON-friendly cells."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class CheckResult:
    """What a check (or a lab's experiment) found: metrics, tables, figures, a verdict and notes.

    ``metrics`` hold the headline numbers (used by ``--fail-under``); ``details`` hold any
    further JSON-friendly data; ``warnings`` are shown prominently in the report.
    ``data_note`` is the one line that says which data (and which subset of it) the
    section's numbers come from; ``next_step`` is what to do about a verdict other than
    ``pass``, shown in a box under the summary.
    """

    name: str
    title: str
    verdict: Verdict
    summary: str
    hazard: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    seconds: float = 0.0
    resumed: bool = False
    data_note: str = ""
    next_step: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        data = dict(data)
        data["tables"] = [Table(**t) for t in data.get("tables", [])]
        data["figures"] = [Figure(**f) for f in data.get("figures", [])]
        return cls(**data)


def worst_verdict(verdicts: list[str]) -> str:
    """The most severe verdict of a list (``pass`` for an empty one)."""
    return max(verdicts, key=lambda v: VERDICT_SEVERITY.get(v, 0), default="pass")
