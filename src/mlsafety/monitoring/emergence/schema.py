"""Run tables: the curves the emergence analysis reads, their file schema and their validation.

A run table is a long table (CSV with a header, or JSON: a list of records or ``{"records": [...]}``)
with one row per measurement. Columns:

``scale`` (required; ``step`` is accepted as its alias)
    Model size (parameters, FLOPs) or training step: a finite number >= 0. Within one
    (task, metric) curve it must be strictly increasing in file order (per-example rows: non-decreasing,
    one block of rows per scale).
``task`` (optional, default ``"task"``)
    Task name; each task is analysed separately.
``metric`` and ``value``
    A metric name and its value. One row per (task, metric, scale) gives an aggregate curve; with an
    ``example`` column, one row per (task, metric, scale, example) gives per-example scores, whose
    mean is the curve and which allow bootstrap intervals over examples.
``example``, ``output``, ``target`` (and optionally ``target_logprob``, ``target_prob``)
    Per-example model outputs; the metrics of :mod:`~mlsafety.monitoring.emergence.metrics`
    (exact match, token edit distance, per-token accuracy, target log-likelihood, Brier) are
    computed from them (Schaeffer et al. 2023). ``target_logprob`` is the summed log-probability
    of the target tokens, ``target_prob`` the probability of the correct choice.

Every scale of a per-example curve must hold the same examples (matched by ``example``), so that
intervals can resample examples jointly across scales.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlsafety._io import not_text_table_error
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, ShapeError

OUTPUT_COLUMNS = ("output", "target")
_OPTIONAL_OUTPUTS = ("target_logprob", "target_prob")


@dataclass
class Curve:
    """One metric of one task along scale (or training step).

    Parameters
    ----------
    task, metric : str
        Names.
    scales : ndarray, shape (n,)
        Strictly increasing, finite, >= 0.
    values : ndarray, shape (n,)
        The metric at each scale (the mean over examples when ``per_example`` is given).
    per_example : ndarray, shape (n, m), optional
        Per-example scores (the same ``m`` examples at every scale).
    higher_is_better : bool
        Direction of the metric; jumps are improvements in this direction.
    continuous : bool, optional
        Whether the metric is continuous in the model's per-token probabilities (Schaeffer et al.
        2023): exact match is not, log-likelihood is; None when unknown.
    bounds : tuple
        Known (lower, upper) limits of the metric (None when unbounded), used by the forecasts.
    """

    task: str
    metric: str
    scales: np.ndarray
    values: np.ndarray
    per_example: np.ndarray | None = None
    higher_is_better: bool = True
    continuous: bool | None = None
    bounds: tuple[float | None, float | None] = (None, None)

    def __post_init__(self) -> None:
        self.scales = np.asarray(self.scales, dtype=float)
        self.values = np.asarray(self.values, dtype=float)
        check_scales(self.scales, f"scale of {self.label}")
        if self.values.shape != self.scales.shape:
            raise ShapeError(f"`values` of {self.label} has {self.values.size} points but there are "
                             f"{self.scales.size} scales; give one value per scale.")
        if not np.all(np.isfinite(self.values)):
            bad = float(self.scales[~np.isfinite(self.values)][0])
            raise InvalidInputError(f"metric {self.label} is NaN or infinite at scale {bad:g}; "
                                    "drop that point or fix the evaluation.")
        if self.per_example is not None:
            self.per_example = np.asarray(self.per_example, dtype=float)
            if self.per_example.ndim != 2 or self.per_example.shape[0] != self.scales.size:
                raise ShapeError(f"`per_example` of {self.label} must have shape (n_scales, n_examples) = "
                                 f"({self.scales.size}, m); got {self.per_example.shape}.")

    @property
    def label(self) -> str:
        return f"{self.task}/{self.metric}"

    @property
    def oriented(self) -> np.ndarray:
        """The values with "better" pointing up (negated when lower is better)."""
        return self.values if self.higher_is_better else -self.values

    @property
    def oriented_per_example(self) -> np.ndarray | None:
        if self.per_example is None:
            return None
        return self.per_example if self.higher_is_better else -self.per_example

    @classmethod
    def from_examples(cls, task: str, metric: str, scales: Sequence[float],
                      per_example: Sequence[Sequence[float]] | np.ndarray, **kwargs: Any) -> Curve:
        """Build a curve from per-example scores, one sequence per scale (all the same length)."""
        rows = [np.asarray(row, dtype=float).ravel() for row in per_example]
        lengths = {row.size for row in rows}
        if len(lengths) > 1:
            sizes = ", ".join(f"{s:g}: {r.size}" for s, r in zip(scales, rows, strict=False))
            raise ShapeError(f"per-example scores of {task}/{metric} have different lengths per scale ({sizes}); "
                             "evaluate the same examples at every scale.")
        if 0 in lengths:
            raise ShapeError(f"per-example scores of {task}/{metric} are empty; pass at least one example.")
        matrix = np.stack(rows) if rows else np.zeros((0, 1))
        if not np.all(np.isfinite(matrix)):
            raise InvalidInputError(f"per-example scores of {task}/{metric} contain NaN or infinite values; "
                                    "drop or fix those examples.")
        return cls(task, metric, np.asarray(scales, dtype=float), matrix.mean(1), matrix, **kwargs)


def check_scales(scales: np.ndarray, name: str = "scale", min_points: int = 3) -> np.ndarray:
    """Validate a scale column: 1-D, finite, >= 0, strictly increasing, at least ``min_points`` values."""
    scales = np.asarray(scales, dtype=float)
    if scales.ndim != 1:
        raise ShapeError(f"`{name}` must be 1-D; got shape {scales.shape}.")
    if scales.size < min_points:
        raise InvalidInputError(f"`{name}` has {scales.size} point(s); a curve needs at least {min_points} scales "
                                "to locate a jump and to forecast.")
    if not np.all(np.isfinite(scales)) or np.any(scales < 0):
        raise InvalidInputError(f"`{name}` must hold finite numbers >= 0 (parameters, FLOPs or steps).")
    steps = np.diff(scales)
    if np.any(steps == 0):
        dup = float(scales[1:][steps == 0][0])
        raise InvalidInputError(f"`{name}` has the duplicated value {dup:g}; give one row per scale "
                                "(average repeated runs first, or add a task/metric column to tell them apart).")
    if np.any(steps < 0):
        where = int(np.argmax(steps < 0))
        raise InvalidInputError(f"`{name}` is not sorted: {scales[where]:g} comes before {scales[where + 1]:g}; "
                                "sort the rows by scale.")
    return scales


@dataclass
class RunTable:
    """The curves of a run (or of a model family), keyed by (task, metric)."""

    curves: dict[tuple[str, str], Curve] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    scale_name: str = "scale"

    @property
    def tasks(self) -> list[str]:
        return sorted({task for task, _ in self.curves})

    def for_task(self, task: str) -> list[Curve]:
        return [curve for (t, _), curve in sorted(self.curves.items()) if t == task]

    def add(self, curve: Curve) -> None:
        self.curves[(curve.task, curve.metric)] = curve


def _number(raw: Any, column: str, row: int) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidInputError(f"column `{column}` in row {row} must be a number; got {raw!r}.") from None
    if math.isnan(value):
        raise InvalidInputError(f"column `{column}` in row {row} is NaN; drop the row or fix the evaluation.")
    return value


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Read a run table (CSV with a header, or JSON) into a list of records."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"run table {str(path)!r} not found; pass a CSV or JSON file (schema in "
                                "docs/emergence.md).")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            with path.open(newline="", encoding="utf-8") as handle:
                rows = [dict(row) for row in csv.DictReader(handle)]
            for line, row in enumerate(rows, start=2):
                if None in row:  # DictReader files surplus cells under the key None
                    raise InvalidInputError(f"line {line} of {path.name} has more cells than the header; quote "
                                            "cells that hold commas.")
            return rows
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"{path.name} is not valid JSON ({error.msg} at line {error.lineno}).") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise not_text_table_error(path.name, error, "JSON" if path.suffix.lower() == ".json" else "CSV") from None
    if isinstance(data, Mapping):
        data = data.get("records")
    if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
        raise InvalidInputError(f"{path.name} must hold a list of records or {{\"records\": [...]}}.")
    return [dict(r) for r in data]


def table_from_records(records: Iterable[Mapping[str, Any]], source: str = "run table") -> RunTable:
    """Validate records (see the module docstring) and build a :class:`RunTable`.

    Raises
    ------
    InvalidInputError
        Missing columns, NaN values, unsorted or duplicated scales, fewer than 3 scales.
    ShapeError
        Scales of one curve holding different examples.
    """
    from mlsafety.monitoring.emergence.metrics import METRICS, rescore

    rows = list(records)
    if not rows:
        raise InvalidInputError(f"{source} is empty; it needs a header and at least 3 rows (one per scale).")
    columns = set(rows[0])
    scale_column = "scale" if "scale" in columns else "step" if "step" in columns else None
    if scale_column is None:
        raise InvalidInputError(f"{source} has no `scale` (or `step`) column; columns are {sorted(columns)}.")
    has_outputs = all(c in columns for c in OUTPUT_COLUMNS)
    has_values = "value" in columns
    if not has_outputs and not has_values:
        raise InvalidInputError(f"{source} needs either `metric` and `value` columns or per-example `output` and "
                                f"`target` columns; got {sorted(columns)}.")
    if has_outputs and "example" not in columns:
        raise InvalidInputError(f"{source} has `output`/`target` columns but no `example` column; add an "
                                "example id so that scales can be matched.")
    table = RunTable(scale_name=scale_column)
    per_example = "example" in columns
    groups: dict[tuple[str, str], list[tuple[float, str, Any, int]]] = {}
    output_groups: dict[str, list[tuple[float, str, dict[str, Any], int]]] = {}
    for index, row in enumerate(rows, start=2 if source.endswith(".csv") else 1):
        scale = _number(row.get(scale_column), scale_column, index)
        task = str(row.get("task") or "task")
        example = str(row.get("example", ""))
        if has_values and row.get("value") not in (None, ""):
            metric = str(row.get("metric") or "metric")
            groups.setdefault((task, metric), []).append((scale, example, _number(row["value"], "value", index), index))
        if has_outputs and row.get("output") is not None and row.get("target") is not None:
            output_groups.setdefault(task, []).append((scale, example, row, index))
    for (task, metric), items in groups.items():
        scales, matrix = _assemble(items, f"{task}/{metric}", per_example)
        info = METRICS.metadata(metric) if metric in METRICS else {}
        kwargs = {"higher_is_better": info.get("higher_is_better", True), "continuous": info.get("continuous"),
                  "bounds": info.get("bounds", (None, None))}
        if per_example:
            table.add(Curve(task, metric, scales, matrix.mean(1), matrix, **kwargs))
        else:
            table.add(Curve(task, metric, scales, matrix[:, 0], **kwargs))
    for task, items in output_groups.items():
        scales, records = _assemble(items, f"{task} outputs", True, keep_records=True)
        table.outputs[task] = {"scales": scales, "records": records}
        for curve in rescore(task, scales, records):
            table.add(curve)
    if not table.curves:
        raise InvalidInputError(f"{source} holds no curve: every row lacks a `value` (or an `output` and a "
                                "`target`); fill them in.")
    return table


def _assemble(items: list[tuple[float, str, Any, int]], label: str, per_example: bool,
              keep_records: bool = False) -> tuple[np.ndarray, Any]:
    """Group rows by scale (file order), check order, duplicates and matching examples."""
    scales: list[float] = []
    blocks: list[dict[str, Any]] = []
    for scale, example, payload, row in items:
        if scales and scale == scales[-1] and per_example:
            if example in blocks[-1]:
                raise InvalidInputError(f"example {example!r} appears twice at scale {scale:g} in {label} "
                                        f"(row {row}); give each example once per scale.")
            blocks[-1][example] = payload
            continue
        if scales and scale <= scales[-1]:
            what = "duplicated" if scale in scales else "not sorted"
            raise InvalidInputError(f"the scale column of {label} is {what} at row {row} ({scale:g} after "
                                    f"{scales[-1]:g}); sort the rows by scale with one row (per example) per scale.")
        scales.append(scale)
        blocks.append({example: payload})
    check_scales(np.asarray(scales), f"scale of {label}")
    names = list(blocks[0])
    for scale, block in zip(scales, blocks, strict=True):
        if set(block) != set(names):
            raise ShapeError(f"{label} has {len(block)} examples at scale {scale:g} but {len(names)} at scale "
                             f"{scales[0]:g} (or different ids); evaluate the same examples at every scale.")
    if keep_records:
        return np.asarray(scales), [[block[name] for name in names] for block in blocks]
    return np.asarray(scales), np.asarray([[block[name] for name in names] for block in blocks], dtype=float)


def load_runs(path: str | Path) -> RunTable:
    """Read and validate a run table file (CSV or JSON; schema in the module docstring)."""
    return table_from_records(read_records(path), source=Path(path).name)
