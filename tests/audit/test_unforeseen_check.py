"""The 'unforeseen' audit check: registered, its metrics and report parts, a warning for a
gradient-masked model, and not applicable to images too small for the attacks."""

from __future__ import annotations

import torch
from torch import nn

from mlsafety.audit import AuditContext
from mlsafety.audit.checks.unforeseen import UnforeseenCheck
from mlsafety.data import ImageDataset
from mlsafety.models import Classifier
from mlsafety.registry import CHECKS

OPTIONS = {"unforeseen": {"attacks": ["jpeg", "fog", "prison"], "n_samples": 16}}


class _Quantise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 3) / 3


def test_quick_check_reports_ua2_spatial_and_patch(tiny_classifier, digits_splits) -> None:
    assert CHECKS.get("unforeseen") is UnforeseenCheck
    context = AuditContext(tiny_classifier, digits_splits["test"], validation=digits_splits["validation"], quick=True,
                           options=OPTIONS)
    result = UnforeseenCheck().run(context)
    metrics = result.metrics
    assert {"ua2", "worst_attack_accuracy", "spatial_accuracy", "patch_success_rate", "clean_accuracy"} <= set(metrics)
    assert 0 <= metrics["worst_attack_accuracy"] <= metrics["ua2"] <= metrics["clean_accuracy"]
    assert 0 <= metrics["patch_success_rate"] <= 1
    assert result.verdict in ("pass", "warn") and metrics["sanity_failures"] == 0
    assert [row[0] for row in result.tables[0].rows] == OPTIONS["unforeseen"]["attacks"]
    assert len(result.figures) == 2 and result.figures[1].png_base64
    # UA2's interval: a bootstrap over the images of the per-image mean over attacks
    low, high = result.details["ua2_interval"]
    assert low <= metrics["ua2"] <= high and high - low > 0
    assert f"UA2 {metrics['ua2']:.1%} [{low:.1%}, {high:.1%}]" in result.summary


def test_masked_model_gets_a_warning(tiny_classifier, digits_splits) -> None:
    module = nn.Sequential(_Quantise(), tiny_classifier.normalize, tiny_classifier.module).eval()
    masked = Classifier(module, class_names=tiny_classifier.class_names, input_shape=(1, 16, 16), name="masked")
    options = {"unforeseen": {"attacks": ["jpeg", "prison"], "n_samples": 16}}
    context = AuditContext(masked, digits_splits["test"], quick=True, options=options)
    result = UnforeseenCheck().run(context)
    assert result.verdict == "warn" and result.metrics["sanity_failures"] >= 1
    assert any("gradient" in warning for warning in result.warnings)


def test_not_applicable_to_tiny_images(tiny_classifier) -> None:
    data = ImageDataset(torch.zeros(4, 1, 4, 4), torch.zeros(4, dtype=torch.long), [str(i) for i in range(10)])
    assert "too small" in UnforeseenCheck().not_applicable(AuditContext(tiny_classifier, data))
