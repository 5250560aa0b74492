"""Wall and CPU time of the training recipes whose times the docs state.

* ``pgd_at``: the Linf PGD adversarial training used by ``benchmarks/unforeseen_fidelity.py``
  (SmallCNN, Linf 0.1, 3 inner steps, 10,000 training images, 2 epochs; docs/unforeseen.md);
* ``outlier_exposure``: the fine-tuning of the default model in ``benchmarks/ood.py oe``
  (one epoch over the training split, 5,000 auxiliary outliers, weight 0.5; docs/ood.md).

Nothing is cached or saved: each recipe is run from scratch, so the figure is what a user who
runs the benchmark for the first time waits. Wall time depends on other jobs; CPU time (the
process's user + system seconds) much less, so both are recorded with the load average.

Results: ``benchmarks/results/training_times.json`` (written after each recipe).

Run: ``python benchmarks/training_times.py [--recipes pgd_at,outlier_exposure] [--threads 1]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from mlsafety.data import default_splits
from mlsafety.models import FASHION_MNIST_MEAN, FASHION_MNIST_STD, Classifier, build_architecture, train_classifier
from mlsafety.report import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "training_times.json"


def pgd_at(splits: dict) -> dict:
    from mlsafety.robustness.training.adversarial import PGDAdversarialLoss

    train = splits["train"].head(10000, seed=0)
    classifier = Classifier(build_architecture("small_cnn", in_channels=1, n_classes=10).eval(),
                            mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD, class_names=train.class_names,
                            input_shape=(1, 28, 28), name="small_cnn")
    train_classifier(classifier, train, epochs=2, loss_fn=PGDAdversarialLoss(epsilon=0.1, n_steps=3), seed=0,
                     progress=False)
    return {"recipe": "SmallCNN, PGD-AT Linf 0.1, 3 inner steps, 10,000 images, 2 epochs"}


def outlier_exposure(splits: dict) -> dict:
    from mlsafety.data.ood import auxiliary_outliers
    from mlsafety.models import load_default_classifier
    from mlsafety.monitoring.ood import outlier_exposure_finetune

    classifier = load_default_classifier()
    outliers = auxiliary_outliers(splits["train"].image_shape, 5000, seed=0)
    outlier_exposure_finetune(classifier, splits["train"], outliers, epochs=1, learning_rate=1e-3, weight=0.5,
                              seed=0)
    return {"recipe": "default model, Outlier Exposure, 1 epoch over the training split, 5,000 outliers, weight 0.5"}


RECIPES = {"pgd_at": pgd_at, "outlier_exposure": outlier_exposure}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [name.strip() for name in args.recipes.split(",") if name.strip()]
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choose from {sorted(RECIPES)}")
    splits = default_splits()
    payload: dict = {"command": f"python benchmarks/training_times.py --recipes {','.join(names)} "
                                f"--threads {args.threads}",
                     "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                                 "torch": torch.__version__, "threads": torch.get_num_threads(),
                                 "cpu_capability": torch.backends.cpu.get_cpu_capability()},
                     "runs": {}}
    for name in names:
        load_before = os.getloadavg()
        wall, cpu = time.perf_counter(), time.process_time()
        run = RECIPES[name](splits)
        run.update(wall_seconds=round(time.perf_counter() - wall, 1), cpu_seconds=round(time.process_time() - cpu, 1),
                   date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   load_average_before=[round(v, 2) for v in load_before],
                   load_average_after=[round(v, 2) for v in os.getloadavg()])
        payload["runs"][name] = run
        write_json_atomic(RESULTS, payload)
        print(f"{name}: {run['wall_seconds']} s wall, {run['cpu_seconds']} s CPU")


if __name__ == "__main__":
    main()
