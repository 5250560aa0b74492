"""Model-level backdoor detection on the shadow-model zoo: calibration and leave-one-family-out.

Uses the zoo built by ``mlsafety backdoor zoo build`` (default configuration: width-16
SmallCNN, 10,000 Fashion-MNIST training images, 3 epochs) and writes
``benchmarks/results/backdoor_meta.json`` (atomically, after every stage):

* **Calibration**: Neural Cleanse's anomaly index (with the MAD median fix) on every clean
  shadow, with the audit's quick and full settings; leave-one-out FPR of the p <= 0.05 rule,
  and how often the uncalibrated rule (index > 2) fires on the same clean models.
* **Leave-one-family-out**: for each attack family F, MNTD and ULP are trained on the first
  half of the clean shadows and on the backdoored shadows of the *other* families, and tested
  on the second half of the clean shadows against the F models (never seen in training).
  AUROC and TPR at 5% FPR with 95% bootstrap intervals (2,000 resamples of test models).

    nice -n 10 python benchmarks/backdoor_meta.py [--skip-nc]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from mlsafety.data import default_splits
from mlsafety.monitoring.backdoor import MNTD, ULP, NeuralCleanse
from mlsafety.monitoring.backdoor.calibration import calibrated_decision
from mlsafety.monitoring.backdoor.zoo import FAMILIES, Zoo, ZooConfig

torch.set_num_threads(1)
RESULTS = Path(__file__).parent / "results" / "backdoor_meta.json"
NC_SETTINGS = {"quick": {"steps": 25, "batch_size": 8, "n_samples": 128},
               "full": {"steps": 120, "batch_size": 16, "n_samples": 1000}}


def save(payload: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    temporary = RESULTS.with_name(f".{RESULTS.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=1))
    os.replace(temporary, RESULTS)


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float = 0.05) -> float:
    negatives = np.sort(scores[labels == 0])
    # the threshold flags at most fpr of the clean test models
    k = int(np.floor(fpr * negatives.size))
    threshold = negatives[-k - 1] if k < negatives.size else -np.inf
    return float(np.mean(scores[labels == 1] > threshold))


def bootstrap(labels: np.ndarray, scores: np.ndarray, n: int = 2000, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    aurocs, tprs = [], []
    for _ in range(n):
        index = np.concatenate([rng.choice(positives, positives.size), rng.choice(negatives, negatives.size)])
        aurocs.append(roc_auc_score(labels[index], scores[index]))
        tprs.append(tpr_at_fpr(labels[index], scores[index]))
    return {"auroc": float(roc_auc_score(labels, scores)), "auroc_ci": np.percentile(aurocs, [2.5, 97.5]).tolist(),
            "tpr_at_5fpr": tpr_at_fpr(labels, scores), "tpr_ci": np.percentile(tprs, [2.5, 97.5]).tolist(),
            "n_backdoored": int(positives.size), "n_clean": int(negatives.size)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-nc", action="store_true")
    args = parser.parse_args()
    zoo = Zoo(ZooConfig())
    rows = zoo.rows()
    payload: dict[str, Any] = {"zoo": zoo.config.identity, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs "
                               "(shared with other jobs), torch threads 1",
                               "date": time.strftime("%Y-%m-%d", time.gmtime()),
                               "models": [{k: row[k] for k in ("name", "family", "clean_accuracy",
                                                                "attack_success_rate", "training_seconds", "attack")}
                                          for row in rows]}
    save(payload)
    clean_pairs = zoo.load_models("clean")
    backdoored_pairs = zoo.load_models("backdoored")
    if not args.skip_nc:
        validation = default_splits()["validation"].head(1000, seed=0)
        payload["neural_cleanse"] = {}
        for mode, settings in NC_SETTINGS.items():
            start = time.perf_counter()
            indices = [NeuralCleanse(seed=0, **settings).fit(model, validation).anomaly_index_
                       for _, model in clean_pairs]
            decision = calibrated_decision({"index": 0.0}, {"index": indices}, alpha=0.05, zoo=zoo.config.identity)
            payload["neural_cleanse"][mode] = {
                "clean_indices": indices, "uncalibrated_fpr": float(np.mean(np.asarray(indices) > 2)),
                "calibrated_measured_fpr": decision.measured_fpr, "n_clean": len(indices),
                "seconds": time.perf_counter() - start}
            save(payload)
    half = len(clean_pairs) // 2
    clean_train, clean_test = clean_pairs[:half], clean_pairs[half:]
    payload["leave_one_family_out"] = {}
    for name, factory in (("mntd", MNTD), ("ulp", ULP)):
        table: dict[str, Any] = {}
        for family in FAMILIES:
            train = clean_train + [pair for pair in backdoored_pairs if pair[0]["family"] != family]
            test_backdoored = [pair for pair in backdoored_pairs if pair[0]["family"] == family]
            if not test_backdoored:
                continue
            start = time.perf_counter()
            detector = factory(seed=0).fit([m for _, m in train], [int(r["family"] is not None) for r, _ in train])
            test = clean_test + test_backdoored
            labels = np.array([int(r["family"] is not None) for r, _ in test])
            scores = detector.score_models([m for _, m in test]).numpy()
            table[family] = {**bootstrap(labels, scores), "seconds": time.perf_counter() - start,
                             "n_train_models": len(train)}
            print(name, family, table[family], flush=True)
            payload["leave_one_family_out"][name] = table
            save(payload)
        table["mean_auroc"] = float(np.mean([table[f]["auroc"] for f in FAMILIES if f in table]))
        payload["leave_one_family_out"][name] = table
        save(payload)


if __name__ == "__main__":
    main()
