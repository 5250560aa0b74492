"""Calibrated model-level backdoor verdicts from a shadow-model zoo.

One place for what the audit check, ``mlsafety backdoor scan`` and the benchmark share:

* the model-level statistics of the audit's verdict (:func:`model_level_statistics`): per-class
  vectors, Neural Cleanse's reversed-trigger norms and the reachability of each class by a
  universal perturbation, each compared class by class with the clean shadows (MNTD and ULP
  are not used: on attack families they were not trained on they are close to chance,
  docs/backdoor.md);
* which clean shadows train the meta-detectors and which calibrate (:func:`split_clean_rows`):
  the first third of the clean shadows (by name) join every backdoored shadow to train MNTD
  and ULP; the other clean shadows never seen by a meta-detector form the null distribution
  of *every* statistic, so all p-values come from the same held-out clean models;
* the meta-detectors fitted once per zoo and cached as safetensors in its folder
  (:func:`fitted_meta_detectors`);
* Neural Cleanse and universal-perturbation statistics cached per setting
  (:func:`reverse_engineering_statistics`, :func:`universal_perturbation_statistics`);
* whether the zoo's models look like the audited model (:func:`zoo_mismatch`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlsafety.monitoring.backdoor._model_detector import BACKDOOR_MODEL_DETECTORS, QueryMetaDetector

if TYPE_CHECKING:
    from mlsafety.data.dataset import ImageDataset
    from mlsafety.models.classifier import Classifier
    from mlsafety.monitoring.backdoor.zoo import Zoo

# fewest held-out clean shadows for which a p-value can reach 0.05 (1 / (19 + 1))
MIN_CALIBRATION_SHADOWS = 19
META_DETECTORS = ("mntd", "ulp")


def split_clean_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(meta-training, calibration) clean rows: a third train the meta-detectors when at least
    :data:`MIN_CALIBRATION_SHADOWS` remain for calibration; otherwise all calibrate."""
    ordered = sorted(rows, key=lambda row: row["name"])
    n_meta = len(ordered) // 3
    if len(ordered) - n_meta < MIN_CALIBRATION_SHADOWS or n_meta < 2:
        return [], ordered
    return ordered[:n_meta], ordered[n_meta:]


def fitted_meta_detectors(zoo: Zoo, names: Sequence[str] = META_DETECTORS, seed: int = 0
                          ) -> dict[str, QueryMetaDetector]:
    """MNTD / ULP trained on the zoo's meta-training shadows, fitted once and cached.

    Returns ``{}`` when the zoo has no backdoored models or too few clean ones to spare.
    The cache file's name hashes the detector's parameters and the training models, so an
    extended zoo trains new detectors.
    """
    meta_rows, _ = split_clean_rows(zoo.rows("clean"))
    backdoored = zoo.rows("backdoored")
    if not meta_rows or not backdoored:
        return {}
    detectors: dict[str, QueryMetaDetector] = {}
    pairs = None
    for name in names:
        detector = BACKDOOR_MODEL_DETECTORS.create(name, seed=seed)
        payload = json.dumps({"params": detector.get_params(),
                              "models": [row["name"] for row in meta_rows + backdoored]}, sort_keys=True)
        path = zoo.folder / "detectors" / f"{name}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}.safetensors"
        if path.exists():
            detectors[name] = QueryMetaDetector.load(path)
            continue
        if pairs is None:
            from mlsafety.models import load_classifier

            pairs = [(row, load_classifier(zoo.folder / row["file"])) for row in meta_rows + backdoored]
        detector.fit([model for _, model in pairs], [int(row["family"] is not None) for row, _ in pairs])
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        detector.save(temporary)
        temporary.replace(path)
        detectors[name] = detector
    return detectors


def meta_key(detector: QueryMetaDetector) -> str:
    """Cache key of a fitted meta-detector's scores (changes whenever its queries do)."""
    digest = hashlib.sha256(detector.queries().numpy().tobytes()).hexdigest()[:10]
    return f"{detector.registry_name}:{digest}"


def reverse_engineering_key(method: str, settings: dict[str, Any], seed: int, reference: ImageDataset) -> str:
    """Cache key of Neural Cleanse / TABOR statistics for one setting and reference set."""
    return (f"{method}-stats:" + ",".join(f"{k}={v}" for k, v in sorted(settings.items()))
            + f":seed={seed}:reference={reference.name}:{len(reference)}")


def reverse_engineering_statistics(detector: Any) -> dict[str, Any]:
    """The cached summary of a fitted Neural Cleanse / TABOR."""
    return {"anomaly_index": detector.anomaly_index_, "norm_ratio": detector.norm_ratio_,
            "smallest_class": int(detector.l1_norms_.argmin()), "l1_norms": detector.l1_norms_.tolist()}


# the audit's model-level settings, the same in quick and full mode (so both reach the same verdict):
# chosen on the Fashion-MNIST zoo (benchmarks/backdoor_meta.py; docs/backdoor.md)
NC_SETTINGS: dict[str, Any] = {"steps": 25, "batch_size": 8, "n_samples": 128}
UAP_SETTINGS: dict[str, Any] = {"epsilon": 0.1, "steps": 40, "batch_size": 16, "n_samples": 256}


def universal_perturbation_key(settings: dict[str, Any], seed: int, reference: ImageDataset) -> str:
    """Cache key of universal-perturbation statistics for one setting and reference set."""
    return reverse_engineering_key("universal_perturbation", settings, seed, reference)


def universal_perturbation_statistics(detector: Any) -> dict[str, Any]:
    """The cached summary of a fitted :class:`UniversalPerturbation`."""
    return {"log_probabilities": detector.log_probabilities_.tolist(), "success": detector.success_.tolist(),
            "max_success": detector.max_success_}


def class_vectors(nc: dict[str, Any], uap: dict[str, Any]) -> dict[str, list[float]]:
    """The per-class statistics of the verdict from the cached summaries (higher = more suspicious).

    ``log(median_j n_j / n_k)`` for the reversed-trigger L1 norms ``n`` (Neural Cleanse's norm
    ratio, per class, on a log scale) and ``l_k - median_j l_j`` for the log-probabilities ``l``
    of reaching each class with a universal perturbation. Centring each model on its own
    median keeps which classes are easy and removes the model's overall level, which depends
    on its capacity and training: the shipped width-32 model has smaller triggers in every
    class than the width-16 shadows, and uncentred it looked anomalous (p = 0.037) while
    centred it is typical (p = 0.48); docs/backdoor.md.
    """
    logs = [-math.log(max(v, 1e-6)) for v in nc["l1_norms"]]
    probabilities = [float(v) for v in uap["log_probabilities"]]
    return {"neural_cleanse_class": _centred(logs), "universal_perturbation_class": _centred(probabilities)}


def _centred(values: list[float]) -> list[float]:
    ordered = sorted(values)
    n = len(ordered)
    median = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    return [v - median for v in values]


def model_level_statistics(classifier: Classifier, reference: ImageDataset, seed: int = 0,
                           nc_settings: dict[str, Any] | None = None,
                           uap_settings: dict[str, Any] | None = None) -> tuple[Any, Any, dict[str, list[float]]]:
    """Fit Neural Cleanse and the universal perturbations; returns (cleanse, uap, per-class vectors)."""
    from mlsafety.monitoring.backdoor.neural_cleanse import NeuralCleanse
    from mlsafety.monitoring.backdoor.universal_perturbation import UniversalPerturbation

    cleanse = NeuralCleanse(seed=seed, **(nc_settings or NC_SETTINGS)).fit(classifier, reference)
    uap = UniversalPerturbation(seed=seed, **(uap_settings or UAP_SETTINGS)).fit(classifier, reference)
    vectors = class_vectors(reverse_engineering_statistics(cleanse), universal_perturbation_statistics(uap))
    return cleanse, uap, vectors


def shadow_class_vectors(zoo: Zoo, names: Sequence[str], reference: ImageDataset, seed: int = 0,
                         nc_settings: dict[str, Any] | None = None,
                         uap_settings: dict[str, Any] | None = None) -> dict[str, list[list[float]]]:
    """``{statistic: (n, K) table}`` over the shadows ``names`` (computed once per zoo and cached)."""
    from mlsafety.monitoring.backdoor.neural_cleanse import NeuralCleanse
    from mlsafety.monitoring.backdoor.universal_perturbation import UniversalPerturbation

    nc_settings, uap_settings = nc_settings or NC_SETTINGS, uap_settings or UAP_SETTINGS
    nc = zoo.statistics(reverse_engineering_key("neural_cleanse", nc_settings, seed, reference),
                        lambda model: reverse_engineering_statistics(
                            NeuralCleanse(seed=seed, **nc_settings).fit(model, reference)), names=names)
    uap = zoo.statistics(universal_perturbation_key(uap_settings, seed, reference),
                         lambda model: universal_perturbation_statistics(
                             UniversalPerturbation(seed=seed, **uap_settings).fit(model, reference)), names=names)
    tables: dict[str, list[list[float]]] = {}
    for name in names:
        for statistic, vector in class_vectors(nc[name], uap[name]).items():
            tables.setdefault(statistic, []).append(vector)
    return tables


def zoo_mismatch(classifier: Classifier, zoo: Zoo) -> str | None:
    """Why the zoo's shadows may not represent ``classifier`` (None when they look alike)."""
    from mlsafety.models import load_classifier

    rows = zoo.rows("clean")
    if not rows:
        return None
    shadow = load_classifier(zoo.folder / rows[0]["file"])
    ours, theirs = classifier.n_parameters(), shadow.n_parameters()
    if ours != theirs or tuple(classifier.input_shape or ()) != tuple(shadow.input_shape or ()):
        return (f"the shadow models of zoo {zoo.config.identity} ({zoo.config.architecture}, width "
                f"{zoo.config.width}, {theirs:,} parameters, {zoo.config.epochs} epochs on {zoo.config.n_train:,} "
                f"images) differ from this model ({ours:,} parameters), so the p-values assume that its statistics "
                "behave like theirs; build a zoo of the same architecture and width for an exact calibration")
    return None
