"""Report sections render through the audit's renderer."""

from __future__ import annotations

import json

from mlsafety.alignment.proxy.detection import evaluate_detection
from mlsafety.alignment.proxy.overoptimization import overoptimization_experiment
from mlsafety.alignment.proxy.report import (
    detection_section,
    mitigation_section,
    overoptimization_section,
    sweep_section,
    write_report,
)
from mlsafety.alignment.proxy.sweep import sweep


def test_report_renders_every_section(tmp_path) -> None:
    result = sweep("lagoon", "horizon", seeds=2)
    detection = evaluate_detection(["lagoon"], ["horizon"], seeds=2, n_resamples=20)
    over = overoptimization_experiment(n_comparisons=30, n_ensemble=2, n_values=(1, 4, 16, 256))
    sections = [sweep_section(result), mitigation_section(result, strengths=[1.0, 0.01]),
                detection_section(detection), overoptimization_section(over)]
    json_path, html_path = write_report(tmp_path, sections, {"command": "test"})
    report = json.loads(json_path.read_text())
    names = [check["name"] for check in report["checks"]]
    assert names == ["sweep.lagoon.horizon", "mitigations.lagoon", "detection", "overoptimization"]
    assert report["checks"][0]["verdict"] == "warn"
    assert report["checks"][0]["metrics"]["transition_flagged"] == 1.0
    assert all(check["figures"] for check in report["checks"])
    html = html_path.read_text()
    assert "Phase transition" in html and "data:image/png;base64" in html
