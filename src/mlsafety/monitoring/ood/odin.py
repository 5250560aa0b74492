"""ODIN: temperature scaling and input preprocessing."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from mlsafety._validation import check_positive
from mlsafety.models.classifier import Classifier
from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.monitoring.ood.msp import msp_score
from mlsafety.registry import OOD_DETECTORS


def odin_perturb(classifier: Classifier, x: torch.Tensor, temperature: float, noise: float) -> torch.Tensor:
    """``x - noise * sign(∇_x CE(z(x)/T, argmax z(x)))`` (one batch, on the model's device).

    Only the input receives a gradient (``torch.autograd.grad``), so the model's parameters
    and their ``.grad`` are untouched.
    """
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        logits = classifier.forward(x)
        loss = F.cross_entropy(logits / temperature, logits.argmax(dim=1))
        (gradient,) = torch.autograd.grad(loss, x)
    return (x - noise * gradient.sign()).detach()


@OOD_DETECTORS.register("odin", inputs="images")
class ODIN(OODDetector):
    """Maximum softmax at a high temperature after a small input perturbation.

    Liang, Li & Srikant (2018), "Enhancing The Reliability of Out-of-distribution Image
    Detection in Neural Networks", ICLR.

    .. math::

        \\tilde x = x - \\varepsilon \\operatorname{sign}\\big(-\\nabla_x \\log S_{\\hat y}(x; T)\\big),
        \\qquad s(x) = -\\max_k S_k(\\tilde x; T), \\quad S(x; T) = \\operatorname{softmax}(z(x) / T)

    The step moves every pixel so as to *raise* the top softmax score; in-distribution
    inputs respond more strongly than OOD inputs. ``noise`` is in pixel units of images in
    [0, 1] (normalisation lives inside the model), and the perturbed image is not clipped,
    as in the paper. Scoring needs the model and one backward pass per batch, so ODIN cannot
    score cached features.

    Parameters
    ----------
    temperature : float
        T (1000 in the paper).
    noise : float
        ε >= 0 (the paper tunes it in [0, 0.004] on OOD validation data).

    Examples
    --------
    >>> scores = ODIN(temperature=1000, noise=0.0014).fit(classifier, validation).score(images)
    """

    needs_inputs = True
    tunable: ClassVar[dict[str, list[Any]]] = {
        "temperature": [1.0, 10.0, 100.0, 1000.0],
        "noise": [0.0, 0.0005, 0.001, 0.002, 0.004],
    }

    def __init__(self, temperature: float = 1000.0, noise: float = 0.0014) -> None:
        self.temperature = temperature
        self.noise = noise

    def _validate_params(self) -> None:
        check_positive(self.temperature, "temperature", type(self).__name__)
        check_positive(self.noise, "noise", type(self).__name__, allow_zero=True)

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        return msp_score(logits.double(), self.temperature)

    def _score_inputs(self, classifier: Classifier, x: torch.Tensor) -> torch.Tensor:
        self._validate_params()
        scores = []
        with classifier.evaluating():
            for batch in x.split(classifier.batch_size):
                batch = batch.to(classifier.device)
                if self.noise > 0:
                    batch = odin_perturb(classifier, batch, self.temperature, self.noise)
                with torch.no_grad():
                    scores.append(msp_score(classifier.forward(batch).double(), self.temperature).to(x.device))
        return torch.cat(scores)
