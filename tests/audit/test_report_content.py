"""What the audit puts in front of a reader: intervals on accuracy, the evaluation-data line,
a next step on every non-pass verdict, and the verdict gate behind ``--fail-on``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlsafety.audit import AuditContext, CheckResult
from mlsafety.audit.checks.accuracy import AccuracyCheck
from mlsafety.audit.runner import AuditReport
from mlsafety.data import ImageDataset
from mlsafety.exceptions import InvalidParameterError
from mlsafety.models import Classifier
from mlsafety.report import wilson_interval


class _Lookup(torch.nn.Module):
    """Predicts the class stored in the first pixel (so predictions are chosen by the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(1, 1)  # unused; gives the model a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot((x[:, 0, 0, 0] * 2).round().long(), 3).float() * 5 - 1


def _planted(n: int = 40) -> tuple[AuditContext, int]:
    labels = torch.arange(n) % 3
    predicted = labels.clone()
    predicted[::4] = (predicted[::4] + 1) % 3  # every fourth prediction wrong
    images = torch.zeros(n, 1, 2, 2)
    images[:, 0, 0, 0] = predicted.float() / 2
    data = ImageDataset(images, labels, ["a", "b", "c"])
    return AuditContext(Classifier(_Lookup()), data), int((predicted == labels).sum())


def test_accuracy_carries_its_wilson_interval_and_data_line() -> None:
    context, correct = _planted()
    result = AccuracyCheck().run(context)
    low, high = wilson_interval(correct, 40)
    assert result.metrics["accuracy_low"] == pytest.approx(low)
    assert result.metrics["accuracy_high"] == pytest.approx(high)
    assert low < result.metrics["accuracy"] < high
    assert f"[{low:.1%}, {high:.1%}]" in result.summary
    assert result.data_note == f"all 40 images of {context.data.name}."


def test_quick_subset_is_named_in_the_data_line() -> None:
    context, _ = _planted(60)
    context.quick = True
    assert context.data_note(20, "attacks are costly") == (
        f"a seeded subset of 20 of the 60 images of {context.data.name} (--quick); attacks are costly.")


def test_warn_comes_with_a_next_step() -> None:
    context, _ = _planted()
    labels = context.data.labels
    images = context.data.images.clone()
    images[labels == 2, 0, 0, 0] = 0.0  # class c is never predicted: a silent failure
    context = AuditContext(context.classifier, ImageDataset(images, labels, ["a", "b", "c"]))
    result = AccuracyCheck().run(context)
    assert result.verdict == "warn" and "mlsafety train" in result.next_step


def _report(*verdicts: str) -> AuditReport:
    results = [CheckResult(f"c{i}", f"C{i}", v, "") for i, v in enumerate(verdicts)]  # type: ignore[arg-type]
    return AuditReport(results, {}, Path("r.json"), Path("r.html"))


def test_verdict_gate() -> None:
    assert _report("pass", "info", "skipped", "warn").verdicts_at_or_above("fail") == []
    assert _report("pass", "warn").verdicts_at_or_above("warn") == ["c1: warn"]
    assert _report("fail", "error", "warn").verdicts_at_or_above("fail") == ["c0: fail", "c1: error"]
    with pytest.raises(InvalidParameterError):
        _report("pass").verdicts_at_or_above("info")
