"""``mlsafety proxy``: sweep, detect and overoptimization commands."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mlsafety.cli import app

runner = CliRunner()


def test_proxy_sweep_writes_a_report(tmp_path) -> None:
    result = runner.invoke(app, ["proxy", "sweep", "--env", "lagoon", "--seeds", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Phase transition" in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert [c["name"] for c in report["checks"]] == ["sweep.lagoon.horizon", "mitigations.lagoon"]
    assert (tmp_path / "report.html").exists()


def test_proxy_sweep_bad_input_is_a_one_line_usage_error(tmp_path) -> None:
    result = runner.invoke(app, ["proxy", "sweep", "--env", "lagon", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "Did you mean 'lagoon'" in result.output
    result = runner.invoke(app, ["proxy", "sweep", "--values", "-3,2", "--no-mitigations", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "horizon" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["proxy", "sweep", "--knob", "horizn", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "Did you mean 'horizon'" in result.output


def test_proxy_detect_and_overoptimization(tmp_path) -> None:
    result = runner.invoke(app, ["proxy", "detect", "--envs", "lagoon", "--knobs", "horizon,boltzmann", "--seeds", "2",
                                 "--n-resamples", "20", "--out", str(tmp_path / "detect")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "detect" / "report.json").read_text())
    assert report["checks"][0]["name"] == "detection"
    assert "auroc.occupancy" in report["checks"][0]["metrics"]
    result = runner.invoke(app, ["proxy", "overoptimization", "--comparisons", "30", "--ensemble", "2",
                                 "--sweep-seeds", "0", "--out", str(tmp_path / "over")])
    assert result.exit_code == 0, result.output
    assert "peaks at n =" in result.output
    report = json.loads((tmp_path / "over" / "report.json").read_text())
    assert report["checks"][0]["metrics"]["bon_beta"] > 0


def test_proxy_overoptimization_refuses_n_below_one(tmp_path) -> None:
    result = runner.invoke(app, ["proxy", "overoptimization", "--n-values", "0,4", "--sweep-seeds", "0",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--n-values must be integers >= 1" in result.output
    assert len(result.output.strip().splitlines()) == 1
