"""Activation Clustering: poisoned samples form their own cluster within the target class."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mlsafety._validation import check_in, check_is_fitted, check_labels, check_positive, make_generator
from mlsafety.base import Detector
from mlsafety.monitoring.backdoor._features import check_features, features_and_labels
from mlsafety.registry import BACKDOOR_DETECTORS

if TYPE_CHECKING:
    from mlsafety.data.dataset import ImageDataset
    from mlsafety.models.classifier import Classifier


def two_means(points: torch.Tensor, generator: torch.Generator, n_init: int = 3,
              n_iter: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's 2-means with k-means++ seeding; the best of ``n_init`` runs by inertia.

    Returns centres (2, D) and assignments (N,).
    """
    best: tuple[float, torch.Tensor, torch.Tensor] | None = None
    n = points.shape[0]
    for _ in range(n_init):
        first = points[torch.randint(n, (1,), generator=generator, device=generator.device).to(points.device)]
        weights = ((points - first) ** 2).sum(1)
        if float(weights.sum()) <= 0:
            weights = torch.ones_like(weights)
        second_index = torch.multinomial(weights.cpu(), 1, generator=torch.Generator().manual_seed(
            int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device))))
        centres = torch.cat([first, points[second_index.to(points.device)]])
        for _ in range(n_iter):
            assignment = torch.cdist(points, centres).argmin(1)
            new = torch.stack([points[assignment == k].mean(0) if bool((assignment == k).any()) else centres[k]
                               for k in range(2)])
            if torch.allclose(new, centres):
                break
            centres = new
        assignment = torch.cdist(points, centres).argmin(1)
        inertia = float(((points - centres[assignment]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, centres, assignment)
    assert best is not None
    return best[1], best[2]


def silhouette_two(points: torch.Tensor, assignment: torch.Tensor) -> float:
    """Mean silhouette coefficient of a two-cluster partition (0 if a cluster is empty)."""
    sizes = torch.bincount(assignment, minlength=2)
    if int(sizes.min()) < 2:
        return 0.0
    distances = torch.cdist(points, points)
    same = assignment[:, None] == assignment[None, :]
    own = (distances * same).sum(1) / (sizes[assignment] - 1)
    other = (distances * ~same).sum(1) / sizes[1 - assignment]
    return float(((other - own) / torch.maximum(own, other).clamp_min(1e-12)).mean())


@BACKDOOR_DETECTORS.register("activation_clustering", level="data")
class ActivationClustering(Detector):
    """Activation Clustering of Chen et al. (2018), *Detecting Backdoor Attacks on Deep
    Neural Networks by Activation Clustering* (SafeAI@AAAI 2019).

    For each class the penultimate activations are reduced to ``n_components`` dimensions
    and split by 2-means; in a poisoned class the triggered samples form a separate,
    smaller cluster. The paper reduces with ICA; ICA is a whitening followed by a rotation
    and k-means is rotation-invariant, so whitened PCA (``reduction="ica"``) gives the
    same partition. Whitening gives every kept direction unit variance, which dilutes a
    poison direction that dominates the variance, so the default is plain PCA
    (``reduction="pca"``: projection on the top components without rescaling). The paper
    decides per cluster (relative size, silhouette score); to give a
    per-sample score (higher = more likely poisoned) this implementation combines both::

        score_i = max(silhouette_c, 0) * (1 + m_i) / 2,
        m_i = (d(z_i, centre_large) - d(z_i, centre_small)) / (d(z_i, centre_large) + d(z_i, centre_small))

    where ``silhouette_c`` measures how well two clusters explain class ``c`` and
    ``m_i`` in [-1, 1] how firmly sample ``i`` sits in the smaller cluster.

    Parameters
    ----------
    n_components : int
        Dimensions kept before clustering (the paper uses 10).
    reduction : {"pca", "ica"}
        Plain PCA projection, or whitened PCA (the partition the paper's ICA gives).
    max_silhouette_samples : int
        Samples per class used to estimate the silhouette (cost is quadratic).
    seed : int or None
        Seeds k-means initialisation and the silhouette subsample.

    Attributes
    ----------
    scores_ : (N,) scores of the fitted (training) samples.
    silhouette_ : (K,) per-class silhouette of the two-cluster split.
    relative_size_ : (K,) fraction of each class in its smaller cluster.
    """

    def __init__(self, n_components: int = 10, reduction: str = "pca", max_silhouette_samples: int = 1000,
                 seed: int | None = 0) -> None:
        self.n_components = n_components
        self.reduction = reduction
        self.max_silhouette_samples = max_silhouette_samples
        self.seed = seed

    def fit(self, classifier: Classifier, data: ImageDataset) -> ActivationClustering:
        """Cluster the training samples of ``data`` (labels as given) class by class."""
        self.classifier_ = classifier
        features, _ = classifier.features(data.images)
        return self.fit_features(features, data.labels.to(features.device), data.n_classes)

    def fit_features(self, features: torch.Tensor, labels: torch.Tensor,
                     n_classes: int | None = None) -> ActivationClustering:
        """Fit from precomputed features (N, D) and labels (N,)."""
        owner = type(self).__name__
        check_positive(self.n_components, "n_components", owner, integer=True)
        check_positive(self.max_silhouette_samples, "max_silhouette_samples", owner, integer=True)
        check_in(self.reduction, ("pca", "ica"), "reduction", owner)
        features = check_features(features)
        labels = check_labels(labels, features.shape[0]).to(features.device)
        n_classes = n_classes or int(labels.max()) + 1
        generator = make_generator(self.seed, "cpu")
        dim = min(self.n_components, features.shape[1])
        device = features.device
        self.means_ = torch.zeros(n_classes, features.shape[1], device=device)
        self.projections_ = torch.zeros(n_classes, features.shape[1], dim, device=device)
        self.centres_ = torch.zeros(n_classes, 2, dim, device=device)
        self.small_cluster_ = torch.zeros(n_classes, dtype=torch.long, device=device)
        self.silhouette_ = torch.zeros(n_classes, device=device)
        self.relative_size_ = torch.full((n_classes,), float("nan"), device=device)
        # K small: a loop over classes, batched inside
        for c in range(n_classes):
            members = labels == c
            if int(members.sum()) < 4:
                continue
            points = features[members].double()
            mean = points.mean(0)
            _, singular, vh = torch.linalg.svd(points - mean, full_matrices=False)
            k = min(dim, vh.shape[0])
            scale = (singular[:k] / (points.shape[0] - 1) ** 0.5).clamp_min(1e-8)
            if self.reduction == "pca":
                scale = torch.ones_like(scale)
            projection = torch.zeros(features.shape[1], dim, dtype=torch.float64, device=device)
            projection[:, :k] = vh[:k].T / scale
            reduced = (points - mean) @ projection
            centres, assignment = two_means(reduced, generator)
            sizes = torch.bincount(assignment, minlength=2)
            small = int(sizes.argmin())
            sample = torch.randperm(reduced.shape[0], generator=generator)[: self.max_silhouette_samples]
            self.means_[c], self.projections_[c] = mean.float(), projection.float()
            self.centres_[c], self.small_cluster_[c] = centres.float(), small
            self.silhouette_[c] = silhouette_two(reduced[sample.to(device)], assignment[sample.to(device)])
            self.relative_size_[c] = float(sizes[small]) / float(sizes.sum())
        self.scores_ = self.score_features(features, labels)
        return self

    def score_features(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of features under the fitted per-class clusterings."""
        check_is_fitted(self, ["means_", "centres_"])
        features = check_features(features)
        labels = check_labels(labels, features.shape[0], self.means_.shape[0]).to(features.device)
        reduced = torch.einsum("nd,ndk->nk", features - self.means_[labels], self.projections_[labels])
        centres = self.centres_[labels]
        small = self.small_cluster_[labels]
        d_small = (reduced - centres[torch.arange(len(labels)), small]).norm(dim=1)
        d_large = (reduced - centres[torch.arange(len(labels)), 1 - small]).norm(dim=1)
        margin = (d_large - d_small) / (d_large + d_small).clamp_min(1e-12)
        return self.silhouette_[labels].clamp_min(0) * (1 + margin) / 2

    def score(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Scores (N,) of images; labels ``y`` default to the model's predictions."""
        check_is_fitted(self, "means_")
        features, labels = features_and_labels(self, x, y)
        return self.score_features(features, labels)
