"""Accuracy of a classifier under every corruption and severity (the data behind CE / mCE)."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mlsafety._validation import check_positive
from mlsafety.data.dataset import ImageDataset
from mlsafety.exceptions import parameter_error
from mlsafety.models.classifier import Classifier
from mlsafety.registry import CORRUPTIONS


def batch_seed(seed: int, name: str, severity: int, batch_index: int) -> int:
    """A stable seed per (seed, corruption, severity, batch), so batches get different noise
    and results do not depend on the order in which corruptions are run."""
    return zlib.crc32(f"{seed}/{name}/{severity}/{batch_index}".encode()) & 0x7FFFFFFF


def corrupt_dataset(images: torch.Tensor, name: str, severity: int, *, seed: int = 0, batch_size: int = 256,
                    resolution: str = "auto", device: str | torch.device | None = None,
                    first_batch: int = 0) -> Iterator[torch.Tensor]:
    """Yield corrupted batches of ``images`` (in order) for one corruption and severity.

    Batches are corrupted on ``device`` (default: where ``images`` are) and returned there.
    Batch ``i`` is seeded with :func:`batch_seed` ``(seed, name, severity, first_batch + i)``,
    so a run resumed at ``first_batch`` reproduces an uninterrupted one.
    """
    check_positive(batch_size, "batch_size", "corrupt_dataset", integer=True)
    cls = CORRUPTIONS.get(name)
    for index, start in enumerate(range(0, len(images), batch_size)):
        batch = images[start:start + batch_size]
        if device is not None:
            batch = batch.to(device)
        batch_seed_value = batch_seed(seed, name, severity, first_batch + index)
        corruption = cls(severity=severity, seed=batch_seed_value, resolution=resolution)
        yield corruption(batch)


@dataclass
class CorruptionResult:
    """Accuracy per corruption and severity, and on clean data.

    Attributes
    ----------
    accuracy : dict name -> array (n_severities,), in the order of ``severities``.
    severities : the severities evaluated.
    clean_accuracy : accuracy on the uncorrupted images.
    n_samples : images per (corruption, severity).
    """

    accuracy: dict[str, np.ndarray]
    severities: list[int]
    clean_accuracy: float
    n_samples: int
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def clean_error(self) -> float:
        return 1.0 - self.clean_accuracy

    def errors(self) -> dict[str, np.ndarray]:
        """Top-1 error per corruption and severity (``1 - accuracy``)."""
        return {name: 1.0 - acc for name, acc in self.accuracy.items()}

    def mean_accuracy(self) -> float:
        """Accuracy averaged over all corruptions and severities."""
        return float(np.mean([acc.mean() for acc in self.accuracy.values()]))

    def matrix(self) -> np.ndarray:
        """(n_corruptions, n_severities) accuracy matrix, rows in ``accuracy``'s order."""
        return np.stack([self.accuracy[name] for name in self.accuracy])

    def to_dict(self) -> dict[str, object]:
        return {"severities": self.severities, "clean_accuracy": self.clean_accuracy,
                "n_samples": self.n_samples, "accuracy": {k: v.tolist() for k, v in self.accuracy.items()}}


def evaluate_corruptions(
    classifier: Classifier,
    data: ImageDataset,
    names: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    *,
    seed: int = 0,
    batch_size: int = 256,
    resolution: str = "auto",
    progress: Callable[[str, int], None] | None = None,
) -> CorruptionResult:
    """Top-1 accuracy of ``classifier`` on ``data`` under each corruption at each severity.

    Parameters
    ----------
    names : corruption names (default: the 15 benchmark corruptions).
    severities : subset of 1..5.
    seed : base seed; each (corruption, severity, batch) gets its own derived seed.
    progress : optional callback ``progress(name, severity)`` called after each cell.

    Returns
    -------
    CorruptionResult
    """
    from mlsafety.robustness.corruptions import corruption_names

    names = list(names) if names is not None else corruption_names("benchmark")
    for name in names:
        CORRUPTIONS.get(name)
    severities = [int(s) for s in severities]
    if not severities or any(s not in (1, 2, 3, 4, 5) for s in severities):
        raise parameter_error("severities", "evaluate_corruptions", "a non-empty subset of 1..5", severities)
    labels = data.labels
    clean = float((classifier.predict(data.images).cpu() == labels.cpu()).float().mean())
    accuracy: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for name in names:
        start = time.perf_counter()
        row = []
        for severity in severities:
            correct = 0
            offset = 0
            for batch in corrupt_dataset(data.images, name, severity, seed=seed, batch_size=batch_size,
                                         resolution=resolution):
                predicted = classifier.predict(batch).cpu()
                correct += int((predicted == labels[offset:offset + len(batch)].cpu()).sum())
                offset += len(batch)
            row.append(correct / len(data))
            if progress is not None:
                progress(name, severity)
        accuracy[name] = np.asarray(row)
        seconds[name] = time.perf_counter() - start
    return CorruptionResult(accuracy, severities, clean, len(data), seconds)
