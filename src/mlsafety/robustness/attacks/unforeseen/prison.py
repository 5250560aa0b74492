"""Adversarial prison bars: thin vertical bars whose pixels are perturbed."""

from __future__ import annotations

from typing import ClassVar

import torch

from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.unforeseen._base import State, UnforeseenAttack


@ATTACKS.register("prison", threat_models=("unforeseen",), black_box=False, family="unforeseen")
class Prison(UnforeseenAttack):
    """Adversarial prison bars (Kaufmann et al. 2023, "Testing Robustness Against Unforeseen
    Adversaries").

    Vertical bars one pixel wide, one every 4 columns (from a random first column), are the
    only pixels the attacker may change, each by at most ``epsilon``:

    .. math:: x' = \\mathrm{clip}_{[0,1]}(x + M \\odot z), \\qquad |z| \\le \\epsilon

    with ``M`` the bar mask: an Linf attack restricted to a sparse, visible support.

    Examples
    --------
    >>> x_adv = Prison(level="medium")(images, labels, classifier)
    """

    levels: ClassVar[dict[str, float]] = {"low": 0.1, "medium": 0.2, "high": 0.3}
    max_epsilon = 1.0
    pixel_bounded = True
    budget_meaning = "largest change of a bar pixel"
    spacing = 4

    def latent_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], x.shape[1], x.shape[-2], -(-x.shape[-1] // self.spacing))

    def setup(self, x: torch.Tensor, generator: torch.Generator) -> State:
        w = x.shape[-1]
        first = int(torch.randint(0, self.spacing, (1,), generator=generator, device=x.device))
        columns = torch.arange(first, w, self.spacing, device=x.device)
        return {"columns": columns}

    def render(self, x: torch.Tensor, latent: torch.Tensor, state: State, epsilon: float) -> torch.Tensor:
        columns = state["columns"]
        bars = torch.zeros_like(x).index_copy(-1, columns, latent[..., :columns.numel()])
        return (x + bars).clamp(0.0, 1.0)
