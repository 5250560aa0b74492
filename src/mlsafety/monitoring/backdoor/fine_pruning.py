"""Fine-Pruning: prune the channels clean data leaves dormant, then fine-tune."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

from mlsafety._validation import check_fraction, check_positive
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError
from mlsafety.models.training import accuracy, train_classifier

if TYPE_CHECKING:
    from mlsafety.data.dataset import ImageDataset
    from mlsafety.models.classifier import Classifier


def last_conv_and_norm(module: nn.Module) -> tuple[nn.Conv2d, nn.BatchNorm2d | None]:
    """The last ``nn.Conv2d`` of ``module`` and the BatchNorm2d right after it (if any)."""
    modules = list(module.modules())
    positions = [i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
    if not positions:
        raise InvalidInputError("Fine-Pruning needs a convolutional model (no nn.Conv2d found).")
    conv = modules[positions[-1]]
    follower = modules[positions[-1] + 1] if positions[-1] + 1 < len(modules) else None
    norm = follower if isinstance(follower, nn.BatchNorm2d) and follower.num_features == conv.out_channels else None
    return conv, norm  # type: ignore[return-value]


class FinePruning(ParamsMixin):
    """Fine-Pruning of Liu, Dolan-Gavitt and Garg (2018), *Fine-Pruning: Defending Against
    Backdooring Attacks on Deep Neural Networks* (RAID).

    Backdoor behaviour often lives in channels of the last convolutional layer that clean
    inputs barely activate. The channels are ranked by their mean activation
    ``a_j = E_x[mean_{h,w} relu(z_j(x))]`` on clean data and pruned in increasing order
    (weights, and the following batch-norm's scale and shift, set to zero, so the channel
    outputs exactly zero) while the clean accuracy stays within ``max_accuracy_drop`` of
    the original; then the pruned network is fine-tuned on the clean data with the pruned
    channels held at zero.

    Parameters
    ----------
    max_accuracy_drop : float in (0, 1)
        Largest clean-accuracy loss that pruning may cause (measured on held-out clean data).
    prune_step : float in (0, 1)
        Fraction of channels added per pruning step.
    fine_tune_epochs : int
        Epochs of clean fine-tuning after pruning (0 skips it).
    batch_size : int
        Fine-tuning batch size.
    learning_rate : float
        Fine-tuning learning rate.
    seed : int

    Attributes
    ----------
    pruned_channels_ : list of int; prune_fraction_ : float; activations_ : (C,) mean activations.
    """

    def __init__(self, max_accuracy_drop: float = 0.05, prune_step: float = 0.05, fine_tune_epochs: int = 1,
                 batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 0) -> None:
        self.max_accuracy_drop = max_accuracy_drop
        self.prune_step = prune_step
        self.fine_tune_epochs = fine_tune_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed

    def apply(self, classifier: Classifier, clean: ImageDataset) -> Classifier:
        """Return a pruned, fine-tuned copy of ``classifier`` (the original is not modified).

        ``clean`` is split 80/20: the larger part ranks channels and fine-tunes, the
        smaller part measures the accuracy drop.
        """
        owner = type(self).__name__
        check_fraction(self.max_accuracy_drop, "max_accuracy_drop", owner)
        check_fraction(self.prune_step, "prune_step", owner)
        check_positive(self.fine_tune_epochs, "fine_tune_epochs", owner, integer=True, allow_zero=True)
        check_positive(self.learning_rate, "learning_rate", owner)
        check_positive(self.batch_size, "batch_size", owner, integer=True)
        tune, held_out = clean.split([0.8, 0.2], seed=self.seed)
        pruned = copy.deepcopy(classifier)
        conv, norm = last_conv_and_norm(pruned.module)
        watched = norm if norm is not None else conv
        captured: list[torch.Tensor] = []
        handle = watched.register_forward_hook(
            lambda _m, _i, out: captured.append(torch.relu(out).mean((2, 3)).detach()))
        try:
            pruned.predict_logits(tune.images)
        finally:
            handle.remove()
        self.activations_ = torch.cat(captured).mean(0).cpu()
        order = self.activations_.argsort()
        baseline = accuracy(pruned, held_out)
        original = {name: p.detach().clone() for name, p in pruned.module.state_dict().items()}
        n_channels = conv.out_channels
        step = max(1, round(self.prune_step * n_channels))
        kept = 0
        for count in range(step, n_channels, step):
            self._zero(conv, norm, order[:count])
            if baseline - accuracy(pruned, held_out) > self.max_accuracy_drop:
                break
            kept = count
        pruned.module.load_state_dict(original)
        channels = order[:kept]
        self._zero(conv, norm, channels)
        self.pruned_channels_ = [int(c) for c in channels]
        self.prune_fraction_ = kept / n_channels
        if self.fine_tune_epochs > 0 and kept > 0:
            masks = self._gradient_masks(conv, norm, channels)
            try:
                train_classifier(pruned, tune, epochs=self.fine_tune_epochs, batch_size=self.batch_size,
                                 learning_rate=self.learning_rate, weight_decay=0.0, seed=self.seed, progress=False)
            finally:
                for handle in masks:
                    handle.remove()
        elif self.fine_tune_epochs > 0:
            train_classifier(pruned, tune, epochs=self.fine_tune_epochs, batch_size=self.batch_size,
                             learning_rate=self.learning_rate, weight_decay=0.0, seed=self.seed, progress=False)
        pruned.module.train(classifier.module.training)
        return pruned

    @staticmethod
    @torch.no_grad()
    def _zero(conv: nn.Conv2d, norm: nn.BatchNorm2d | None, channels: torch.Tensor) -> None:
        conv.weight[channels] = 0
        if conv.bias is not None:
            conv.bias[channels] = 0
        if norm is not None:
            norm.weight[channels] = 0
            norm.bias[channels] = 0

    @staticmethod
    def _gradient_masks(conv: nn.Conv2d, norm: nn.BatchNorm2d | None, channels: torch.Tensor) -> list:
        """Hooks that zero the gradients of pruned channels, so fine-tuning keeps them at zero."""
        handles = []
        params = [conv.weight, conv.bias] + ([norm.weight, norm.bias] if norm is not None else [])
        for param in params:
            if param is None:
                continue
            keep = torch.ones(param.shape[0], device=param.device)
            keep[channels.to(param.device)] = 0
            shape = (-1,) + (1,) * (param.ndim - 1)
            handles.append(param.register_hook(lambda grad, keep=keep, shape=shape: grad * keep.view(shape)))
        return handles
