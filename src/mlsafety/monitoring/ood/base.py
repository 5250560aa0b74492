"""The base class of OOD detectors: one forward pass, many scores.

Every detector implements two small methods on cached arrays -- :meth:`OODDetector._fit`
and :meth:`OODDetector._score` on penultimate features (N, D) and logits (N, K) -- and
inherits from :class:`OODDetector`:

* :meth:`~OODDetector.fit_features` / :meth:`~OODDetector.score_features` validate cached
  features and logits, so a comparison of ten detectors needs one forward pass;
* :meth:`~OODDetector.fit` / :meth:`~OODDetector.score` run the classifier themselves
  (``fit(classifier, data)`` then ``score(x)``), as the common Detector API requires.

Scores follow PyOD's convention: **higher = more anomalous**.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from torch import nn

from mlsafety._validation import check_images, check_is_fitted, check_labels, check_logits
from mlsafety.base import Detector
from mlsafety.data.dataset import ImageDataset
from mlsafety.exceptions import InvalidInputError, MLSafetyWarning, ShapeError
from mlsafety.models.classifier import Classifier

Head = nn.Linear | tuple[torch.Tensor, torch.Tensor | None]


def check_features(features: Any, name: str = "features", n_samples: int | None = None,
                   n_features: int | None = None, owner: str = "the detector") -> torch.Tensor:
    """Validate a finite (N, D) feature matrix (and its width, once a detector is fitted)."""
    if not isinstance(features, torch.Tensor):
        raise InvalidInputError(f"`{name}` must be a torch.Tensor of shape (N, D); got {type(features).__name__}.")
    if features.ndim != 2:
        raise ShapeError(
            f"`{name}` must have shape (N, D); got {tuple(features.shape)}. Flatten feature maps with "
            "features.flatten(1), or use Classifier.features(x)."
        )
    if features.shape[0] == 0:
        raise ShapeError(f"`{name}` is empty (N = 0); pass at least one sample.")
    if n_samples is not None and features.shape[0] != n_samples:
        raise ShapeError(f"`{name}` has {features.shape[0]} rows but the logits have {n_samples}.")
    if n_features is not None and features.shape[1] != n_features:
        raise ShapeError(
            f"`{name}` has {features.shape[1]} columns but {owner} was fitted on {n_features}-d features; "
            "use the same layer (and model) for fit and score."
        )
    features = features.float() if not features.is_floating_point() else features
    if not bool(torch.isfinite(features).all()):
        raise InvalidInputError(f"`{name}` contains NaN or infinite values; check the model.")
    return features


def head_parameters(head: Head, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (K, D), bias (K,)) of a linear head given as ``nn.Linear`` or a tuple."""
    if isinstance(head, nn.Linear):
        weight = head.weight.detach()
        bias = head.bias.detach() if head.bias is not None else torch.zeros(weight.shape[0])
    elif isinstance(head, tuple) and len(head) == 2 and isinstance(head[0], torch.Tensor):
        weight = head[0].detach()
        bias = head[1].detach() if head[1] is not None else torch.zeros(weight.shape[0])
    else:
        raise InvalidInputError(
            f"`head` must be an nn.Linear or a (weight, bias) tuple; got {type(head).__name__}. "
            "Pass head=classifier.head."
        )
    if weight.ndim != 2 or bias.shape != (weight.shape[0],):
        raise ShapeError(f"`head` weight must be (K, D) and bias (K,); got {tuple(weight.shape)}, {tuple(bias.shape)}.")
    device = device or weight.device
    return weight.float().to(device), bias.float().to(device)


def _unpack(data: Any, owner: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(data, ImageDataset):
        if len(data) == 0:
            raise ShapeError(f"the data given to {owner}.fit is empty; pass at least one in-distribution image.")
        return data.images, data.labels
    if isinstance(data, torch.Tensor):
        return check_images(data, "data"), None
    raise InvalidInputError(
        f"`data` of {owner}.fit must be an ImageDataset or an image tensor (N, C, H, W); got {type(data).__name__}."
    )


class OODDetector(Detector):
    """Base class of post-hoc OOD detectors on a classifier's features and logits.

    Class attributes tell callers what a detector needs:

    ``uses_features``
        scores need penultimate features (else logits suffice);
    ``needs_head``
        fitting needs the classification head (weight, bias), e.g. ViM, ReAct, ASH;
    ``needs_labels``
        fitting needs in-distribution labels (class-conditional statistics);
    ``needs_inputs``
        scoring perturbs the inputs through the model (ODIN), so cached features are not enough;
    ``tunable``
        the default hyperparameter grid searched by :func:`mlsafety.monitoring.ood.tuning.tune`.

    Fitted state: ``n_classes_``, ``n_features_in_`` (None for logit-only detectors) and,
    after :meth:`fit`, ``classifier_``.
    """

    uses_features: ClassVar[bool] = False
    needs_head: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = False
    needs_inputs: ClassVar[bool] = False
    tunable: ClassVar[dict[str, list[Any]]] = {}

    n_classes_: int | None = None
    n_features_in_: int | None = None
    classifier_: Classifier | None = None

    # -- what subclasses implement ------------------------------------------------------
    def _fit(self, features: torch.Tensor | None, logits: torch.Tensor, labels: torch.Tensor | None,
             head: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        """Learn statistics from validated arrays (nothing for purely post-hoc scores)."""

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        """Anomaly scores (N,) from validated arrays."""
        raise NotImplementedError

    def _validate_params(self) -> None:
        """Check hyperparameters (called at the start of every fit)."""

    # -- the cached-array API -----------------------------------------------------------
    def fit_features(self, features: torch.Tensor | None, logits: torch.Tensor,
                     labels: torch.Tensor | None = None, *, head: Head | None = None) -> OODDetector:
        """Fit on cached in-distribution features (N, D), logits (N, K) and labels (N,).

        ``head`` (an ``nn.Linear`` or ``(weight, bias)``) is required by detectors with
        ``needs_head``; ``labels`` by those with ``needs_labels``. Returns ``self``.
        """
        name = type(self).__name__
        self._validate_params()
        logits = check_logits(logits)
        if self.uses_features or self.needs_head:
            if features is None:
                raise InvalidInputError(f"{name} needs penultimate features; pass features=classifier.features(x)[0].")
            features = check_features(features, n_samples=logits.shape[0], owner=name)
        else:
            features = None
        if labels is not None:
            labels = check_labels(labels, logits.shape[0], logits.shape[1], "labels").to(logits.device)
        elif self.needs_labels:
            raise InvalidInputError(f"{name} needs the in-distribution labels; pass labels=... to fit_features.")
        head_params = None
        if self.needs_head:
            if head is None:
                raise InvalidInputError(f"{name} needs the classification head; pass head=classifier.head.")
            head_params = head_parameters(head, features.device)  # type: ignore[union-attr]
            self._check_head(head_params, features, logits)  # type: ignore[arg-type]
        self.n_classes_ = int(logits.shape[1])
        self.n_features_in_ = int(features.shape[1]) if features is not None else None
        self._fit(features, logits, labels, head_params)
        return self

    def score_features(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        """Anomaly scores (N,) of cached features and logits; higher = more anomalous."""
        check_is_fitted(self, "n_classes_")
        name = type(self).__name__
        if self.needs_inputs:
            raise InvalidInputError(
                f"{name} perturbs the inputs through the model, so it cannot score cached features; "
                "call fit(classifier, data) and then score(x)."
            )
        logits = check_logits(logits, n_classes=self.n_classes_)
        if self.n_features_in_ is not None:
            if features is None:
                raise InvalidInputError(f"{name} needs penultimate features; pass features=classifier.features(x)[0].")
            features = check_features(features, n_samples=logits.shape[0], n_features=self.n_features_in_,
                                      owner=name)
        scores = self._score(features, logits)
        return self._check_scores(scores)

    # -- the classifier API -------------------------------------------------------------
    def fit(self, classifier: Classifier, data: ImageDataset | torch.Tensor) -> OODDetector:
        """Fit on in-distribution ``data`` (an ImageDataset, or images without labels) seen
        through ``classifier``; keeps the classifier for :meth:`score`. Returns ``self``."""
        if not isinstance(classifier, Classifier):
            raise InvalidInputError(
                f"`classifier` of {type(self).__name__}.fit must be an mlsafety Classifier; got "
                f"{type(classifier).__name__}. Wrap the module with mlsafety.models.Classifier(module, ...)."
            )
        images, labels = _unpack(data, type(self).__name__)
        if self.needs_inputs:  # such detectors learn nothing from the data beyond its classes
            images = images[: classifier.batch_size]
            labels = labels[: classifier.batch_size] if labels is not None else None
        features, logits = self._forward(classifier, images)
        head = classifier.head if self.needs_head else None
        self.fit_features(features, logits, labels, head=head)
        self.classifier_ = classifier
        return self

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly scores (N,) of images ``x`` in [0, 1]; higher = more anomalous."""
        check_is_fitted(self, ["n_classes_", "classifier_"])
        x = check_images(x)
        if self.needs_inputs:
            return self._check_scores(self._score_inputs(self.classifier_, x))  # type: ignore[arg-type]
        features, logits = self._forward(self.classifier_, x)  # type: ignore[arg-type]
        return self.score_features(features, logits)

    def _score_inputs(self, classifier: Classifier, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------
    def _forward(self, classifier: Classifier, images: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        if self.uses_features or self.needs_head:
            return classifier.features(images)
        return None, classifier.predict_logits(images)

    def _check_scores(self, scores: torch.Tensor) -> torch.Tensor:
        if not bool(torch.isfinite(scores).all()):
            bad = int((~torch.isfinite(scores)).sum())
            raise InvalidInputError(
                f"{type(self).__name__} produced {bad} NaN or infinite scores; the features or logits are "
                "degenerate (e.g. all-zero features) or the hyperparameters overflow (lower the temperature)."
            )
        return scores

    @staticmethod
    def _check_head(head: tuple[torch.Tensor, torch.Tensor], features: torch.Tensor, logits: torch.Tensor) -> None:
        weight, bias = head
        if weight.shape != (logits.shape[1], features.shape[1]):
            raise ShapeError(
                f"the head maps {weight.shape[1]}-d features to {weight.shape[0]} classes, but the features are "
                f"{features.shape[1]}-d and the logits have {logits.shape[1]} classes; the features must be the "
                "head's input (leave Classifier.feature_layer unset)."
            )
        recomputed = features[:64] @ weight.T + bias
        if not torch.allclose(recomputed, logits[:64].to(recomputed), atol=1e-3 * (1 + float(logits.abs().max()))):
            warnings.warn(
                "the logits differ from head(features); the model does more after its last linear layer, "
                "so head-based detectors (ViM, ReAct, ASH) may not behave as in their papers.",
                MLSafetyWarning, stacklevel=4,
            )


def energy_score(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The free energy ``-T logsumexp(z / T)`` (higher = more anomalous), Liu et al. (2020)."""
    return -temperature * torch.logsumexp(logits / temperature, dim=1)
