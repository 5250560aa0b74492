"""The in-memory image data set every mlsafety method consumes."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from mlsafety._validation import check_images, check_labels
from mlsafety.exceptions import InvalidInputError, parameter_error


@dataclass
class ImageDataset:
    """Images in [0, 1] of shape (N, C, H, W), integer labels (N,) and class names.

    Construction validates everything, so downstream code can trust the invariants.

    Examples
    --------
    >>> data = ImageDataset(torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 1, 0]), ["a", "b"])
    >>> train, test = data.split([0.5, 0.5], seed=0)
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    name: str = "dataset"
    metadata: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = check_images(self.images, "images", allow_empty=True)
        self.labels = check_labels(self.labels, self.images.shape[0], len(self.class_names), "labels")
        if len(self.class_names) < 1:
            raise InvalidInputError("`class_names` must name at least one class.")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: Sequence[int] | torch.Tensor, name: str | None = None) -> ImageDataset:
        """A new data set holding the rows ``indices`` (no copy of the class list)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        return ImageDataset(
            self.images[index], self.labels[index], list(self.class_names),
            name or self.name, dict(self.metadata),
        )

    def head(self, n: int, seed: int = 0) -> ImageDataset:
        """A seeded random subset of at most ``n`` samples (the whole set if smaller)."""
        if n >= len(self):
            return self
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(self), generator=generator)[:n].sort().values
        return self.subset(index)

    def split(self, fractions: Sequence[float], seed: int = 0) -> tuple[ImageDataset, ...]:
        """Deterministic random split into parts with the given fractions (summing to 1)."""
        if not fractions or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise parameter_error("fractions", "ImageDataset.split",
                                  "positive numbers summing to 1", list(fractions))
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=generator)
        bounds = [0]
        for fraction in fractions[:-1]:
            bounds.append(bounds[-1] + round(fraction * len(self)))
        bounds.append(len(self))
        return tuple(
            self.subset(order[start:stop].sort().values, f"{self.name}[{i}]")
            for i, (start, stop) in enumerate(itertools.pairwise(bounds))
        )

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images, labels) batches in order."""
        for start in range(0, len(self), batch_size):
            yield self.images[start:start + batch_size], self.labels[start:start + batch_size]

    def fingerprint(self) -> str:
        """A short content hash, used by the audit to decide whether a result can be reused."""
        digest = hashlib.sha256()
        digest.update(str(tuple(self.images.shape)).encode())
        digest.update(self.images.to(torch.float32).contiguous().numpy().tobytes())
        digest.update(self.labels.contiguous().numpy().tobytes())
        digest.update("|".join(self.class_names).encode())
        return digest.hexdigest()[:16]

    def describe(self) -> dict[str, object]:
        """A JSON-friendly summary (name, size, shape, classes)."""
        return {
            "name": self.name,
            "n_samples": len(self),
            "image_shape": list(self.image_shape),
            "n_classes": self.n_classes,
            "class_names": list(self.class_names),
        }
