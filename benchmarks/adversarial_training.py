"""Adversarial training evidence on Fashion-MNIST (Linf epsilon 0.1), CPU-sized.

Trains the default architecture (SmallCNN, width 32) with PGD adversarial training,
fast FGSM-RS and TRADES on a seeded subset of the training split, saves each checkpoint under
``~/.cache/mlsafety/`` and records clean and PGD-20 accuracy in
``benchmarks/results/adversarial_training.json``. AutoAttack figures come from
``benchmarks/attacks.py --evaluate-defences``.

Run: ``python benchmarks/adversarial_training.py [--n-train 20000] [--epochs 4] [--methods pgd,fgsm_rs,trades]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mlsafety.data import default_splits
from mlsafety.models import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    Classifier,
    accuracy,
    build_architecture,
    cache_dir,
    save_checkpoint,
    train_classifier,
)
from mlsafety.robustness.attacks.pgd import PGD
from mlsafety.robustness.training.adversarial import FastFGSMLoss, PGDAdversarialLoss, TRADESLoss

RESULTS = Path(__file__).parent / "results" / "adversarial_training.json"
EPSILON = 0.1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--n-steps", type=int, default=5)
    parser.add_argument("--methods", default="pgd,fgsm_rs,trades")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    splits = default_splits()
    train = splits["train"].head(args.n_train, seed=0)
    test = splits["test"].head(1000, seed=1)
    losses = {
        "pgd": PGDAdversarialLoss(epsilon=EPSILON, n_steps=args.n_steps),
        "fgsm_rs": FastFGSMLoss(epsilon=EPSILON),
        "trades": TRADESLoss(epsilon=EPSILON, n_steps=args.n_steps, beta=6.0),
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for method in args.methods.split(","):
        torch.manual_seed(0)
        kwargs = {"in_channels": 1, "n_classes": 10}
        module = build_architecture("small_cnn", **kwargs).eval()
        classifier = Classifier(module, mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD,
                                class_names=train.class_names, input_shape=(1, 28, 28), name="small_cnn")
        start = time.perf_counter()
        history = train_classifier(classifier, train, epochs=args.epochs, loss_fn=losses[method], seed=0,
                                   progress=False)
        seconds = time.perf_counter() - start
        clean = accuracy(classifier, test)
        adversarial = PGD(epsilon=EPSILON, n_steps=20, step_size=0.01)(test.images, test.labels, classifier)
        robust = float((classifier.predict(adversarial) == test.labels).float().mean())
        path = cache_dir() / f"small_cnn_fmnist_{method}_linf0.1.safetensors"
        save_checkpoint(classifier, path, "small_cnn", kwargs, {
            "dataset": "fashion-mnist-train", "defence": method, "epsilon": EPSILON, "n_train": args.n_train,
            "epochs": args.epochs, "test_accuracy": clean})
        results[method] = {
            "checkpoint": str(path), "n_train": args.n_train, "epochs": args.epochs, "inner_steps": args.n_steps,
            "train_seconds": round(seconds, 1), "train_loss": history.train_loss,
            "clean_accuracy_1000": clean, "pgd20_accuracy_1000": robust, "threads": args.threads,
        }
        RESULTS.write_text(json.dumps(results, indent=2))
        print(method, results[method], flush=True)


if __name__ == "__main__":
    main()
