"""Targeted universal perturbations: a backdoor target is reachable with a small input-agnostic
additive perturbation."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from mlsafety._validation import check_positive, make_generator
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError

if TYPE_CHECKING:
    from mlsafety.data.dataset import ImageDataset
    from mlsafety.models.classifier import Classifier


class UniversalPerturbation(ParamsMixin):
    """Per-class targeted universal perturbation success, a model-level backdoor statistic.

    A backdoor is a shortcut from *every* input to the target class. Neural Cleanse (Wang et
    al., 2019) looks for it as a small *mask*; this detector looks for it as a small *additive*
    perturbation shared by all inputs, the form of whole-image triggers (SIG's sinusoid,
    Blended's key) that a mask cannot express cheaply. For every class ``k`` one perturbation
    ``delta_k`` with ``||delta_k||_inf <= epsilon`` is optimised on clean images, all classes in
    one batched pass::

        min_{delta_k}  CE(f(clip(x + delta_k, 0, 1)), k),   ||delta_k||_inf <= epsilon

    (Adam, then projection onto the ball after each step); its targeted success rate ``s_k``
    (share of clean images sent to ``k``) and the mean log-probability of ``k``,
    ``l_k = mean_x log softmax(f(x + delta_k))_k``, are measured. On a backdoored model the
    target class is far easier to reach than the same class of clean models of the same kind:
    compared class by class with clean shadow models
    (:func:`~mlsafety.monitoring.backdoor.calibration.class_conditional_scores`), ``l`` is the
    model-level statistic the audit calibrates.

    The idea is that of Zhang et al. (2021), *Cassandra: Detecting Trojaned Networks From
    Adversarial Perturbations* (IEEE Access 9), who fingerprint a model by its L-inf bounded
    universal perturbations (Moosavi-Dezfooli et al., 2017, *Universal Adversarial
    Perturbations*, CVPR), and of Xiang, Miller & Kesidis (2020), *Detection of Backdoors in
    Trained Classifiers Without Access to the Training Set* (IEEE TNNLS), who reverse-engineer a
    per-class additive perturbation and compare its size against a null. Here the statistic is
    the success at a fixed budget (no learned detector), calibrated against clean shadows.

    Parameters
    ----------
    epsilon : float
        L-inf budget in pixel units ([0, 1] images).
    steps : int
        Adam steps (each uses one batch of clean images for every class).
    batch_size : int
        Clean images per step.
    learning_rate : float
        Adam step size.
    n_samples : int
        Clean images drawn from the data; the success rates are measured on the first
        ``min(128, n_samples)`` of them.
    seed : int or None
        Seeds the draw of images and batches.

    Attributes
    ----------
    perturbations_ : (K, C, H, W); success_ : (K,) targeted success of each class's perturbation.
    log_probabilities_ : (K,) mean log-probability of each class under its perturbation.
    max_success_ : float, the statistic; target_ : int, the class reached most often.
    seconds_ : wall time of :meth:`fit`.

    Examples
    --------
    >>> uap = UniversalPerturbation().fit(classifier, clean_validation)
    >>> uap.max_success_, uap.target_
    """

    def __init__(self, epsilon: float = 0.1, steps: int = 40, batch_size: int = 16, learning_rate: float = 0.02,
                 n_samples: int = 256, seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.steps = steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_samples = n_samples
        self.seed = seed

    def _validate(self) -> None:
        owner = type(self).__name__
        for name in ("steps", "batch_size", "n_samples"):
            check_positive(getattr(self, name), name, owner, integer=True)
        for name in ("epsilon", "learning_rate"):
            check_positive(getattr(self, name), name, owner)

    def fit(self, classifier: Classifier, data: ImageDataset) -> UniversalPerturbation:
        """Optimise one perturbation per class on clean ``data`` and measure its success."""
        self._validate()
        start = time.perf_counter()
        n_classes = int(classifier.predict_logits(data.images[:1]).shape[1])
        if n_classes < 2:
            raise InvalidInputError(f"UniversalPerturbation needs at least 2 classes; the model has {n_classes}.")
        generator = make_generator(self.seed, "cpu")
        pool = data.images[torch.randperm(len(data), generator=generator)[: self.n_samples]]
        batches = make_generator(None if self.seed is None else self.seed + 1, "cpu")
        device = classifier.device
        delta = torch.zeros(n_classes, *pool.shape[1:], device=device, requires_grad=True)
        optimizer = torch.optim.Adam([delta], lr=self.learning_rate)
        labels = torch.arange(n_classes, device=device)[:, None].expand(n_classes, self.batch_size).flatten()
        with classifier.evaluating():
            for _ in range(self.steps):
                x = pool[torch.randint(len(pool), (self.batch_size,), generator=batches)].to(device)
                stamped = (x[None] + delta[:, None]).clamp(0, 1).flatten(0, 1)
                loss = F.cross_entropy(classifier.forward(stamped), labels[: stamped.shape[0]])
                delta.grad, = torch.autograd.grad(loss, [delta])
                optimizer.step()
                with torch.no_grad():
                    delta.clamp_(-self.epsilon, self.epsilon)
            with torch.no_grad():
                x = pool[:128].to(device)
                out = classifier.forward((x[None] + delta[:, None]).clamp(0, 1).flatten(0, 1))
                predictions = out.view(n_classes, x.shape[0], -1).argmax(-1)
                success = (predictions == torch.arange(n_classes, device=device)[:, None]).float().mean(1)
                classes = torch.arange(n_classes, device=device)
                log_probabilities = out.view(n_classes, x.shape[0], -1).log_softmax(-1)[classes, :, classes].mean(1)
        self.perturbations_ = delta.detach().cpu()
        self.success_ = success.cpu()
        self.log_probabilities_ = log_probabilities.cpu()
        self.max_success_ = float(self.success_.max())
        self.target_ = int(self.success_.argmax())
        self.seconds_ = time.perf_counter() - start
        return self

    def summary(self) -> dict[str, object]:
        """A JSON-friendly summary."""
        return {"max_success": self.max_success_, "target": self.target_, "success": self.success_.tolist(),
                "log_probabilities": self.log_probabilities_.tolist(),
                "epsilon": self.epsilon, "seconds": self.seconds_}
