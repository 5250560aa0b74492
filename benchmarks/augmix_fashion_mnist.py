"""AugMix and PixMix evidence on Fashion-MNIST: the default architecture trained with AugMix
(JSD loss), with PixMix (fractal mixing pictures) and without either (same epochs, seed,
optimiser), compared on clean accuracy and mCE over the 15 benchmark corruptions
(Fashion-MNIST-C made with our corruptions, CIFAR severity table).

    python benchmarks/augmix_fashion_mnist.py train --epochs 6 --kinds standard,augmix,pixmix
    python benchmarks/augmix_fashion_mnist.py evaluate --kinds standard,augmix,pixmix

The standard model is the baseline of the CE normalisation (so its mCE is 100% by definition);
we also report raw mean corruption errors.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mlsafety.data import default_splits
from mlsafety.models import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    Classifier,
    accuracy,
    build_architecture,
    cache_dir,
    load_classifier,
    save_checkpoint,
    train_classifier,
)

ROOT = cache_dir() / "issue3"
RESULTS = Path(__file__).parent / "results"


def _train(kind: str, epochs: int, seed: int) -> None:
    from mlsafety.robustness.training.augmix import AugMix, AugMixLoss
    from mlsafety.robustness.training.pixmix import PixMix

    splits = default_splits()
    torch.manual_seed(seed)
    kwargs = {"in_channels": 1, "n_classes": 10}
    module = build_architecture("small_cnn", **kwargs).eval()
    classifier = Classifier(module, mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD,
                            class_names=splits["train"].class_names, input_shape=(1, 28, 28), name="small_cnn")
    extra_kwargs = {}
    if kind == "augmix":
        extra_kwargs["loss_fn"] = AugMixLoss(AugMix(seed=seed), seed=seed)
    elif kind == "pixmix":
        extra_kwargs["augment"] = PixMix(seed=seed)
    history = train_classifier(classifier, splits["train"], epochs=epochs, seed=seed, progress=False,
                               **extra_kwargs)
    test_accuracy = accuracy(classifier, splits["test"])
    path = ROOT / f"small_cnn_{kind}_e{epochs}_s{seed}.safetensors"
    save_checkpoint(classifier, path, "small_cnn", kwargs, {
        "dataset": "fashion-mnist", "test_accuracy": test_accuracy, "epochs": epochs, "seed": seed,
        "training_seconds": round(history.seconds, 1), "defence": kind})
    print(f"{kind}: test accuracy {test_accuracy:.4f}, {history.seconds:.0f} s -> {path}", flush=True)


def _evaluate(epochs: int, seed: int, n_test: int, batch_size: int, kinds: list[str]) -> None:
    from mlsafety.metrics.corruption import mean_corruption_error, relative_mean_corruption_error
    from mlsafety.robustness.corruptions import CorruptionResult, corruption_names, evaluate_corruptions

    test = default_splits()["test"].head(n_test, seed=0)
    results = {}
    for kind in kinds:
        cache = ROOT / f"eval_{kind}_e{epochs}_s{seed}_n{len(test)}.json"
        if cache.exists():
            saved = json.loads(cache.read_text())
            results[kind] = CorruptionResult({k: np.asarray(v) for k, v in saved["accuracy"].items()},
                                             saved["severities"], saved["clean_accuracy"], saved["n_samples"])
            continue
        classifier = load_classifier(ROOT / f"small_cnn_{kind}_e{epochs}_s{seed}.safetensors")
        start = time.perf_counter()
        results[kind] = evaluate_corruptions(classifier, test, corruption_names("benchmark"),
                                             seed=1, batch_size=batch_size)
        cache.write_text(json.dumps(results[kind].to_dict()))
        print(f"{kind}: evaluated in {time.perf_counter() - start:.0f} s", flush=True)
    if "standard" not in results or "augmix" not in results:
        return
    base = results["standard"]
    summary = {"n_test": len(test), "epochs": epochs, "seed": seed}
    for kind, result in results.items():
        errors = result.errors()
        mce = mean_corruption_error(errors, base.errors())
        rel = relative_mean_corruption_error(errors, result.clean_error, base.errors(), base.clean_error)
        raw = float(sum(e.mean() for e in errors.values()) / len(errors))
        summary[kind] = {"clean_accuracy": 1 - result.clean_error, "mCE_vs_standard": mce,
                         "relative_mCE_vs_standard": rel, "mean_corruption_error": raw,
                         "errors": {k: v.tolist() for k, v in errors.items()}}
        print(f"{kind:9s} clean acc {1 - result.clean_error:.4f}  mean corruption error {raw:.4f}  "
              f"mCE {mce:.2%}  relative mCE {rel:.2%}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"augmix_fashion_mnist_e{epochs}.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=["train", "evaluate"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default="standard,augmix,pixmix")
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.stage == "train":
        for kind in args.kinds.split(","):
            _train(kind, args.epochs, args.seed)
    else:
        _evaluate(args.epochs, args.seed, args.n_test, args.batch_size, args.kinds.split(","))


if __name__ == "__main__":
    main()
