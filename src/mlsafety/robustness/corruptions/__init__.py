"""The common-corruption benchmark (ImageNet-C / CIFAR-10-C), batched in torch.

Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR. Fifteen benchmark corruptions in four families
(noise, blur, weather, digital) and four held-out ones, each at severities 1-5, each a
:class:`~mlsafety.base.Perturbation` registered in :data:`~mlsafety.registry.CORRUPTIONS`::

    from mlsafety.registry import CORRUPTIONS
    foggy = CORRUPTIONS.get("fog")(severity=3, seed=0)(images)   # (N, C, H, W) in [0, 1]
"""

from __future__ import annotations

from mlsafety._validation import check_in
from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions._base import Corruption
from mlsafety.robustness.corruptions.evaluate import CorruptionResult, corrupt_dataset, evaluate_corruptions
from mlsafety.robustness.corruptions.severity import SEVERITY_TABLES, resolution_class

BENCHMARK_ORDER = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
"""The 15 benchmark corruptions in the paper's order (noise, blur, weather, digital)."""

HOLDOUT_ORDER = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""The 4 held-out corruptions (for validation/tuning; not part of mCE)."""


def corruption_names(group: str = "benchmark") -> list[str]:
    """Names of the corruptions in ``group``: ``"benchmark"`` (15, paper order),
    ``"holdout"`` (4) or ``"all"`` (19: benchmark then held-out).

    Raises
    ------
    InvalidParameterError
        For any other ``group``.
    """
    check_in(group, {"benchmark", "holdout", "all"}, "group", "corruption_names")
    registered = set(CORRUPTIONS.names())
    benchmark = [name for name in BENCHMARK_ORDER if name in registered]
    holdout = [name for name in HOLDOUT_ORDER if name in registered]
    extra = sorted(registered - set(BENCHMARK_ORDER) - set(HOLDOUT_ORDER))
    benchmark += [n for n in extra if CORRUPTIONS.metadata(n).get("group") == "benchmark"]
    holdout += [n for n in extra if CORRUPTIONS.metadata(n).get("group") == "holdout"]
    return {"benchmark": benchmark, "holdout": holdout, "all": benchmark + holdout}[group]


__all__ = [
    "BENCHMARK_ORDER",
    "HOLDOUT_ORDER",
    "SEVERITY_TABLES",
    "Corruption",
    "CorruptionResult",
    "corrupt_dataset",
    "corruption_names",
    "evaluate_corruptions",
    "resolution_class",
]
