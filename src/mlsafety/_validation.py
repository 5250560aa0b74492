"""Input validation shared by every method: one place, one message style.

Each function raises an :class:`~mlsafety.exceptions.MLSafetyError` subclass whose
message names the offending argument, says what is wrong, and says how to fix it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch

from mlsafety.exceptions import (
    InvalidInputError,
    NotFittedError,
    ShapeError,
    parameter_error,
)


def check_images(x: Any, name: str = "x", *, allow_empty: bool = False) -> torch.Tensor:
    """Validate an image batch: a float tensor of shape (N, C, H, W) with values in [0, 1].

    Raises
    ------
    ShapeError
        If ``x`` is not 4-D or is empty.
    InvalidInputError
        If ``x`` is not a floating tensor, holds NaN/inf, or lies outside [0, 1]
        (a [0, 255] image gets a message that says to divide by 255).
    """
    if isinstance(x, np.ndarray):
        raise InvalidInputError(
            f"`{name}` must be a torch.Tensor; got a numpy array. "
            "Convert with torch.from_numpy(x).float() (and /255 for uint8 images)."
        )
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}.")
    if x.ndim != 4:
        raise ShapeError(
            f"`{name}` must have shape (N, C, H, W); got {tuple(x.shape)}. "
            + (
                "Add a batch dimension with x.unsqueeze(0)."
                if x.ndim == 3
                else "Reshape to (N, C, H, W); channels come first."
            )
        )
    if x.shape[0] == 0 and not allow_empty:
        raise ShapeError(f"`{name}` is empty (N = 0); pass at least one image.")
    if not x.is_floating_point():
        raise InvalidInputError(
            f"`{name}` must be a floating tensor in [0, 1]; got dtype {x.dtype}. "
            "Convert with x.float() / 255 for 8-bit images."
        )
    if x.numel() == 0:
        return x
    # one pass: min and max propagate NaN, and an infinity is an extreme (isfinite().all()
    # costs ten times as much on the CPU, which matters for cheap perturbations of big images)
    low, high = (float(v) for v in torch.aminmax(x))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InvalidInputError(f"`{name}` contains NaN or infinite values; clean the input.")
    if high > 1.0 + 1e-6:
        hint = " It looks like a [0, 255] image: divide by 255." if high > 2.0 else ""
        raise InvalidInputError(
            f"`{name}` must have values in [0, 1]; got max {high:.4g}.{hint} "
            "Normalisation belongs inside the model (Classifier(mean=..., std=...))."
        )
    if low < -1e-6:
        raise InvalidInputError(
            f"`{name}` must have values in [0, 1]; got min {low:.4g}. It looks normalised: "
            "pass raw pixels and give Classifier(mean=..., std=...) instead."
        )
    return x


def check_labels(y: Any, n_samples: int | None = None, n_classes: int | None = None,
                 name: str = "y") -> torch.Tensor:
    """Validate integer class labels of shape (N,) with values in [0, n_classes)."""
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(y)
    if not isinstance(y, torch.Tensor):
        raise InvalidInputError(f"`{name}` must be a torch.Tensor of labels; got {type(y).__name__}.")
    if y.ndim != 1:
        raise ShapeError(
            f"`{name}` must have shape (N,); got {tuple(y.shape)}. "
            "Pass class indices, not one-hot vectors (use y.argmax(1))."
        )
    if y.is_floating_point() or y.dtype == torch.bool:
        if y.is_floating_point() and bool((y == y.round()).all()):
            y = y.long()
        else:
            raise InvalidInputError(
                f"`{name}` must hold integer class indices; got dtype {y.dtype}."
            )
    y = y.long()
    if n_samples is not None and y.shape[0] != n_samples:
        raise ShapeError(f"`{name}` has {y.shape[0]} labels but there are {n_samples} samples.")
    if y.numel() and int(y.min()) < 0:
        raise InvalidInputError(f"`{name}` has a negative label ({int(y.min())}); labels must be >= 0.")
    if n_classes is not None and y.numel() and int(y.max()) >= n_classes:
        raise InvalidInputError(
            f"`{name}` has label {int(y.max())} but the model has {n_classes} classes "
            f"(valid labels are 0..{n_classes - 1}). Check the label mapping."
        )
    return y


def check_logits(logits: Any, name: str = "logits", n_classes: int | None = None) -> torch.Tensor:
    """Validate a (N, K) logit matrix; refuse probabilities passed where logits are expected."""
    if isinstance(logits, np.ndarray):
        logits = torch.from_numpy(logits)
    if not isinstance(logits, torch.Tensor):
        raise InvalidInputError(f"`{name}` must be a torch.Tensor; got {type(logits).__name__}.")
    if logits.ndim != 2:
        raise ShapeError(f"`{name}` must have shape (N, n_classes); got {tuple(logits.shape)}.")
    if logits.shape[0] == 0:
        raise ShapeError(f"`{name}` is empty (N = 0); pass at least one sample.")
    if n_classes is not None and logits.shape[1] != n_classes:
        raise ShapeError(f"`{name}` has {logits.shape[1]} columns; expected {n_classes} classes.")
    if not logits.is_floating_point():
        logits = logits.float()
    if not bool(torch.isfinite(logits).all()):
        raise InvalidInputError(f"`{name}` contains NaN or infinite values; check the model output.")
    if looks_like_probabilities(logits):
        raise InvalidInputError(
            f"`{name}` looks like probabilities (rows are non-negative and sum to 1), "
            "not logits. Pass the model's pre-softmax outputs, or torch.log(probs) if only "
            "probabilities are available."
        )
    return logits


def looks_like_probabilities(values: torch.Tensor, atol: float = 1e-4) -> bool:
    """True when every row of ``values`` is non-negative and sums to one (or is a log-prob row)."""
    if values.ndim != 2 or values.shape[1] < 2:
        return False
    values = values.detach().double()
    sums_to_one = bool(((values.sum(1) - 1).abs() < atol).all()) and bool((values >= 0).all())
    return sums_to_one


def check_fraction(value: Any, param: str, owner: str, *, low_inclusive: bool = False,
                   high_inclusive: bool = False) -> float:
    """Validate a number in (0, 1) (bounds optionally inclusive)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        low_ok = value >= 0 if low_inclusive else value > 0
        high_ok = value <= 1 if high_inclusive else value < 1
        ok = low_ok and high_ok
    if not ok:
        interval = ("[" if low_inclusive else "(") + "0, 1" + ("]" if high_inclusive else ")")
        raise parameter_error(param, owner, f"a number in {interval}", value)
    return float(value)


def check_positive(value: Any, param: str, owner: str, *, integer: bool = False,
                   allow_zero: bool = False) -> Any:
    """Validate a positive (or non-negative) int or float."""
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok:
        ok = value >= 0 if allow_zero else value > 0
    if not ok:
        what = "an integer" if integer else "a number"
        bound = ">= 0" if allow_zero else "> 0"
        raise parameter_error(param, owner, f"{what} {bound}", value)
    return value


def check_in(value: Any, allowed: Any, param: str, owner: str) -> Any:
    """Validate membership in a small set of allowed values."""
    if value not in allowed:
        raise parameter_error(param, owner, f"one of {sorted(allowed)!r}", value)
    return value


def check_is_fitted(estimator: Any, attributes: str | list[str]) -> None:
    """Raise :class:`NotFittedError` unless every attribute in ``attributes`` is set."""
    names = [attributes] if isinstance(attributes, str) else list(attributes)
    if not all(getattr(estimator, attr, None) is not None for attr in names):
        raise NotFittedError(
            f"This {type(estimator).__name__} is not fitted yet; call fit(...) before using it."
        )


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed`` (a fresh random seed if None)."""
    generator = torch.Generator(device=torch.device(device))
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator
