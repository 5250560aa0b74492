"""The shared base of model-level (meta) backdoor detectors trained on shadow models.

A model-level detector answers "is this *model* backdoored?" with one score per model
(higher = more likely backdoored). Meta-detectors learn it from labelled shadow models
(:mod:`mlsafety.monitoring.backdoor.zoo`): both MNTD and ULP feed a few learned input
images ("queries", "litmus patterns") through the model and classify the concatenated
outputs, optimising the inputs and the classifier jointly. Shadow models are never
modified: gradients are taken with ``torch.autograd.grad`` with respect to the queries
and the meta-classifier only.

Registry: :data:`BACKDOOR_MODEL_DETECTORS` (``"mntd"``, ``"ulp"``).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from mlsafety._validation import check_positive, make_generator
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError, NotFittedError, ShapeError
from mlsafety.registry import Registry

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier

BACKDOOR_MODEL_DETECTORS: Registry[type] = Registry("backdoor model detector", "mlsafety.monitoring.backdoor")


class QueryMetaDetector(ParamsMixin):
    """Learned query inputs + a meta-classifier on the model's outputs (see subclasses).

    Subclasses define :meth:`_features` (the model's outputs on the queries) and
    :meth:`_meta_classifier`; :meth:`_regulariser` adds a penalty on the queries.
    """

    registry_name = ""

    def __init__(self, n_queries: int = 10, epochs: int = 60, learning_rate: float = 1e-2,
                 seed: int | None = 0) -> None:
        self.n_queries = n_queries
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.seed = seed

    @abstractmethod
    def _features(self, logits: torch.Tensor) -> torch.Tensor:
        """(n_queries, K) logits -> 1-D feature vector."""

    @abstractmethod
    def _meta_classifier(self, n_features: int) -> nn.Module:
        """A module mapping (B, n_features) to (B,) logits of 'backdoored'."""

    def _regulariser(self, queries: torch.Tensor) -> torch.Tensor:
        return queries.new_zeros(())

    def _validate(self) -> None:
        owner = type(self).__name__
        check_positive(self.n_queries, "n_queries", owner, integer=True)
        check_positive(self.epochs, "epochs", owner, integer=True)
        check_positive(self.learning_rate, "learning_rate", owner)

    def _query_images(self) -> torch.Tensor:
        return torch.sigmoid(self.query_raw_)

    def _forward(self, classifier: Classifier, queries: torch.Tensor) -> torch.Tensor:
        with classifier.evaluating():
            logits = classifier.forward(queries.to(classifier.device)).cpu()
        return self._features(logits)

    def fit(self, models: Sequence[Classifier], labels: Sequence[int] | torch.Tensor) -> QueryMetaDetector:
        """Learn queries and meta-classifier from shadow ``models`` labelled 1 (backdoored) or 0 (clean).

        The two classes are weighted equally in the loss (a zoo usually holds more backdoored
        than clean shadows). The global random state is left untouched.
        """
        self._validate()
        targets = torch.as_tensor(labels, dtype=torch.float32).flatten()
        if len(models) != targets.numel() or len(models) < 2:
            raise InvalidInputError(f"{type(self).__name__}.fit needs one label per shadow model (>= 2 models); "
                                    f"got {len(models)} models and {targets.numel()} labels.")
        if set(targets.unique().tolist()) != {0.0, 1.0}:
            raise InvalidInputError(f"{type(self).__name__}.fit needs clean (0) and backdoored (1) shadow models; "
                                    f"got labels {sorted(set(targets.tolist()))}.")
        shape = models[0].input_shape
        if shape is None:
            raise InvalidInputError("the shadow models need a known input_shape (C, H, W).")
        self.input_shape_ = tuple(int(v) for v in shape)
        generator = make_generator(self.seed, "cpu")
        # balanced classes: each class contributes half of the loss
        n_positive = float(targets.sum())
        weights = torch.where(targets > 0, 0.5 / n_positive, 0.5 / (targets.numel() - n_positive)) * targets.numel()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
            self.query_raw_ = (torch.rand(self.n_queries, *self.input_shape_, generator=generator) * 4 - 2)
            self.query_raw_.requires_grad_()
            n_classes = int(models[0].predict_logits(self._query_images().detach()[:1]).shape[1])
            self.n_classes_ = n_classes
            n_features = self._features(torch.zeros(self.n_queries, n_classes)).numel()
            self.meta_ = self._meta_classifier(n_features)
        parameters = [self.query_raw_, *self.meta_.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=self.learning_rate)
        for _ in range(self.epochs):
            order = torch.randperm(len(models), generator=generator)
            for start in range(0, len(models), 4):
                batch = order[start:start + 4]
                queries = self._query_images()
                features = torch.stack([self._forward(models[int(i)], queries) for i in batch])
                loss = F.binary_cross_entropy_with_logits(self.meta_(features).flatten(), targets[batch],
                                                          weight=weights[batch])
                loss = loss + self._regulariser(queries)
                gradients = torch.autograd.grad(loss, parameters)
                for parameter, gradient in zip(parameters, gradients, strict=True):
                    parameter.grad = gradient
                optimizer.step()
        self.query_raw_ = self.query_raw_.detach()
        self.meta_.eval()
        return self

    def save(self, path: str | Path) -> None:
        """Write the fitted queries and meta-classifier to a safetensors file (no pickle)."""
        from safetensors.torch import save_file

        self._check_fitted()
        tensors = {"query_raw": self.query_raw_.contiguous(),
                   **{f"meta.{k}": v.contiguous() for k, v in self.meta_.state_dict().items()}}
        metadata = {"detector": self.registry_name, "params": json.dumps(self.get_params()),
                    "input_shape": json.dumps(list(self.input_shape_)), "n_classes": str(self.n_classes_)}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path) -> QueryMetaDetector:
        """Rebuild a detector written by :meth:`save` (the registered class named in the file)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is not iterable)
        name = metadata.get("detector", "")
        if name not in BACKDOOR_MODEL_DETECTORS.names():
            raise InvalidInputError(f"{path} is not a saved model-level backdoor detector (detector {name!r}); "
                                    "write it with QueryMetaDetector.save.")
        detector = BACKDOOR_MODEL_DETECTORS.create(name, **json.loads(metadata["params"]))
        detector.input_shape_ = tuple(json.loads(metadata["input_shape"]))
        detector.n_classes_ = int(metadata["n_classes"])
        detector.query_raw_ = tensors["query_raw"]
        n_features = detector._features(torch.zeros(detector.n_queries, detector.n_classes_)).numel()
        detector.meta_ = detector._meta_classifier(n_features)
        detector.meta_.load_state_dict({k[len("meta."):]: v for k, v in tensors.items() if k.startswith("meta.")})
        detector.meta_.eval()
        return detector

    def _check_fitted(self) -> None:
        if not hasattr(self, "meta_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(shadow_models, labels) first.")

    @torch.no_grad()
    def score_model(self, classifier: Classifier) -> float:
        """The meta-classifier's logit that ``classifier`` is backdoored (higher = more suspicious)."""
        self._check_fitted()
        if classifier.input_shape is not None and tuple(classifier.input_shape) != self.input_shape_:
            raise ShapeError(f"the model takes inputs {tuple(classifier.input_shape)} but {type(self).__name__} was "
                             f"fitted on shadow models of {self.input_shape_}; use a zoo of the same data.")
        logits = classifier.predict_logits(self._query_images())
        if logits.shape[1] != self.n_classes_:
            raise ShapeError(f"the model has {logits.shape[1]} classes but the shadow models had {self.n_classes_}.")
        return float(self.meta_(self._features(logits.cpu())[None]).flatten()[0])

    def score_models(self, models: Sequence[Classifier]) -> torch.Tensor:
        """Scores (len(models),)."""
        return torch.tensor([self.score_model(model) for model in models])

    def queries(self) -> torch.Tensor:
        """The learned query images (n_queries, C, H, W) in [0, 1]."""
        return self._query_images().detach()
