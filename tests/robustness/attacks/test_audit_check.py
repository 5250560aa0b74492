"""The ``adversarial`` audit check on small models: metrics, figures, and plain-word warnings."""

from __future__ import annotations

from mlsafety.audit.base import AuditContext
from mlsafety.registry import CHECKS


def test_quick_check_reports_clean_and_robust_accuracy(tiny_classifier, digits_splits) -> None:
    context = AuditContext(tiny_classifier, digits_splits["test"], quick=True,
                           options={"adversarial": {"epsilon": 0.05, "n_samples": 16, "n_queries": 50}})
    result = CHECKS.create("adversarial").run(context)
    assert result.metrics["robust_accuracy"] < result.metrics["clean_accuracy"]
    assert result.metrics["n_samples"] == 16 and result.metrics["epsilon"] == 0.05
    assert len(result.figures) >= 2 and result.details["curve"]["epsilons"] == [0.0125, 0.025, 0.05, 0.1]
    assert result.verdict in {"pass", "fail"} and not result.warnings
    assert any("Quick mode" in note for note in result.notes)


def test_check_warns_about_a_gradient_masked_model(masked_classifier, digits_splits) -> None:
    context = AuditContext(masked_classifier, digits_splits["test"], quick=True,
                           options={"adversarial": {"epsilon": 0.1, "n_samples": 16, "n_queries": 50}})
    result = CHECKS.create("adversarial").run(context)
    assert result.verdict == "warn"
    assert any("overestimate robustness" in warning for warning in result.warnings)
