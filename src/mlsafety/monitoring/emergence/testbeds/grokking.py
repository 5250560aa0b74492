"""Grokking on modular addition with Nanda et al.'s progress measures.

Power, Burda, Edwards, Babuschkin & Misra (2022), "Grokking: Generalization beyond overfitting on
small algorithmic datasets"; Nanda, Chan, Lieberum, Smith & Steinhardt (2023), "Progress measures
for grokking via mechanistic interpretability", ICLR. The setup follows Nanda et al.: inputs
``a b =`` with ``a, b`` in ``[0, p)``, target ``(a + b) mod p``, a one-layer transformer without
LayerNorm (d_model 128, 4 heads, d_mlp 512, ReLU), full-batch AdamW (lr 1e-3, weight decay 1,
betas (0.9, 0.98)), 30 % of all pairs for training. Their reference curve for p = 113: train loss
below 0.01 by about epoch 300, a test-loss peak near epoch 1,400, test loss below 1 near 13,800.

Only the logits at the ``=`` position are used, and in a one-layer model they depend on the
attention output and MLP at that position alone, so the MLP runs on that position only (a third
of the work, the same function).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mlsafety.exceptions import parameter_error
from mlsafety.monitoring.emergence.testbeds.progress import progress_measures


class OneLayerTransformer(nn.Module):
    """Nanda et al.'s one-layer, LayerNorm-free transformer for ``a b =`` -> ``(a + b) mod p``.

    Parameters
    ----------
    p : int
        The modulus (also the number of output classes); the vocabulary is ``p + 1`` (``=``).
    d_model, n_heads, d_mlp : int
        Width, heads and MLP width (128, 4, 512 in the paper).
    """

    def __init__(self, p: int, d_model: int = 128, n_heads: int = 4, d_mlp: int = 512) -> None:
        super().__init__()
        self.p, self.d_model, self.n_heads, self.d_mlp = p, d_model, n_heads, d_mlp
        scale = 1.0 / math.sqrt(d_model)
        # Gaussian initialisation scaled by 1/sqrt(d_model), as in the paper's code description
        self.embed = nn.Parameter(torch.randn(p + 1, d_model) * scale)
        self.position = nn.Parameter(torch.randn(3, d_model) * scale)
        self.query = nn.Parameter(torch.randn(d_model, d_model) * scale)
        self.key = nn.Parameter(torch.randn(d_model, d_model) * scale)
        self.value = nn.Parameter(torch.randn(d_model, d_model) * scale)
        self.output = nn.Parameter(torch.randn(d_model, d_model) * scale)
        self.mlp_in = nn.Parameter(torch.randn(d_model, d_mlp) * scale)
        self.mlp_in_bias = nn.Parameter(torch.zeros(d_mlp))
        self.mlp_out = nn.Parameter(torch.randn(d_mlp, d_model) * scale)
        self.mlp_out_bias = nn.Parameter(torch.zeros(d_model))
        self.unembed = nn.Parameter(torch.randn(d_model, p) / math.sqrt(p))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, p)`` at the ``=`` position for operand tensors ``a`` and ``b`` of shape (N,)."""
        equals = torch.full_like(a, self.p)
        residual = self.embed[torch.stack([a, b, equals], 1)] + self.position  # (N, 3, d)
        n, d, h = residual.shape[0], self.d_model, self.n_heads
        head = d // h
        query = (residual[:, 2] @ self.query).view(n, h, head)  # only the '=' position queries
        keys = (residual @ self.key).view(n, 3, h, head)
        values = (residual @ self.value).view(n, 3, h, head)
        weights = torch.softmax(torch.einsum("nhe,nshe->nhs", query, keys) / math.sqrt(head), dim=-1)
        attended = torch.einsum("nhs,nshe->nhe", weights, values).reshape(n, d)
        stream = residual[:, 2] + attended @ self.output
        hidden = torch.relu(stream @ self.mlp_in + self.mlp_in_bias)
        stream = stream + hidden @ self.mlp_out + self.mlp_out_bias
        return stream @ self.unembed


@dataclass
class GrokkingResult:
    """Curves of one grokking run (every ``eval_every`` epochs) and its progress measures.

    ``curves`` maps a name (``train_loss``, ``test_loss``, ``train_accuracy``, ``test_accuracy``,
    ``restricted_loss``, ``excluded_loss``, ``gini_embedding``, ...) to a list aligned with ``epochs``.
    """

    p: int
    epochs: list[int]
    curves: dict[str, list[float]]
    key_frequencies: list[int]
    settings: dict[str, Any]
    seconds: float
    milestones: dict[str, int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"p": self.p, "epochs": self.epochs, "curves": self.curves, "key_frequencies": self.key_frequencies,
                "settings": self.settings, "seconds": self.seconds, "milestones": self.milestones}


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # float64 log-softmax: at train losses near 1e-7 float32 rounding makes the loss spike
    return nn.functional.cross_entropy(logits.double(), target)


def first_epoch(epochs: list[int], values: list[float], predicate: Callable[[float], bool]) -> int | None:
    """The first epoch whose value satisfies ``predicate`` (None if none does)."""
    for epoch, value in zip(epochs, values, strict=True):
        if predicate(value):
            return epoch
    return None


def train_grokking(p: int = 113, *, n_epochs: int = 20000, train_fraction: float = 0.3, d_model: int = 128,
                   n_heads: int = 4, d_mlp: int = 512, learning_rate: float = 1e-3, weight_decay: float = 1.0,
                   eval_every: int = 100, n_key_frequencies: int = 5, seed: int = 0,
                   time_budget_s: float | None = None,
                   callback: Callable[[GrokkingResult], None] | None = None) -> GrokkingResult:
    """Train the one-layer transformer on ``(a + b) mod p`` and record curves and progress measures.

    Parameters
    ----------
    p : int
        Modulus (113 in the paper; small primes such as 23 make a test-sized run).
    n_epochs : int
        Full-batch steps (the paper trains 40,000).
    train_fraction : float
        Fraction of the ``p**2`` pairs used for training (0.3).
    eval_every : int
        Epochs between evaluations and weight snapshots (for the progress measures).
    n_key_frequencies : int
        How many Fourier frequencies count as key (the largest in the final model's logits).
    time_budget_s : float, optional
        Stop early (and still compute the measures) when training has taken this many seconds.
    callback : callable, optional
        Called with the partial result (no progress measures yet) after each evaluation, e.g. to
        write it to disk.

    Returns
    -------
    GrokkingResult
        The curves at every evaluated epoch, the key frequencies and the milestone epochs
        (train loss < 0.01, test-loss peak, test loss < 1, test accuracy > 0.5, and the first epoch
        at which each progress measure has made 10 % of its total move).
    """
    owner = "train_grokking"
    if not isinstance(p, int) or p < 5:
        raise parameter_error("p", owner, "an integer >= 5", p, "Use a prime such as 23, 59 or 113.")
    if not 0.0 < train_fraction < 1.0:
        raise parameter_error("train_fraction", owner, "in (0, 1)", train_fraction)
    for name, value in (("n_epochs", n_epochs), ("eval_every", eval_every), ("n_key_frequencies", n_key_frequencies)):
        if not isinstance(value, int) or value < 1:
            raise parameter_error(name, owner, "an integer >= 1", value)
    if d_model % n_heads:
        raise parameter_error("n_heads", owner, "a divisor of d_model", n_heads)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = OneLayerTransformer(p, d_model, n_heads, d_mlp)
    a_all, b_all = (t.reshape(-1) for t in torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij"))
    target_all = (a_all + b_all) % p
    order = torch.randperm(p * p, generator=generator)
    n_train = round(train_fraction * p * p)
    train_index = order[:n_train]
    is_train = torch.zeros(p * p, dtype=torch.bool)
    is_train[train_index] = True
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay, betas=(0.9, 0.98))
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(step / 10, 1.0))
    settings = {"p": p, "n_epochs": n_epochs, "train_fraction": train_fraction, "d_model": d_model,
                "n_heads": n_heads, "d_mlp": d_mlp, "learning_rate": learning_rate, "weight_decay": weight_decay,
                "eval_every": eval_every, "seed": seed, "n_train": n_train}
    epochs: list[int] = []
    curves: dict[str, list[float]] = {k: [] for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")}
    snapshots: list[dict[str, torch.Tensor]] = []
    start = time.process_time()
    wall_start = time.perf_counter()
    result = GrokkingResult(p, epochs, curves, [], settings, 0.0)
    a_train, b_train, y_train = a_all[train_index], b_all[train_index], target_all[train_index]
    for epoch in range(n_epochs + 1):
        if epoch % eval_every == 0 or epoch == n_epochs:
            with torch.no_grad():
                logits = model(a_all, b_all)
                losses = nn.functional.cross_entropy(logits.double(), target_all, reduction="none")
                correct = (logits.argmax(1) == target_all).double()
            epochs.append(epoch)
            curves["train_loss"].append(float(losses[is_train].mean()))
            curves["test_loss"].append(float(losses[~is_train].mean()))
            curves["train_accuracy"].append(float(correct[is_train].mean()))
            curves["test_accuracy"].append(float(correct[~is_train].mean()))
            snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            result.seconds = time.process_time() - start
            if callback is not None:
                callback(result)
            if time_budget_s is not None and time.perf_counter() - wall_start > time_budget_s:
                settings["stopped_early_at"] = epoch
                break
        if epoch == n_epochs:
            break
        optimizer.zero_grad(set_to_none=True)
        _loss(model(a_train, b_train), y_train).backward()
        optimizer.step()
        warmup.step()
    result.seconds = time.process_time() - start
    settings["wall_seconds"] = time.perf_counter() - wall_start
    measures, key = progress_measures(model, snapshots, a_all, b_all, target_all, is_train,
                                      n_key_frequencies=n_key_frequencies)
    curves.update(measures)
    result.key_frequencies = key
    result.milestones = milestones(epochs, curves)
    return result


def onset_epoch(epochs: list[int], values: list[float], fraction: float = 0.1) -> int | None:
    """First epoch at which a curve has moved ``fraction`` of the way from its first value to its last.

    Used to compare when a progress measure starts moving with when test accuracy does.
    """
    if len(values) < 2:
        return None
    start, end = values[0], values[-1]
    if not (math.isfinite(start) and math.isfinite(end)) or start == end:
        return None
    level = start + fraction * (end - start)
    rising = end > start
    return first_epoch(epochs, values, (lambda v: v >= level) if rising else (lambda v: v <= level))


def milestones(epochs: list[int], curves: dict[str, list[float]]) -> dict[str, int | None]:
    """The epochs that summarise a grokking run (see :func:`train_grokking`)."""
    test_loss = np.asarray(curves["test_loss"])
    after_memorising = first_epoch(epochs, curves["train_loss"], lambda v: v < 0.01)
    peak = None
    if test_loss.size:
        peak = epochs[int(np.argmax(test_loss))]
    out: dict[str, int | None] = {
        "train_loss_below_0.01": after_memorising,
        "test_loss_peak": peak,
        "test_loss_below_1": first_epoch(epochs, curves["test_loss"], lambda v: v < 1.0),
        "test_accuracy_above_0.5": first_epoch(epochs, curves["test_accuracy"], lambda v: v > 0.5),
        "test_accuracy_above_0.95": first_epoch(epochs, curves["test_accuracy"], lambda v: v > 0.95),
    }
    # the measures are compared from the end of memorisation on, where the question is open
    begin = epochs.index(after_memorising) if after_memorising is not None else 0
    for name in ("excluded_loss", "restricted_loss", "gini_embedding", "test_accuracy"):
        if name in curves:
            out[f"onset_{name}"] = onset_epoch(epochs[begin:], curves[name][begin:])
    return out
