"""The shared base abstractions: :class:`Perturbation` and :class:`Detector`.

Conventions (see STYLE.md):

* images are float tensors in [0, 1] of shape (N, C, H, W); normalisation lives inside the
  model, so perturbations act in pixel space;
* hyperparameters are keyword arguments stored unchanged in ``__init__`` (scikit-learn);
  learned state is set by ``fit`` in attributes ending in ``_``;
* a detector's score is always "higher = more anomalous" (PyOD);
* methods that need a model receive a :class:`~mlsafety.models.Classifier` per call and
  leave the model's mode and device as they found them.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from mlsafety._validation import check_images, check_is_fitted, make_generator

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier


class ParamsMixin:
    """``get_params`` / ``__repr__`` from the ``__init__`` signature, as in scikit-learn."""

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, read back from same-named attributes."""
        return {name: getattr(self, name) for name in self._param_names() if hasattr(self, name)}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


class Perturbation(ParamsMixin, ABC):
    """A batched, seeded map from images to perturbed images in [0, 1].

    Corruptions, adversarial attacks and backdoor triggers all implement
    :meth:`perturb`. Subclasses that need the model set ``requires_classifier = True`` and
    receive it per call (never stored at construction).

    Parameters of subclasses conventionally include ``seed`` (int or None).
    """

    requires_classifier: ClassVar[bool] = False
    registry_name: ClassVar[str] = ""

    @abstractmethod
    def perturb(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        classifier: Classifier | None = None,
    ) -> torch.Tensor:
        """Return perturbed images.

        Parameters
        ----------
        x : Tensor, shape (N, C, H, W)
            Images in [0, 1], on any device.
        y : Tensor, shape (N,), optional
            Labels (required by untargeted attacks, ignored by corruptions).
        classifier : Classifier, optional
            The model under attack, for perturbations with ``requires_classifier``.

        Returns
        -------
        Tensor, shape (N, C, H, W)
            Perturbed images in [0, 1], same device and dtype as ``x``.
        """

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        classifier: Classifier | None = None,
    ) -> torch.Tensor:
        check_images(x)
        if self.requires_classifier and classifier is None:
            raise TypeError(
                f"{type(self).__name__} needs the model: call it as perturbation(x, y, classifier)."
            )
        return self.perturb(x, y, classifier)

    def _generator(self, device: torch.device | str) -> torch.Generator:
        """A generator seeded with ``self.seed`` so that equal seeds give equal outputs."""
        return make_generator(getattr(self, "seed", None), device)


class Detector(ParamsMixin, ABC):
    """Scores inputs so that a higher score means more anomalous (PyOD's convention).

    Subclasses implement :meth:`fit` (returning ``self``) and :meth:`score`. A decision
    threshold is set with :meth:`fit_threshold` from scores of normal data and used by
    :meth:`predict`.
    """

    registry_name: ClassVar[str] = ""
    threshold_: float | None = None

    @abstractmethod
    def fit(self, *args: Any, **kwargs: Any) -> Detector:
        """Learn what is normal; return ``self``."""

    @abstractmethod
    def score(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Anomaly scores of shape (N,), higher = more anomalous."""

    def fit_threshold(self, normal_scores: torch.Tensor, false_positive_rate: float = 0.05) -> Detector:
        """Set ``threshold_`` so that ``false_positive_rate`` of ``normal_scores`` are flagged."""
        from mlsafety._validation import check_fraction

        check_fraction(false_positive_rate, "false_positive_rate", type(self).__name__)
        scores = torch.as_tensor(normal_scores, dtype=torch.float64).flatten()
        self.threshold_ = float(torch.quantile(scores, 1.0 - false_positive_rate))
        return self

    def predict(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Boolean flags (N,): True where the score exceeds ``threshold_``."""
        check_is_fitted(self, "threshold_")
        return self.score(*args, **kwargs) > self.threshold_
