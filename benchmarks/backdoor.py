"""Throughput of the backdoor defences on the default model (CPU unless --device cuda).

Neural Cleanse: seconds per class (all classes are optimised in one batched pass, so
this is the total divided by K) and per optimisation step. Spectral Signatures and
Activation Clustering: samples per second, with and without the feature pass. STRIP:
inputs per second.

    python benchmarks/backdoor.py [--device cuda] [--steps 50]

Writes benchmarks/results/backdoor_throughput_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from mlsafety.data import default_splits
from mlsafety.models import load_default_classifier
from mlsafety.monitoring.backdoor import STRIP, ActivationClustering, NeuralCleanse, SpectralSignatures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--n-samples", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    classifier = load_default_classifier(device=args.device)
    splits = default_splits()
    row: dict[str, object] = {"device": args.device, "threads": args.threads, "platform": platform.platform(),
                              "load_average_at_start": os.getloadavg()[0], "torch": torch.__version__}
    cleanse = NeuralCleanse(steps=args.steps, batch_size=16, n_samples=1000).fit(classifier, splits["validation"])
    n_classes = cleanse.masks_.shape[0]
    row["neural_cleanse"] = {"steps": args.steps, "batch_size": 16, "seconds": cleanse.seconds_,
                             "seconds_per_class": cleanse.seconds_ / n_classes,
                             "seconds_per_step": cleanse.seconds_ / args.steps,
                             "seconds_per_class_at_300_steps": cleanse.seconds_ / n_classes * 300 / args.steps}
    train = splits["train"].head(args.n_samples, seed=0)
    start = time.perf_counter()
    features, _ = classifier.features(train.images)
    feature_seconds = time.perf_counter() - start
    for key, detector in (("spectral_signatures", SpectralSignatures()),
                          ("activation_clustering", ActivationClustering())):
        start = time.perf_counter()
        detector.fit_features(features, train.labels, train.n_classes)
        seconds = time.perf_counter() - start
        row[key] = {"n_samples": len(train), "fit_seconds": seconds,
                    "samples_per_second": len(train) / seconds,
                    "samples_per_second_with_features": len(train) / (seconds + feature_seconds)}
    strip = STRIP().fit(classifier, splits["validation"])
    inputs = splits["test"].images[:500]
    start = time.perf_counter()
    strip.score(inputs)
    seconds = time.perf_counter() - start
    row["strip"] = {"n_inputs": 500, "n_perturbations": strip.n_perturbations, "seconds": seconds,
                    "inputs_per_second": 500 / seconds}
    row["load_average_at_end"] = os.getloadavg()[0]
    out = Path(__file__).parent / "results" / f"backdoor_throughput_{args.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2))
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
