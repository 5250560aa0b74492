"""Deep nearest neighbours on normalised features."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from mlsafety._validation import check_positive
from mlsafety.exceptions import parameter_error
from mlsafety.monitoring.ood.base import OODDetector
from mlsafety.registry import OOD_DETECTORS


def _normalise(features: torch.Tensor) -> torch.Tensor:
    return features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)


@OOD_DETECTORS.register("knn", inputs="features")
class KNN(OODDetector):
    """Distance to the k-th nearest in-distribution feature (after L2 normalisation).

    Sun, Ming, Zhu & Li (2022), "Out-of-Distribution Detection with Deep Nearest
    Neighbors", ICML.

    .. math:: s(x) = \\lVert z(x) - z_{(k)} \\rVert_2, \\quad z = f / \\lVert f \\rVert_2

    where :math:`z_{(k)}` is the k-th nearest normalised training feature. The bank is an
    exact faiss ``IndexFlatL2`` (CPU); scores are returned on the input's device.

    Parameters
    ----------
    k : int
        The neighbour rank (50 in the paper for CIFAR-10 with its full training set; tune it).
    normalize : bool
        L2-normalise features (the paper's key ingredient).
    batch_size : int
        Queries per faiss search call (bounds memory).

    Examples
    --------
    >>> scores = KNN(k=50).fit(classifier, train).score(images)
    """

    uses_features = True
    tunable: ClassVar[dict[str, list[Any]]] = {"k": [1, 5, 10, 20, 50, 100, 200]}

    def __init__(self, k: int = 50, normalize: bool = True, batch_size: int = 8192) -> None:
        self.k = k
        self.normalize = normalize
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        check_positive(self.k, "k", type(self).__name__, integer=True)
        check_positive(self.batch_size, "batch_size", type(self).__name__, integer=True)

    def _fit(self, features, logits, labels, head) -> None:  # type: ignore[no-untyped-def]
        import faiss

        if self.k > features.shape[0]:
            bound = f"at most the number of fitted samples ({features.shape[0]})"
            raise parameter_error("k", type(self).__name__, bound, self.k,
                                  "Lower k or fit on more in-distribution data.")
        bank = _normalise(features) if self.normalize else features
        bank_np = np.ascontiguousarray(bank.detach().cpu().numpy(), dtype=np.float32)
        self.index_ = faiss.IndexFlatL2(bank_np.shape[1])
        self.index_.add(bank_np)

    def _score(self, features: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        queries = _normalise(features) if self.normalize else features  # type: ignore[arg-type]
        queries_np = np.ascontiguousarray(queries.detach().cpu().numpy(), dtype=np.float32)
        kth = []
        for start in range(0, len(queries_np), self.batch_size):
            squared, _ = self.index_.search(queries_np[start:start + self.batch_size], self.k)
            kth.append(squared[:, -1])
        distances = np.sqrt(np.maximum(np.concatenate(kth), 0.0))
        return torch.from_numpy(distances).to(logits.device)
