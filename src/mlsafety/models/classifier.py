"""The :class:`Classifier` wrapper every method receives."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from mlsafety._validation import check_images, looks_like_probabilities
from mlsafety.exceptions import InvalidInputError, MLSafetyWarning, ShapeError, parameter_error


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as a layer, so attacks act in pixel space."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if any(s <= 0 for s in std):
            raise parameter_error("std", "Normalize", "positive per channel", list(std))
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def _has_mode_dependent_layers(module: nn.Module) -> bool:
    mode_dependent = (nn.Dropout, nn.Dropout2d, nn.Dropout1d, nn.AlphaDropout,
                      nn.modules.batchnorm._BatchNorm)
    return any(isinstance(m, mode_dependent) for m in module.modules())


class Classifier:
    """Wraps an ``nn.Module`` that maps images in [0, 1] (after normalisation) to logits.

    The wrapper adds what every safety method needs: normalisation inside the model,
    batched no-grad inference, penultimate features, and a context manager that puts the
    module in eval mode on a device and restores its mode and device afterwards.

    Parameters
    ----------
    module : nn.Module
        Returns logits of shape (N, n_classes) for inputs (N, C, H, W).
    mean, std : per-channel normalisation applied before ``module``; None for identity.
    class_names : names of the output classes (defaults to "0", "1", ...).
    input_shape : (C, H, W) the model expects; used for validation and the model card.
    batch_size : batch size for inference.
    device : where to run; by default the device of the module's parameters.
    feature_layer : name of the module whose output is the feature vector; by default the
        input of the last ``nn.Linear`` (the penultimate representation).
    name : a display name (architecture) for reports.

    Examples
    --------
    >>> clf = Classifier(net, mean=[0.286], std=[0.353], input_shape=(1, 28, 28))
    >>> logits = clf.predict_logits(images)          # (N, K), no grad, eval mode
    >>> feats, logits = clf.features(images)          # penultimate features
    """

    #: (parameter, original data) while :meth:`channels_last` is active, else None
    _layout_weights: list[tuple[nn.Parameter, torch.Tensor]] | None = None
    #: whether a channels-last forward pass has succeeded since the layout was entered
    _layout_verified: bool = False
    _layout_unsupported: bool = False

    def __init__(
        self,
        module: nn.Module,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
        input_shape: Sequence[int] | None = None,
        batch_size: int = 256,
        device: str | torch.device | None = None,
        feature_layer: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise InvalidInputError(
                f"`module` must be a torch.nn.Module returning logits; got {type(module).__name__}."
            )
        if batch_size < 1:
            raise parameter_error("batch_size", "Classifier", "an integer >= 1", batch_size)
        self.module = module
        self.normalize = Normalize(mean, std) if mean is not None and std is not None else None
        self.class_names = list(class_names) if class_names is not None else None
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.batch_size = int(batch_size)
        self.feature_layer = feature_layer
        self.name = name or type(module).__name__
        self.metadata = dict(metadata or {})
        self._device = torch.device(device) if device is not None else None
        if feature_layer is not None and feature_layer not in dict(module.named_modules()):
            raise parameter_error("feature_layer", "Classifier", "the name of a submodule",
                                  feature_layer, "See dict(module.named_modules()).keys().")
        if module.training and _has_mode_dependent_layers(module):
            warnings.warn(
                "the model is in train mode and has dropout/batch-norm layers; mlsafety evaluates "
                "it in eval mode (call model.eval() to silence this warning).",
                MLSafetyWarning, stacklevel=2,
            )

    # -- devices and modes ---------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The device inference runs on."""
        if self._device is not None:
            return self._device
        for tensor in self.module.parameters():
            return tensor.device
        for tensor in self.module.buffers():
            return tensor.device
        return torch.device("cpu")

    @property
    def n_classes(self) -> int | None:
        return len(self.class_names) if self.class_names is not None else None

    @contextmanager
    def evaluating(self) -> Iterator[Classifier]:
        """Put the module in eval mode on ``self.device``; restore mode and device on exit."""
        was_training = self.module.training
        original_device = next((p.device for p in self.module.parameters()), None)
        target = self.device
        if original_device is not None and original_device != target:
            self.module.to(target)
        if self.normalize is not None:
            self.normalize.to(target)
        self.module.eval()
        try:
            yield self
        finally:
            self.module.train(was_training)
            if original_device is not None and original_device != target:
                self.module.to(original_device)

    @contextmanager
    def channels_last(self) -> Iterator[bool]:
        """Run a convolutional model in the channels-last layout on the CPU for the duration.

        On the CPU, oneDNN's convolutions, batch norms and max pools run faster on channels-last
        tensors: batched inference measured 1.9x faster for the default SmallCNN and 1.3x for the
        PreAct-ResNet, a forward+backward pass of a 128-image batch 1.3x and 1.25x (medians of
        seven runs, ``benchmarks/layout.py``; BENCHMARKS.md, "Models"). The convolution weights are
        converted in place (``parameter.data``, so references to the parameters stay valid) and
        restored on exit; inputs of :meth:`forward` are converted. The logits agree with the
        model's own layout to rounding (a few 1e-6 on the default model). Yields whether the
        layout is in use: only on the CPU, for modules with 4-D weights. A model that cannot
        run channels-last (one that calls ``.view`` on a feature map) falls back to its own
        layout at its first forward pass. Re-entrant.
        """
        if self._layout_weights is not None or self.device.type != "cpu" or self._layout_unsupported:
            yield self._layout_weights is not None
            return
        parameters = list(self.module.parameters())
        # lazy modules (``nn.LazyConv2d``) get their weights in their first forward pass: run
        # that one in the model's own layout
        weights = [] if any(is_lazy(p) for p in parameters) else [p for p in parameters if p.dim() == 4]
        if not weights:
            yield False
            return
        self._layout_weights = [(p, p.data) for p in weights]
        self._layout_verified = False
        for parameter in weights:
            # ``to`` restrides also where the layouts coincide (one input channel), ``contiguous`` does not
            parameter.data = parameter.data.to(memory_format=torch.channels_last)
        try:
            yield True
        finally:
            self._restore_layout()

    def _restore_layout(self) -> None:
        for parameter, data in self._layout_weights or ():
            parameter.data = data
        self._layout_weights = None

    def to(self, device: str | torch.device) -> Classifier:
        """Run future inference on ``device`` (the module is moved only during calls)."""
        self._device = torch.device(device)
        return self

    # -- forward passes ------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable logits of a batch already on the right device (no mode change)."""
        if self._layout_weights is not None and x.dim() == 4:
            try:
                output = self._logits(x.contiguous(memory_format=torch.channels_last))
            except Exception:  # whatever a model raises on a layout it does not expect
                if self._layout_verified:
                    raise
                # e.g. ``.view`` of a channels-last feature map, or a model that asserts
                # ``x.is_contiguous()``: run in the model's own layout,
                # now and (if that works, so the input was not at fault) in later calls
                self._restore_layout()
                output = self._logits(x)
                self._layout_unsupported = True
            self._layout_verified = True
        else:
            output = self._logits(x)
        if not isinstance(output, torch.Tensor):
            raise InvalidInputError(
                f"the model returns a {type(output).__name__}, not a tensor of logits; wrap it so that forward "
                "returns only the (N, n_classes) logits (e.g. lambda x: model(x)[0])."
            )
        return output

    def _logits(self, x: torch.Tensor) -> Any:
        return self.module(self.normalize(x) if self.normalize is not None else x)

    __call__ = forward

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(
                f"images have shape {tuple(x.shape[1:])} but the model expects {self.input_shape}; "
                "resize or convert the data (e.g. grayscale vs RGB)."
            )
        return x

    @torch.no_grad()
    def predict_logits(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Logits (N, K) in eval mode without gradients, computed batch by batch.

        The result is on the same device as ``x``.
        """
        x = self._check_input(x)
        size = batch_size or self.batch_size
        with self.evaluating(), self.channels_last():
            outputs = [self.forward(batch.to(self.device)).float().to(x.device)
                       for batch in x.split(size)]
        return torch.cat(outputs)

    def predict(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Predicted class indices (N,)."""
        return self.predict_logits(x, batch_size).argmax(1)

    def feature_module(self) -> nn.Module:
        """The module whose input (default) or output (``feature_layer``) gives features."""
        modules = dict(self.module.named_modules())
        if self.feature_layer is not None:
            return modules[self.feature_layer]
        return self.head

    @property
    def head(self) -> nn.Linear:
        """The last ``nn.Linear`` layer (the classification head)."""
        linears = [m for m in self.module.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise InvalidInputError(
                "the model has no nn.Linear layer, so penultimate features are undefined; "
                "pass feature_layer='<module name>' to Classifier."
            )
        return linears[-1]

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable (features, logits) for a batch on the right device."""
        captured: list[torch.Tensor] = []
        layer = self.feature_module()
        if self.feature_layer is None:
            handle = layer.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0]))
        else:
            handle = layer.register_forward_hook(lambda _m, _i, output: captured.append(output))
        try:
            logits = self.forward(x)
        finally:
            handle.remove()
        if not captured:
            raise InvalidInputError("the feature layer was not called during forward; check feature_layer.")
        return captured[-1].flatten(1), logits

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features (N, D) and logits (N, K) in one batched no-grad pass."""
        x = self._check_input(x)
        size = batch_size or self.batch_size
        features, logits = [], []
        with self.evaluating(), self.channels_last():
            for batch in x.split(size):
                f, out = self.forward_with_features(batch.to(self.device))
                features.append(f.float().to(x.device))
                logits.append(out.float().to(x.device))
        return torch.cat(features), torch.cat(logits)

    # -- checks and descriptions ---------------------------------------------------------
    def validate_outputs(self, x: torch.Tensor) -> int:
        """Run a small batch and refuse outputs that are not a finite (N, K) logit matrix.

        Returns
        -------
        int
            The number of outputs (classes) of the model.

        Raises
        ------
        ShapeError
            If the model cannot run on images of this shape, or returns the wrong shape.
        InvalidInputError
            If the outputs hold NaN, or look like probabilities (a softmax at the end of
            the model breaks attacks and detectors).
        """
        check_images(x)
        if self.normalize is not None and self.normalize.mean.numel() != x.shape[1]:
            raise ShapeError(
                f"the model's normalisation has {self.normalize.mean.numel()} channel(s) but the images have "
                f"{x.shape[1]}; give per-channel statistics for {x.shape[1]} channel(s) (--normalization)."
            )
        try:
            logits = self.predict_logits(x[:16])
        except InvalidInputError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            first = " ".join(str(error).split())[:200]
            raise ShapeError(
                f"the model fails on images of shape {tuple(x.shape[1:])}: {first}. Check that the data matches "
                "the model (image size, grayscale vs RGB)."
            ) from error
        if logits.ndim != 2:
            raise ShapeError(f"the model must return (N, n_classes) logits; got shape {tuple(logits.shape)}.")
        if logits.shape[0] != min(16, x.shape[0]):
            raise ShapeError(f"the model returned {logits.shape[0]} rows for {min(16, x.shape[0])} images.")
        if self.n_classes is not None and logits.shape[1] != self.n_classes:
            raise ShapeError(
                f"the model returns {logits.shape[1]} outputs but {self.n_classes} class names were given."
            )
        if not bool(torch.isfinite(logits).all()):
            raise InvalidInputError("the model returns NaN or infinite logits on valid images.")
        if looks_like_probabilities(logits):
            raise InvalidInputError(
                "the model returns probabilities (rows sum to 1), not logits; remove the final "
                "softmax, or wrap it so that it returns log-probabilities."
            )
        return int(logits.shape[1])

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def fingerprint(self) -> str:
        """A short hash of the weights and normalisation (used for audit resume)."""
        digest = hashlib.sha256(self.name.encode())
        for key, tensor in sorted(self.module.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).to(torch.float64).numpy().tobytes())
        if self.normalize is not None:
            digest.update(self.normalize.mean.numpy().tobytes() + self.normalize.std.numpy().tobytes())
        return digest.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly model card."""
        card: dict[str, Any] = {
            "name": self.name,
            "n_parameters": self.n_parameters(),
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "n_classes": self.n_classes,
            "normalisation": None if self.normalize is None else {
                "mean": self.normalize.mean.flatten().tolist(),
                "std": self.normalize.std.flatten().tolist(),
            },
        }
        card.update(self.metadata)
        return card

    def __repr__(self) -> str:
        return f"Classifier({self.name}, n_parameters={self.n_parameters()}, device={self.device})"
