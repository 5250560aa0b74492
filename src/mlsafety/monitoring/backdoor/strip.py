"""STRIP: triggered inputs keep their prediction when blended with other images."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mlsafety._validation import check_images, check_in, check_is_fitted, check_positive, make_generator
from mlsafety.base import Detector
from mlsafety.exceptions import ShapeError
from mlsafety.registry import BACKDOOR_DETECTORS

if TYPE_CHECKING:
    from mlsafety.data.dataset import ImageDataset
    from mlsafety.models.classifier import Classifier


def superimpose(x: torch.Tensor, overlays: torch.Tensor, blend: str = "add") -> torch.Tensor:
    """All pairs ``x_i (+) o_j``: shape (N, M, C, H, W) for x (N, C, H, W), overlays (M, C, H, W).

    ``"add"`` is the paper's saturating sum ``clip(x + o, 0, 1)``; ``"average"`` is ``(x + o) / 2``.
    """
    pairs = x[:, None] + overlays[None]
    return pairs.clamp(0, 1) if blend == "add" else pairs / 2


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of softmax(logits) along the last axis."""
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(-1)


@BACKDOOR_DETECTORS.register("strip", level="input")
class STRIP(Detector):
    """STRIP of Gao et al. (2019), *STRIP: A Defence Against Trojan Attacks on Deep Neural
    Networks* (ACSAC).

    Each input ``x`` is superimposed on ``n_perturbations`` clean images ``o_j`` drawn
    from held-out data; a trojaned input keeps predicting the target whatever it is mixed
    with, so the mean prediction entropy ``H(x) = (1/M) sum_j H(softmax f(x (+) o_j))`` is
    low. The anomaly score is ``-H(x)`` (higher = more likely triggered).

    Parameters
    ----------
    n_perturbations : int
        ``M``, overlays per input (the paper uses 100; 20 already separates well).
    blend : {"add", "average"}
        ``"add"``: the paper's saturating sum; ``"average"``: the mean of both images.
    n_overlays : int
        Size of the clean pool the overlays are drawn from.
    seed : int or None
        Seeds the overlay pool and the draws.

    Attributes
    ----------
    overlays_ : (n_overlays, C, H, W) clean pool; ``classifier_`` the fitted model.
    threshold_ : set by :meth:`fit` so that 1% of the clean pool is flagged (the paper's FRR).
    """

    def __init__(self, n_perturbations: int = 20, blend: str = "add", n_overlays: int = 200,
                 seed: int | None = 0) -> None:
        self.n_perturbations = n_perturbations
        self.blend = blend
        self.n_overlays = n_overlays
        self.seed = seed

    def fit(self, classifier: Classifier, data: ImageDataset) -> STRIP:
        """Keep a pool of clean images from ``data`` and set ``threshold_`` at a 1% false rejection rate."""
        owner = type(self).__name__
        check_positive(self.n_perturbations, "n_perturbations", owner, integer=True)
        check_positive(self.n_overlays, "n_overlays", owner, integer=True)
        check_in(self.blend, ("add", "average"), "blend", owner)
        self.classifier_ = classifier
        generator = make_generator(self.seed, "cpu")
        order = torch.randperm(len(data), generator=generator)
        self.overlays_ = data.images[order[: self.n_overlays]]
        held_out = data.images[order[self.n_overlays: 2 * self.n_overlays]]
        if held_out.shape[0] >= 10:
            self.fit_threshold(self.score(held_out), false_positive_rate=0.01)
        return self

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (N,) = minus the mean entropy under superimposition."""
        check_is_fitted(self, "overlays_")
        check_images(x)
        if tuple(x.shape[1:]) != tuple(self.overlays_.shape[1:]):
            raise ShapeError(f"`x` has images of shape {tuple(x.shape[1:])} but STRIP was fitted on "
                             f"{tuple(self.overlays_.shape[1:])}; fit it on data like the inputs.")
        generator = make_generator(self.seed, "cpu")
        draws = torch.randint(self.overlays_.shape[0], (x.shape[0], self.n_perturbations), generator=generator)
        overlays = self.overlays_.to(x.device)
        entropies = []
        # chunks of inputs so that (chunk x M) blended images fit in memory
        chunk = max(1, 4096 // self.n_perturbations)
        for start in range(0, x.shape[0], chunk):
            batch = x[start:start + chunk]
            picked = overlays[draws[start:start + chunk].to(x.device)]
            blended = (batch[:, None] + picked).clamp(0, 1) if self.blend == "add" else (batch[:, None] + picked) / 2
            logits = self.classifier_.predict_logits(blended.flatten(0, 1))
            entropies.append(prediction_entropy(logits).view(batch.shape[0], -1).mean(1))
        return -torch.cat(entropies).float()
