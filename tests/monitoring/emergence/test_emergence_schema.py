"""Run-table schema: loading CSV / JSON and one-line errors for bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mlsafety.exceptions import DataNotFoundError, InvalidInputError, MLSafetyError, ShapeError
from mlsafety.monitoring.emergence import Curve, load_runs, table_from_records


def _write(path, header, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_aggregate_per_example_and_output_tables(tmp_path) -> None:
    agg = _write(tmp_path / "a.csv", ["scale", "task", "metric", "value"],
                 [[1, "t", "accuracy", 0.1], [10, "t", "accuracy", 0.2], [100, "t", "accuracy", 0.9]])
    table = load_runs(agg)
    curve = table.curves[("t", "accuracy")]
    np.testing.assert_allclose(curve.values, [0.1, 0.2, 0.9])
    assert curve.per_example is None
    rows = [[s, "t", "exact_match", e, float(s == 100)] for s in (1, 10, 100) for e in range(4)]
    table = load_runs(_write(tmp_path / "b.csv", ["scale", "task", "metric", "example", "value"], rows))
    curve = table.curves[("t", "exact_match")]
    assert curve.per_example.shape == (3, 4) and curve.continuous is False
    records = [{"step": s, "task": "add", "example": e, "output": "12" if s > 1 else "19", "target": "12",
                "target_logprob": -1.0 / s} for s in (1, 2, 3) for e in range(3)]
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"records": records}))
    table = load_runs(path)
    assert table.scale_name == "step"
    assert {m for _, m in table.curves} == {"exact_match", "per_token_accuracy", "token_edit_distance",
                                            "target_log_likelihood"}
    np.testing.assert_allclose(table.curves[("add", "per_token_accuracy")].values, [0.5, 1.0, 1.0])
    assert table.curves[("add", "token_edit_distance")].higher_is_better is False


@pytest.mark.parametrize(("rows", "error", "message"), [
    ([[10, 0.1], [1, 0.2], [100, 0.3]], InvalidInputError, "not sorted"),
    ([[1, 0.1], [1, 0.2], [100, 0.3]], InvalidInputError, "duplicated"),
    ([[1, 0.1]], InvalidInputError, "at least 3"),
    ([[1, 0.1], [10, "nan"], [100, 0.3]], InvalidInputError, "NaN"),
    ([[1, 0.1], [10, "abc"], [100, 0.3]], InvalidInputError, "must be a number"),
])
def test_bad_aggregate_tables_raise_one_line_errors(tmp_path, rows, error, message) -> None:
    path = _write(tmp_path / "bad.csv", ["scale", "value"], rows)
    with pytest.raises(error, match=message) as info:
        load_runs(path)
    assert "\n" not in str(info.value)


def test_mismatched_examples_and_missing_file(tmp_path) -> None:
    rows = [[1, 0, 1.0], [1, 1, 0.0], [10, 0, 1.0], [100, 0, 1.0], [100, 1, 1.0]]
    with pytest.raises(ShapeError, match="same examples"):
        load_runs(_write(tmp_path / "m.csv", ["scale", "example", "value"], rows))
    with pytest.raises(ShapeError, match="different lengths"):
        Curve.from_examples("t", "m", [1, 2, 3], [[1, 0], [1], [0, 1]])
    with pytest.raises(DataNotFoundError):
        load_runs(tmp_path / "missing.csv")
    with pytest.raises(InvalidInputError, match="scale"):
        table_from_records([{"size": 1, "value": 2}])
    with pytest.raises(MLSafetyError, match="NaN"):
        Curve("t", "m", [1, 2, 3], [0.0, float("nan"), 1.0])
