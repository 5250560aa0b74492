"""Calibrated model-level backdoor verdicts from a shadow-model zoo.

One place for what the audit check, ``mlsafety backdoor scan`` and the benchmark share:

* which clean shadows train the meta-detectors and which calibrate (:func:`split_clean_rows`):
  the first third of the clean shadows (by name) join every backdoored shadow to train MNTD
  and ULP; the other clean shadows never seen by a meta-detector form the null distribution
  of *every* statistic, so all p-values come from the same held-out clean models;
* the meta-detectors fitted once per zoo and cached as safetensors in its folder
  (:func:`fitted_meta_detectors`);
* Neural Cleanse statistics cached per setting (:func:`reverse_engineering_statistics`);
* whether the zoo's models look like the audited model (:func:`zoo_mismatch`).
"""

from __future__ import annotations

import hashlib
import json
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
        temporary = path.with_name(f".{path.name}.tmp")
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
