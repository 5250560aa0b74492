"""The shared base of truth probes: validation, train-only normalisation, save/load.

A probe maps hidden states to a truth score: ``fit(x, y) -> self``, ``score(x) -> (N,)`` with
**higher = more likely true**, ``predict(x) -> (N,)`` in {0, 1} from a fitted ``threshold_``.
``x`` is ``(N, d)``; contrast-pair probes (CCS) take ``(N, 2, d)``: the statement followed by
"True" and by "False". The standardisation (``mean_``, ``scale_``) is fitted on the training
features only and saved with the probe, so test data never leaks into it (a pitfall reported
against several published probe pipelines).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mlsafety._validation import check_is_fitted
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, ShapeError
from mlsafety.registry import Registry

PROBES: Registry[Any] = Registry("truth probe", "mlsafety.monitoring.honesty.probes")


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"`{name}` must be a torch.Tensor or numpy array; got {type(x).__name__}.")
    if not x.is_floating_point():
        raise InvalidInputError(f"`{name}` must hold floating-point features; got dtype {x.dtype}.")
    x = x.detach().to("cpu", torch.float32)
    if not torch.isfinite(x).all():
        raise InvalidInputError(f"`{name}` holds NaN or infinite values; check the activation extraction.")
    return x


class Probe:
    """Base class of truth probes (scikit-learn style; see the module docstring).

    Subclasses set ``pairs`` (input is ``(N, 2, d)``), ``supervised`` (labels used to train),
    and implement ``_fit(z, y)`` and ``_score(z)`` on standardised features.
    """

    pairs: ClassVar[bool] = False
    supervised: ClassVar[bool] = True
    registry_name: ClassVar[str] = ""
    _state: ClassVar[tuple[str, ...]] = ()  # fitted tensors saved besides mean_, scale_, threshold_

    mean_: torch.Tensor | None = None
    scale_: torch.Tensor | None = None
    threshold_: float | None = None

    def _validate_params(self) -> None:
        """Check hyperparameters (called by fit)."""

    def get_params(self) -> dict[str, Any]:
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def _check_x(self, x: Any, name: str = "x") -> torch.Tensor:
        x = _as_tensor(x, name)
        if self.pairs and (x.ndim != 3 or x.shape[1] != 2):
            raise ShapeError(
                f"`{name}` of {type(self).__name__} must have shape (N, 2, d): each statement followed by "
                f"'True' and by 'False'; got {tuple(x.shape)}. Use the 'pos' and 'neg' features of the honest view."
            )
        if not self.pairs and x.ndim != 2:
            raise ShapeError(f"`{name}` of {type(self).__name__} must have shape (N, d); got {tuple(x.shape)}.")
        if x.shape[0] == 0:
            raise ShapeError(f"`{name}` is empty; pass at least one statement.")
        if self.mean_ is not None and x.shape[-1] != self.mean_.shape[-1]:
            raise ShapeError(
                f"`{name}` has {x.shape[-1]} features but the probe was fitted on {self.mean_.shape[-1]}; "
                "use the same model and layer as in fit."
            )
        return x

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean_) / self.scale_

    def fit(self, x: Any, y: Any = None) -> Probe:
        """Fit the normalisation and the probe on training features ``x`` and labels ``y`` (1 = true)."""
        self._validate_params()
        self.mean_ = self.scale_ = None
        x = self._check_x(x)
        labels = None
        if y is not None or self.supervised:
            if y is None:
                raise InvalidInputError(f"{type(self).__name__} is supervised: pass labels y (1 = true, 0 = false).")
            labels = torch.as_tensor(np.asarray(y)).long().reshape(-1)
            if labels.shape[0] != x.shape[0]:
                raise ShapeError(f"`y` has {labels.shape[0]} labels for {x.shape[0]} statements; they must match.")
            if set(labels.unique().tolist()) != {0, 1}:
                raise InvalidInputError(
                    f"`y` must hold both classes 0 (false) and 1 (true); got {sorted(labels.unique().tolist())}. "
                    "Fit on statements of both classes."
                )
        if self.pairs:
            # each side standardised on its own (Burns et al. 2023): removes the "True"/"False" token direction
            self.mean_ = x.mean(0, keepdim=True)
            self.scale_ = (x - self.mean_).flatten(0, 1).std(0).clamp_min(1e-6)
        else:
            self.mean_ = x.mean(0)
            self.scale_ = x.std(0).clamp_min(1e-6)
        self._fit(self._normalise(x), labels)
        return self

    def score(self, x: Any) -> torch.Tensor:
        """Truth score, shape (N,): higher = more likely true."""
        check_is_fitted(self, ["mean_", "threshold_"])
        return self._score(self._normalise(self._check_x(x)))

    def predict(self, x: Any) -> torch.Tensor:
        """1 (true) where ``score > threshold_``, else 0."""
        return (self.score(x) > self.threshold_).long()

    def _fit(self, z: torch.Tensor, y: torch.Tensor | None) -> None:
        raise NotImplementedError

    def _score(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _set_threshold_midpoint(self, scores: torch.Tensor, y: torch.Tensor | None) -> None:
        """Threshold halfway between the class means of the training scores (median without labels)."""
        if y is None:
            self.threshold_ = float(scores.median())
        else:
            self.threshold_ = float((scores[y == 1].mean() + scores[y == 0].mean()) / 2)

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``<path>.safetensors`` (fitted tensors) and ``<path>.json`` (name, parameters, threshold)."""
        from safetensors.torch import save_file

        check_is_fitted(self, ["mean_", "threshold_"])
        base = Path(path)
        if base.suffix in (".safetensors", ".json"):
            base = base.with_suffix("")
        base.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"mean_": self.mean_, "scale_": self.scale_}
        tensors.update({name: getattr(self, name) for name in self._state})
        weights = base.with_suffix(".safetensors")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(weights))
        meta = {"probe": self.registry_name, "params": self.get_params(), "threshold": self.threshold_,
                "extra": getattr(self, "info_", {})}
        config = base.with_suffix(".json")
        config.write_text(json.dumps(meta, indent=2, default=str))
        return weights, config


def load_probe(path: str | Path) -> Probe:
    """Load a probe written by :meth:`Probe.save` (``path`` with or without the suffix)."""
    from safetensors.torch import load_file

    base = Path(path)
    if base.suffix in (".safetensors", ".json"):
        base = base.with_suffix("")
    config, weights = base.with_suffix(".json"), base.with_suffix(".safetensors")
    if not config.is_file() or not weights.is_file():
        raise DataNotFoundError(f"probe files {str(config)!r} and {str(weights)!r} not found; write them with "
                                "`mlsafety honesty probe` or Probe.save.")
    meta = json.loads(config.read_text())
    probe = PROBES.create(meta["probe"], **meta["params"])
    for name, tensor in load_file(str(weights)).items():
        setattr(probe, name, tensor)
    probe.threshold_ = float(meta["threshold"])
    probe.info_ = meta.get("extra", {})
    return probe
