"""Audit runner: atomic per-check results, resume, report rendering, thresholds."""

from __future__ import annotations

import json

import pytest

from mlsafety.audit import AuditContext, Check, run_audit
from mlsafety.exceptions import InvalidParameterError
from mlsafety.registry import CHECKS

CALLS: list[str] = []


class _ProbeOK(Check):
    name, title, hazard = "_probe_ok", "Probe", "test"

    def run(self, context):
        CALLS.append(self.name)
        return self.result("pass", "fine", metrics={"score": 0.5})


class _ProbeCrash(Check):
    name, title, hazard = "_probe_crash", "Crash", "test"
    crash = True

    def run(self, context):
        CALLS.append(self.name)
        if _ProbeCrash.crash:
            raise KeyboardInterrupt  # an interruption after the first check finished
        return self.result("pass", "recovered")


@pytest.fixture(autouse=True)
def _probes():
    """Register the probe checks for one test only, so other tests never see them."""
    for probe in (_ProbeOK, _ProbeCrash):
        CHECKS.register(probe.name)(probe)
    yield
    for name in ("_probe_ok", "_probe_crash", "_probe_bug"):
        CHECKS.unregister(name)


@pytest.fixture()
def context(tiny_classifier, digits_splits):
    return AuditContext(tiny_classifier, digits_splits["test"], validation=digits_splits["validation"])


def test_interrupted_audit_resumes_without_recomputing(tmp_path, context) -> None:
    CALLS.clear()
    _ProbeCrash.crash = True
    with pytest.raises(KeyboardInterrupt):
        run_audit(context, tmp_path, ["_probe_ok", "_probe_crash"], progress=False)
    assert (tmp_path / "results" / "_probe_ok.json").exists()
    assert not (tmp_path / "results" / "_probe_crash.json").exists()
    _ProbeCrash.crash = False
    report = run_audit(context, tmp_path, ["_probe_ok", "_probe_crash"], progress=False)
    assert CALLS == ["_probe_ok", "_probe_crash", "_probe_crash"], "the finished check must not rerun"
    assert [r.resumed for r in report.results] == [True, False]
    # a different configuration (seed) invalidates the stored result
    context.seed = 1
    run_audit(context, tmp_path, ["_probe_ok"], progress=False)
    assert CALLS[-1] == "_probe_ok"


def test_error_in_check_is_recorded_not_saved(tmp_path, context) -> None:
    @CHECKS.register("_probe_bug")
    class _ProbeBug(Check):
        name, title, hazard = "_probe_bug", "Bug", "test"

        def run(self, context):
            raise ValueError("boom")

    report = run_audit(context, tmp_path, ["_probe_bug", "_probe_ok"], progress=False)
    assert report.results[0].verdict == "error" and "boom" in report.results[0].summary
    assert not (tmp_path / "results" / "_probe_bug.json").exists()
    assert report.results[1].verdict == "pass"


def test_report_files_and_thresholds(tmp_path, context) -> None:
    report = run_audit(context, tmp_path, ["accuracy", "_probe_ok"], progress=False)
    payload = json.loads(report.json_path.read_text())
    assert [c["name"] for c in payload["checks"]] == ["accuracy", "_probe_ok"]
    html = report.html_path.read_text()
    assert "Confusion matrix" in html and "data:image/png;base64," in html and "http" not in html.split("<body>")[1]
    accuracy = report.metric("accuracy.accuracy")
    assert 0.0 < accuracy <= 1.0
    assert report.violations({"accuracy": accuracy + 0.01}) and not report.violations({"accuracy": accuracy})
    assert report.violations(fail_over={"_probe_ok.score": 0.4})
    with pytest.raises(InvalidParameterError, match="no metric"):
        report.metric("nonexistent")
