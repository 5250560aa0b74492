"""Nanda et al.'s progress measures for a modular-addition model.

Nanda, Chan, Lieberum, Smith & Steinhardt (2023), "Progress measures for grokking via mechanistic
interpretability", ICLR. With :math:`w_k = 2\\pi k / p` and, for each output ``c``, the logits as a
function of the inputs :math:`L_c(a, b)`:

* key frequencies: the ``K`` frequencies whose components :math:`\\cos(w_k(a+b))`,
  :math:`\\sin(w_k(a+b))` carry the most norm in the final model's logits;
* restricted loss: cross-entropy (over all pairs) of the logits keeping only the constant and the
  key-frequency components, :math:`\\bar L_c + \\sum_{k \\in K} P_k L_c` -- falls as the Fourier
  circuit forms, before test loss does;
* excluded loss: cross-entropy on the training pairs of :math:`L_c - \\sum_{k \\in K} P_k L_c` --
  rises as the model stops relying on memorisation alone;
* Gini of the embedding's Fourier norms: :math:`\\|\\sum_a E_a \\cos(w_k a)\\|^2 +
  \\|\\sum_a E_a \\sin(w_k a)\\|^2` per frequency, then its Gini coefficient -- rises as the embedding
  becomes sparse in the Fourier basis.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when all equal, near 1 when one dominates."""
    x = np.sort(np.asarray(values, dtype=float).ravel())
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(((2 * ranks - n - 1) * x).sum() / (n * total))


def _basis(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm cos / sin patterns over (a, b) for k = 1..(p-1)/2, shapes (K, p*p)."""
    k = torch.arange(1, (p - 1) // 2 + 1, dtype=torch.float64)[:, None]
    total = (torch.arange(p)[:, None] + torch.arange(p)[None, :]).reshape(1, -1).double()
    cos, sin = torch.cos(2 * math.pi * k * total / p), torch.sin(2 * math.pi * k * total / p)
    return cos / cos.norm(dim=1, keepdim=True), sin / sin.norm(dim=1, keepdim=True)


def fourier_components(logits: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project logits ``(p*p, p)`` (rows ordered ``a * p + b``) on the (a+b) Fourier patterns.

    Returns the cos and sin coefficients ``(K, p)`` (one per frequency and output) and the norm per
    frequency ``(K,)``.
    """
    cos, sin = _basis(p)
    values = logits.double()
    cos_coef, sin_coef = cos @ values, sin @ values
    return cos_coef, sin_coef, (cos_coef.square().sum(1) + sin_coef.square().sum(1)).sqrt()


def key_frequencies(logits: torch.Tensor, p: int, n_key: int = 5) -> list[int]:
    """The ``n_key`` frequencies (1-based ``k``) with the largest norm in the logits."""
    _, _, norms = fourier_components(logits, p)
    return sorted(int(i) + 1 for i in torch.argsort(norms, descending=True)[:n_key])


def split_logits(logits: torch.Tensor, p: int, key: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(restricted, excluded) logits for the key frequencies ``key`` (see the module docstring)."""
    cos, sin = _basis(p)
    index = torch.tensor([k - 1 for k in key])
    values = logits.double()
    cos_coef, sin_coef = cos[index] @ values, sin[index] @ values
    key_part = cos[index].T @ cos_coef + sin[index].T @ sin_coef
    restricted = values.mean(0, keepdim=True) + key_part
    return restricted, values - key_part


def embedding_gini(embedding: torch.Tensor, p: int) -> float:
    """Gini coefficient of the Fourier norms of the first ``p`` rows of an embedding ``(>=p, d)``."""
    k = torch.arange(1, (p - 1) // 2 + 1, dtype=torch.float64)[:, None]
    a = torch.arange(p, dtype=torch.float64)[None, :]
    weights = embedding[:p].double()
    norms = ((torch.cos(2 * math.pi * k * a / p) @ weights).square().sum(1)
             + (torch.sin(2 * math.pi * k * a / p) @ weights).square().sum(1)).sqrt()
    return gini(norms.numpy())


@torch.no_grad()
def progress_measures(model: nn.Module, snapshots: list[dict[str, torch.Tensor]], a: torch.Tensor, b: torch.Tensor,
                      target: torch.Tensor, is_train: torch.Tensor, *,
                      n_key_frequencies: int = 5) -> tuple[dict[str, list[float]], list[int]]:
    """Restricted loss, excluded loss and embedding Gini at every snapshot.

    ``a``, ``b`` and ``target`` enumerate all ``p**2`` pairs in ``a * p + b`` order; the key
    frequencies come from the last snapshot.
    """
    p: int = model.p  # type: ignore[assignment]
    probe: Any = copy.deepcopy(model)
    probe.load_state_dict(snapshots[-1])
    key = key_frequencies(probe(a, b), p, n_key_frequencies)
    out: dict[str, list[float]] = {"restricted_loss": [], "excluded_loss": [], "gini_embedding": [],
                                   "key_fourier_fraction": []}
    for state in snapshots:
        probe.load_state_dict(state)
        logits = probe(a, b)
        restricted, excluded = split_logits(logits, p, key)
        out["restricted_loss"].append(float(nn.functional.cross_entropy(restricted, target)))
        out["excluded_loss"].append(float(nn.functional.cross_entropy(excluded[is_train], target[is_train])))
        out["gini_embedding"].append(embedding_gini(probe.embed.detach(), p))
        _, _, norms = fourier_components(logits - logits.mean(0, keepdim=True), p)
        centred = (logits.double() - logits.double().mean(0, keepdim=True)).square().sum()
        share = norms[[k - 1 for k in key]].square().sum() / centred if centred > 0 else torch.tensor(0.0)
        out["key_fourier_fraction"].append(float(share))
    return out, key
