"""The Square attack: a score-based black-box attack by random square-shaped updates."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from mlsafety._validation import check_positive
from mlsafety.exceptions import parameter_error
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks._common import Attack, Forward, _view, lp_norm

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


def square_fraction(iteration: int, n_queries: int, p_init: float, rescale: bool = True) -> float:
    """The fraction ``p`` of pixels changed at ``iteration``: halved at iterations 10, 50, 200,
    500, 1000, 2000, 4000, 6000, 8000 of a 10,000-query schedule, optionally rescaled to
    ``n_queries`` (Andriushchenko et al. 2020, Sec. 4; AutoAttack does not rescale)."""
    it = int(iteration / n_queries * 10000) if rescale else iteration
    for halvings, bound in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if it <= bound:
            return p_init / 2 ** halvings
    return p_init / 512


@lru_cache(maxsize=64)
def _eta_rectangles(rows: int, cols: int) -> torch.Tensor:
    """Concentric rectangles with weights ``1 / (k+1)^2`` from the centre, unit L2 norm (paper, Alg. 3)."""
    delta = torch.zeros(rows, cols)
    centre_r, centre_c = rows // 2, cols // 2
    for k in range(max(centre_r + 1, centre_c + 1)):
        r0, c0 = max(centre_r - k, 0), max(centre_c - k, 0)
        delta[r0:min(centre_r + k + 1, rows), c0:min(centre_c + k + 1, cols)] += 1.0 / (k + 1) ** 2
    return delta / delta.norm()


def _pseudo_gaussian(size: int) -> torch.Tensor:
    """Two rectangle stacks of opposite sign (the L2 update of the paper), unit L2 norm."""
    delta = torch.zeros(size, size)
    delta[: size // 2] = _eta_rectangles(size // 2, size)
    delta[size // 2:] = -_eta_rectangles(size - size // 2, size)
    return delta / delta.norm()


def _windows(n: int, height: int, width: int, size: int, generator: torch.Generator,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random top-left corners (N,) of size x size windows, one per sample."""
    top = torch.randint(0, height - size + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, width - size + 1, (n,), generator=generator, device=device)
    return top, left


def _window_mask(top: torch.Tensor, left: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    rows = torch.arange(height, device=top.device)[None, :, None]
    cols = torch.arange(width, device=top.device)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < top[:, None, None] + size)
              & (cols >= left[:, None, None]) & (cols < left[:, None, None] + size))
    return inside[:, None].float()


def _read_window(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    n, c, _, w = images.shape
    offsets = torch.arange(size, device=images.device)
    rows = (top[:, None] + offsets)[:, None, :, None].expand(n, c, size, w)
    strip = images.gather(2, rows)
    cols = (left[:, None] + offsets)[:, None, None, :].expand(n, c, size, size)
    return strip.gather(3, cols)


def _write_window(patch: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int, width: int) -> torch.Tensor:
    n, c, size, _ = patch.shape
    offsets = torch.arange(size, device=patch.device)
    cols = (left[:, None] + offsets)[:, None, None, :].expand(n, c, size, size)
    strip = patch.new_zeros(n, c, size, width).scatter(3, cols, patch)
    rows = (top[:, None] + offsets)[:, None, :, None].expand(n, c, size, width)
    return patch.new_zeros(n, c, height, width).scatter(2, rows, strip)


def _margin(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Positive while the attack has not succeeded (``z_y - max_{j != y} z_j``, or its targeted mirror)."""
    own = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return others - own if targeted else own - others


def _signs(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator, device=device).float() * 2 - 1


def square(forward: Forward, x: torch.Tensor, y: torch.Tensor, *, epsilon: float, norm: str, n_queries: int,
           p_init: float, generator: torch.Generator, targeted: bool = False,
           rescale_schedule: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One run of the Square attack on a batch; returns (images, success flags).

    Only forward passes (logits) are used. Each sample leaves the batch once it is fooled.
    """
    n, c, h, w = x.shape
    device = x.device
    with torch.no_grad():
        if norm == "Linf":
            best = (x + epsilon * _signs((n, c, 1, w), generator, device)).clamp(0.0, 1.0)
        else:
            size = max(h // 5, 1)
            start = (h - size * 5) // 2
            delta = torch.zeros_like(x)
            for i in range(h // size):
                for j in range(w // size):
                    r, s_ = start + i * size, start + j * size
                    if r + size > h or s_ + size > w:
                        continue
                    pattern = _pseudo_gaussian(size).to(device)
                    if bool(torch.rand(1, generator=generator, device=device) > 0.5):
                        pattern = pattern.t()
                    delta[:, :, r:r + size, s_:s_ + size] += pattern * _signs((n, c, 1, 1), generator, device)
            best = (x + epsilon * delta / _view(lp_norm(delta, "L2") + 1e-12, x)).clamp(0.0, 1.0)
        margin = _margin(forward(best), y, targeted)
        loss = margin.clone()
        for iteration in range(n_queries):
            active = (margin > 0).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            xa, ba, ya = x[active], best[active], y[active]
            p = square_fraction(iteration, n_queries, p_init, rescale_schedule)
            m = active.numel()
            if norm == "Linf":
                size = min(max(round(math.sqrt(p * c * h * w / c)), 1), h - 1)
                top, left = _windows(m, h, w, size, generator, device)
                mask = _window_mask(top, left, size, h, w)
                change = mask * 2 * epsilon * _signs((m, c, 1, 1), generator, device)
                candidate = torch.minimum(torch.maximum(ba + change, xa - epsilon), xa + epsilon).clamp(0.0, 1.0)
                # pixels inside the window take the new vertex value, others keep theirs
                candidate = torch.where(mask.bool(), candidate, ba)
            else:
                size = max(round(math.sqrt(p * c * h * w / c)), 3)
                size += 1 - size % 2
                size = min(size, h - 1 if (h - 1) % 2 else h - 2)
                delta = ba - xa
                top, left = _windows(m, h, w, size, generator, device)
                top2, left2 = _windows(m, h, w, size, generator, device)
                mask1 = _window_mask(top, left, size, h, w)
                mask2 = _window_mask(top2, left2, size, h, w)
                window_norm = _read_window(delta, top, left, size).pow(2).sum((-2, -1), keepdim=True).sqrt()
                image_norm = lp_norm(delta, "L2")
                both = torch.maximum(mask1, mask2)
                windows_norm = lp_norm(delta * both, "L2")
                update = _eta_rectangles(size, size).to(device) * _signs((m, c, 1, 1), generator, device)
                update = update + _read_window(delta, top, left, size) / (1e-12 + window_norm)
                budget = ((epsilon ** 2 - image_norm ** 2).clamp_min(0.0) / c + windows_norm ** 2).sqrt()
                update = update / (1e-12 + update.pow(2).sum((-2, -1), keepdim=True).sqrt()) * _view(budget, update)
                delta = delta * (1 - mask2)
                delta = delta * (1 - mask1) + _write_window(update, top, left, h, w)
                candidate = (xa + epsilon * delta / _view(lp_norm(delta, "L2") + 1e-12, xa)).clamp(0.0, 1.0)
            new_margin = _margin(forward(candidate), ya, targeted)
            improved = new_margin < loss[active]
            loss[active] = torch.where(improved, new_margin, loss[active])
            accept = improved | (new_margin <= 0)
            margin[active] = torch.where(accept, new_margin, margin[active])
            best[active] = torch.where(_view(accept, candidate), candidate, ba)
    return best, margin <= 0


@ATTACKS.register("square", threat_models=("Linf", "L2"), black_box=True)
class Square(Attack):
    """Square attack: random search with square-shaped updates, using only the logits.

    Andriushchenko, Croce, Flammarion & Hein (2020), "Square Attack: a query-efficient
    black-box adversarial attack via random search" (ECCV). Starting from vertical stripes of
    ``+-epsilon`` (Linf) or a grid of pseudo-Gaussian blocks (L2), each query changes a random
    square window of side ``s = round(sqrt(p * H * W))`` and keeps the change when the margin
    loss

    .. math:: L(x) = z_y(x) - \\max_{j \\ne y} z_j(x)

    decreases; ``p`` starts at ``p_init`` and is halved on a fixed schedule (see
    :func:`square_fraction`). Windows and signs are drawn per sample. As it needs no gradients
    it also runs on TorchScript models and models with non-differentiable parts, and it is
    the black-box reference of the gradient-masking checks.

    Parameters
    ----------
    epsilon : radius; norm : "Linf" or "L2".
    n_queries : queries per restart (5,000 in AutoAttack).
    n_restarts : restarts on samples still robust.
    p_init : initial fraction of pixels changed (0.8 in AutoAttack).
    targeted : if True, ``y`` holds target classes.
    rescale_schedule : stretch the 10,000-query schedule of ``p`` to ``n_queries`` (the paper's
        code); AutoAttack uses False.
    seed : seed of the random search.
    """

    black_box = True

    def __init__(self, epsilon: float = 8 / 255, norm: str = "Linf", n_queries: int = 5000, n_restarts: int = 1,
                 p_init: float = 0.8, targeted: bool = False, rescale_schedule: bool = True,
                 seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.norm = norm
        self.n_queries = n_queries
        self.n_restarts = n_restarts
        self.p_init = p_init
        self.targeted = targeted
        self.rescale_schedule = rescale_schedule
        self.seed = seed

    def _check_params(self) -> None:
        owner = type(self).__name__
        self._check_common()
        check_positive(self.n_queries, "n_queries", owner, integer=True)
        if not 0 < self.p_init <= 1:
            raise parameter_error("p_init", owner, "in (0, 1]", self.p_init)

    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        if min(x.shape[-2:]) < 4:
            raise parameter_error("x", type(self).__name__, "at least 4 x 4 pixels", tuple(x.shape))

        def forward(z: torch.Tensor) -> torch.Tensor:
            return classifier.forward(z).float()

        with torch.no_grad():
            done = _margin(forward(x), y, self.targeted) <= 0
        result = x.clone()
        for _ in range(self.n_restarts):
            ids = (~done).nonzero().squeeze(1)
            if ids.numel() == 0:
                break
            adv, success = square(forward, x[ids], y[ids], epsilon=self.epsilon, norm=self.norm,
                                  n_queries=self.n_queries, p_init=self.p_init, generator=generator,
                                  targeted=self.targeted, rescale_schedule=self.rescale_schedule)
            result[ids[success]] = adv[success]
            done[ids[success]] = True
        return result
