"""The :class:`Corruption` base class: severity validation, table lookup, seeding, dtype handling."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from mlsafety.base import Perturbation
from mlsafety.exceptions import parameter_error
from mlsafety.robustness.corruptions.severity import RESOLUTIONS, severity_parameters

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


class Corruption(Perturbation):
    """A common corruption of the ImageNet-C benchmark at one severity (batched, seeded).

    Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common
    Corruptions and Perturbations", ICLR.

    Parameters
    ----------
    severity : int
        1 (mildest) to 5 (strongest), the benchmark's five levels.
    seed : int or None
        Seed of the random draws; every call is reseeded, so equal seeds give equal
        outputs for equal inputs. None draws fresh randomness on each call. Vary the seed
        between batches (``seed=base + batch_index``) so that batches get different noise.
    resolution : {"auto", "cifar", "tiny_imagenet", "imagenet"}
        Which published severity table to use; ``auto`` picks it from the image size
        (see :func:`~mlsafety.robustness.corruptions.severity.resolution_class`).

    Notes
    -----
    Inputs are (N, C, H, W) float tensors in [0, 1] on any device; the output has the same
    shape, device and dtype. Computation runs in float32. Colour-dependent corruptions
    treat one-channel images as gray RGB and convert back with the BT.601 luma weights;
    other channel counts are corrupted channel by channel as gray images.
    """

    group: ClassVar[str] = "benchmark"
    chunk_elements: ClassVar[int | None] = None
    """On the CPU, corrupt images in groups of about this many values (None: all at once);
    set per corruption where it measured faster."""
    chunk_below_pixels: ClassVar[int | None] = None
    """Chunk only images of fewer pixels than this (None: any size), for corruptions whose
    method for large images already works image by image."""
    bounded: ClassVar[bool] = False
    """True where ``_corrupt`` already returns values in [0, 1] (no clamping pass over the result)."""

    def __init__(self, severity: int = 3, seed: int | None = 0, resolution: str = "auto") -> None:
        self.severity = severity
        self.seed = seed
        self.resolution = resolution
        self._validate_parameters()

    def _validate_parameters(self) -> None:
        owner = type(self).__name__
        if (not isinstance(self.severity, numbers.Integral) or isinstance(self.severity, bool)
                or not 1 <= self.severity <= 5):
            raise parameter_error("severity", owner, "an integer in 1..5", self.severity,
                                  "1 is the mildest and 5 the strongest level of the benchmark.")
        if self.seed is not None and (not isinstance(self.seed, numbers.Integral) or isinstance(self.seed, bool)):
            raise parameter_error("seed", owner, "an integer or None", self.seed)
        if self.resolution != "auto" and self.resolution not in RESOLUTIONS:
            raise parameter_error("resolution", owner, f"'auto' or one of {list(RESOLUTIONS)}", self.resolution)

    def parameters_for(self, height: int, width: int) -> Any:
        """The severity-table entry used for images of this size."""
        return severity_parameters(self.registry_name, int(self.severity), self.resolution, height, width)

    def perturb(self, x: torch.Tensor, y: torch.Tensor | None = None,
                classifier: Classifier | None = None) -> torch.Tensor:
        # ``__call__`` has validated ``x``; direct calls to ``perturb`` are trusted (no extra passes)
        self._validate_parameters()
        generator = self._generator(x.device)
        params = self.parameters_for(x.shape[-2], x.shape[-1])
        # one copy of a permuted (e.g. channels-last) input is far cheaper than strided filters
        source = x.float().contiguous()
        per_image = source[0].numel()
        whole = (source.device.type != "cpu" or not self.chunk_elements or per_image * len(x) <= self.chunk_elements
                 or (self.chunk_below_pixels is not None and x.shape[-2] * x.shape[-1] >= self.chunk_below_pixels))
        if whole:
            out = self._corrupt(source, params, generator)
            if out.untyped_storage().data_ptr() == source.untyped_storage().data_ptr():
                out = out.clone()  # never clamp the caller's tensor in place
            # in place: a fresh full-size tensor costs page faults on the CPU
            return (out if self.bounded else out.clamp_(0, 1)).to(x.dtype)
        # On the CPU, corrupting a few images at a time keeps every temporary in the cache
        # and lets the allocator reuse their memory (measured 2x on shot noise, 224 px).
        out = torch.empty_like(source)
        step = max(1, self.chunk_elements // per_image)
        for start in range(0, len(x), step):
            piece = self._corrupt(source[start:start + step], params, generator)
            if self.bounded:
                out[start:start + step].copy_(piece)
            else:
                torch.clamp(piece, 0, 1, out=out[start:start + step])
        return out.to(x.dtype)

    def _corrupt(self, x: torch.Tensor, params: Any, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


def per_channel_gray(function: Any, x: torch.Tensor, *args: Any) -> torch.Tensor:
    """Apply a colour-aware ``function(x_rgb_or_gray, *args)`` to images with C not in {1, 3}
    by treating every channel as a gray image."""
    n, c, h, w = x.shape
    return function(x.reshape(n * c, 1, h, w), *args).reshape(n, c, h, w)
