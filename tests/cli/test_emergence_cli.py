"""``mlsafety emergence``: analyze, testbed scaling / grokking, and one-line usage errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mlsafety.cli import app

runner = CliRunner()


def _write(path, header, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def jump_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[scale, "arith", "exact_match", example, float(rng.random() < (0.9 if i >= 4 else 0.05))]
            for i, scale in enumerate(np.logspace(5, 8, 7)) for example in range(60)]
    return _write(tmp_path / "runs.csv", ["scale", "task", "metric", "example", "value"], rows)


def test_analyze_writes_html_and_json(jump_csv, tmp_path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(app, ["emergence", "analyze", str(jump_csv), "--out", str(out), "--n-resamples", "200"])
    assert result.exit_code == 0, result.output
    assert "1 jump(s) flagged" in result.output
    report = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in report["checks"]] == ["emergence.summary", "emergence.arith"]
    flagged = report["checks"][0]["details"]["analysis"]["flagged"]
    assert len(flagged) == 1 and flagged[0]["index"] == 4 and flagged[0]["interval"][0] > 0
    assert "data:image/png;base64" in (out / "report.html").read_text()
    result = runner.invoke(app, ["emergence", "analyze", str(jump_csv), "--out", str(out), "--fail-on-jump",
                                 "--n-resamples", "50"])
    assert result.exit_code == 1


@pytest.mark.parametrize(("rows", "message"), [
    ([[10, 0.1], [1, 0.2], [100, 0.3]], "not sorted"),
    ([[1, 0.1], [1, 0.2], [100, 0.3]], "duplicated"),
    ([[1, 0.1]], "at least 3"),
    ([[1, 0.1], [10, "nan"], [100, 0.3]], "NaN"),
])
def test_bad_tables_are_one_line_usage_errors(tmp_path, rows, message) -> None:
    path = _write(tmp_path / "bad.csv", ["scale", "value"], rows)
    result = runner.invoke(app, ["emergence", "analyze", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_mismatched_examples_and_bad_options(tmp_path) -> None:
    path = _write(tmp_path / "m.csv", ["scale", "example", "value"],
                  [[1, 0, 1.0], [1, 1, 0.0], [10, 0, 1.0], [100, 0, 1.0], [100, 1, 1.0]])
    result = runner.invoke(app, ["emergence", "analyze", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "same examples" in result.output
    result = runner.invoke(app, ["emergence", "analyze", str(path), "--method", "pelt"])
    assert result.exit_code == 2 and "dynp or kernel" in result.output
    result = runner.invoke(app, ["emergence", "analyze", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "not found" in result.output
    result = runner.invoke(app, ["emergence", "testbed", "scaling", "--sizes", "8x1x2,16x1"])
    assert result.exit_code == 2 and "WIDTHxLAYERSxHEADS" in result.output
    result = runner.invoke(app, ["emergence", "testbed", "grokking", "--p", "3"])
    assert result.exit_code == 2 and "--p" in result.output


def test_testbeds_run_end_to_end(tmp_path) -> None:
    out = tmp_path / "grok"
    result = runner.invoke(app, ["emergence", "testbed", "grokking", "--p", "11", "--epochs", "40", "--eval-every",
                                 "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = [c["name"] for c in json.loads((out / "report.json").read_text())["checks"]]
    assert names == ["emergence.grokking", "emergence.summary", "emergence.modular_addition"]
    out = tmp_path / "scaling"
    result = runner.invoke(app, ["emergence", "testbed", "scaling", "--sizes", "8x1x2,12x1x2,16x1x2", "--tasks",
                                 "addition", "--steps", "4", "--batch-size", "8", "--n-eval", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "runs.csv").exists() and (out / "report.html").exists()
    result = runner.invoke(app, ["emergence", "analyze", str(out / "runs.csv"), "--out", str(tmp_path / "again"),
                                 "--n-resamples", "50"])
    assert result.exit_code == 0, result.output
