"""Attack benchmarks: throughput against torchattacks, and AutoAttack against the reference.

Three parts, each writing a JSON file under ``benchmarks/results/``:

* ``throughput``: PGD-10 and APGD-CE images/s, ours vs torchattacks on the same model, data and
  settings in one run, next to the forward+backward limit (steps x the time of one
  forward+backward pass); optional bf16 + channels_last path (``--precision bf16``).
* ``reference``: robust accuracy of our AutoAttack (standard) vs the reference ``pyautoattack`` on
  the same models and images: the default Fashion-MNIST model and, when their checkpoints
  exist, the adversarially trained ones from ``benchmarks/adversarial_training.py``.
* ``reference_digits``: the same on the tiny 16 px digits model of the tests (200 images).
* ``l2``: APGD-CE + APGD-T at an L2 budget on the same models.

Run: ``python benchmarks/attacks.py throughput|reference|reference_digits|l2 [--n 100] [--epsilon 0.1] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from mlsafety.data import default_splits
from mlsafety.models import Classifier, cache_dir, load_classifier, load_default_classifier
from mlsafety.robustness.attacks import APGD, PGD, AutoAttack

RESULTS = Path(__file__).parent / "results"


def _module(classifier: Classifier) -> nn.Module:
    return nn.Sequential(classifier.normalize, classifier.module).eval()


def _accuracy(classifier: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((classifier.predict(x) == y).float().mean())


def _timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def throughput(args: argparse.Namespace) -> dict:
    import torchattacks

    classifier = load_default_classifier()
    test = default_splits()["test"].head(args.n, seed=1)
    x, y = test.images, test.labels
    module = _module(classifier)
    classifier.batch_size = args.n
    eps, steps = args.epsilon, 10
    alpha = 2.5 * eps / steps

    def forward_backward() -> torch.Tensor:
        inputs = x.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(module(inputs), y)
        return torch.autograd.grad(loss, inputs)[0]

    _timed(forward_backward, 2)
    one_pass, _ = _timed(forward_backward, args.repeats)
    rows = {}
    runs = {
        "pgd10_ours": lambda: PGD(epsilon=eps, n_steps=steps, step_size=alpha, precision=args.precision)(
            x, y, classifier),
        "pgd10_torchattacks": lambda: torchattacks.PGD(module, eps=eps, alpha=alpha, steps=steps,
                                                       random_start=True)(x, y),
        f"apgd{args.apgd_steps}_ours": lambda: APGD(epsilon=eps, n_steps=args.apgd_steps,
                                                    precision=args.precision)(x, y, classifier),
        f"apgd{args.apgd_steps}_torchattacks": lambda: torchattacks.APGD(module, eps=eps, steps=args.apgd_steps,
                                                                         n_restarts=1, loss="ce", seed=0)(x, y),
    }
    for name, run in runs.items():
        seconds, adversarial = _timed(run, args.repeats)
        n_steps = steps if name.startswith("pgd") else args.apgd_steps
        rows[name] = {"seconds": round(seconds, 4), "images_per_second": round(args.n / seconds, 1),
                      "robust_accuracy": _accuracy(classifier, adversarial, y),
                      "limit_images_per_second": round(args.n / (n_steps * one_pass), 1)}
        print(name, rows[name], flush=True)
    for attack in ("pgd10", f"apgd{args.apgd_steps}"):
        rows[f"{attack}_speedup"] = round(rows[f"{attack}_torchattacks"]["seconds"] / rows[f"{attack}_ours"]["seconds"],
                                          3)
    return {"n": args.n, "epsilon": eps, "threads": torch.get_num_threads(), "precision": args.precision,
            "forward_backward_seconds": round(one_pass, 5), "model": "default SmallCNN (Fashion-MNIST 1x28x28)",
            "clean_accuracy": _accuracy(classifier, x, y), "rows": rows}


def _models() -> dict[str, Classifier]:
    models = {"standard": load_default_classifier()}
    for method in ("fgsm_rs", "pgd", "trades"):
        path = cache_dir() / f"small_cnn_fmnist_{method}_linf0.1.safetensors"
        if path.exists():
            models[method] = load_classifier(path)
    return models


def reference(args: argparse.Namespace) -> dict:
    import pyautoattack

    test = default_splits()["test"].head(args.n, seed=1)
    x, y = test.images, test.labels
    out = {"n": args.n, "epsilon": args.epsilon, "norm": "Linf", "models": {}}
    for name, classifier in _models().items():
        if args.models and name not in args.models.split(","):
            continue
        start = time.perf_counter()
        ours = AutoAttack(epsilon=args.epsilon, seed=0).evaluate(x, y, classifier)
        ours_seconds = time.perf_counter() - start
        ref = pyautoattack.AutoAttack(_module(classifier), eps=args.epsilon, norm="Linf", version="standard", seed=0)
        ref.verbose = False
        start = time.perf_counter()
        output = ref.run_standard_evaluation(x, y, batch_size=args.n)
        reference_seconds = time.perf_counter() - start
        x_ref = output[0] if isinstance(output, tuple) else output
        row = {"clean_accuracy": ours.clean_accuracy, "ours_robust_accuracy": ours.robust_accuracy,
               "reference_robust_accuracy": _accuracy(classifier, x_ref, y),
               "ours_after_each_attack": ours.robust_accuracy_after, "ours_seconds": round(ours_seconds, 1),
               "reference_seconds": round(reference_seconds, 1)}
        row["difference_points"] = round(100 * (row["ours_robust_accuracy"] - row["reference_robust_accuracy"]), 2)
        out["models"][name] = row
        print(name, row, flush=True)
    return out


def reference_digits(args: argparse.Namespace) -> dict:
    """Standard AutoAttack, ours vs the reference, on the tiny digits model of the tests (200 images)."""
    import pyautoattack

    from mlsafety.data import load_digits
    from mlsafety.models import build_architecture, train_classifier

    train, _, test = load_digits(size=16).split([0.6, 0.2, 0.2], seed=0)
    torch.manual_seed(0)
    module = build_architecture("small_cnn", in_channels=1, n_classes=10, width=8).eval()
    classifier = Classifier(module, mean=[0.3], std=[0.4], class_names=train.class_names, input_shape=(1, 16, 16))
    train_classifier(classifier, train, epochs=8, batch_size=64, learning_rate=1e-2, progress=False, seed=0)
    x, y = test.images[:200], test.labels[:200]
    out = {}
    for epsilon in (0.03, 0.05):
        ref = pyautoattack.AutoAttack(_module(classifier), eps=epsilon, norm="Linf", version="standard", seed=0)
        ref.verbose = False
        start = time.perf_counter()
        output = ref.run_standard_evaluation(x, y, batch_size=200)
        reference_seconds = time.perf_counter() - start
        x_ref = output[0] if isinstance(output, tuple) else output
        start = time.perf_counter()
        ours = AutoAttack(epsilon=epsilon, norm="Linf").evaluate(x, y, classifier)
        out[epsilon] = {"clean": ours.clean_accuracy, "reference": _accuracy(classifier, x_ref, y),
                        "ours": ours.robust_accuracy, "ours_after": ours.robust_accuracy_after,
                        "reference_seconds": round(reference_seconds, 1),
                        "ours_seconds": round(time.perf_counter() - start, 1)}
        print(epsilon, out[epsilon], flush=True)
    return out


def l2(args: argparse.Namespace) -> dict:
    test = default_splits()["test"].head(args.n, seed=1)
    x, y = test.images, test.labels
    out = {"n": args.n, "epsilon": args.epsilon, "norm": "L2", "attacks": "APGD-CE + APGD-T (9 targets), 100 steps",
           "models": {}}
    for name, classifier in _models().items():
        result = AutoAttack(epsilon=args.epsilon, norm="L2", attacks=("apgd-ce", "apgd-t"), seed=0).evaluate(
            x, y, classifier)
        out["models"][name] = result.summary()
        print(name, out["models"][name], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=["throughput", "reference", "reference_digits", "l2"])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--apgd-steps", type=int, default=20)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--models", default="")
    parser.add_argument("--out", default="", help="result file name (default: attacks_<part>.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"throughput": throughput, "reference": reference, "reference_digits": reference_digits,
              "l2": l2}[args.part](args)
    RESULTS.mkdir(exist_ok=True)
    suffix = f"_eps{args.epsilon:g}_{args.precision}" if args.part == "throughput" else ""
    path = RESULTS / (args.out or f"attacks_{args.part}{suffix}.json")
    path.write_text(json.dumps(result, indent=2))
    print("wrote", path)


if __name__ == "__main__":
    main()
