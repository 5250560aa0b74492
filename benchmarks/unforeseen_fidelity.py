"""Unforeseen, spatial and patch robustness of the default and an Linf-adversarially trained
Fashion-MNIST model, and a probe of the reference code ``advex-uar``.

For each model: clean and PGD-20 (Linf 0.1) accuracy, every unforeseen attack at the low,
medium and high levels (UA2 = mean over the eight core attacks at medium), spatial attacks
(worst-of-10, an 11 x 5 x 5 grid and the first-order attack), and universal-patch success
against patch size (trained on validation images, tested on the test images). The
adversarially trained model is read from ``~/.cache/mlsafety/small_cnn_fmnist_pgd_linf0.1.safetensors``
(written by ``benchmarks/adversarial_training.py``) or trained here with the same recipe
(PGD adversarial training, Linf 0.1, 3 inner steps, 10,000 training images, 2 epochs).

Results: ``benchmarks/results/unforeseen_fidelity.json``, written atomically after each model.

Run: ``python benchmarks/unforeseen_fidelity.py [--n-images 300] [--n-steps 10] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import types
from datetime import datetime, timezone
from pathlib import Path

import torch

from mlsafety.data import default_splits
from mlsafety.models import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    Classifier,
    build_architecture,
    cache_dir,
    load_classifier,
    load_default_classifier,
    save_checkpoint,
    train_classifier,
)
from mlsafety.robustness.attacks import PGD
from mlsafety.robustness.attacks.patch import patch_success_curve
from mlsafety.robustness.attacks.spatial import Spatial
from mlsafety.robustness.attacks.unforeseen import evaluate_unforeseen

RESULTS = Path(__file__).parent / "results" / "unforeseen_fidelity.json"
EPSILON = 0.1


def _write(payload: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    temporary = RESULTS.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(payload, indent=2))
    os.replace(temporary, RESULTS)


def adversarially_trained(splits: dict) -> tuple[Classifier, str]:
    path = cache_dir() / "small_cnn_fmnist_pgd_linf0.1.safetensors"
    if path.exists():
        return load_classifier(path), f"loaded {path}"
    from mlsafety.robustness.training.adversarial import PGDAdversarialLoss

    train = splits["train"].head(10000, seed=0)
    kwargs = {"in_channels": 1, "n_classes": 10}
    classifier = Classifier(build_architecture("small_cnn", **kwargs).eval(), mean=FASHION_MNIST_MEAN,
                            std=FASHION_MNIST_STD, class_names=train.class_names, input_shape=(1, 28, 28),
                            name="small_cnn")
    start = time.perf_counter()
    train_classifier(classifier, train, epochs=2, loss_fn=PGDAdversarialLoss(epsilon=EPSILON, n_steps=3), seed=0,
                     progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(classifier, path, "small_cnn", kwargs, {
        "dataset": "fashion-mnist-train", "defence": "pgd", "epsilon": EPSILON, "n_train": 10000, "epochs": 2})
    return classifier, f"trained here in {time.perf_counter() - start:.0f} s, saved to {path}"


def probe_advex_uar() -> dict:
    """Whether the reference implementation (PyPI ``advex-uar``) imports and runs on this machine."""
    outcome: dict = {}
    try:
        import advex_uar  # noqa: F401

        outcome["import"] = "ok"
    except Exception as error:  # recorded, not raised: this is the finding
        outcome["import"] = f"{type(error).__name__}: {error}"
        if isinstance(error, ModuleNotFoundError) and error.name == "advex_uar":
            return outcome
        sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))  # a stand-in, never the package
    try:
        from advex_uar.attacks import FogAttack

        outcome["import_with_torchvision_stand_in"] = "ok"
        FogAttack(nb_its=1, eps_max=64, step_size=8, resol=32)
        outcome["construct_fog_attack"] = "ok"
    except Exception as error:
        outcome["construct_fog_attack"] = f"{type(error).__name__}: {error}"
    return outcome


def evaluate_model(classifier: Classifier, x: torch.Tensor, y: torch.Tensor, x_train: torch.Tensor,
                   y_train: torch.Tensor, n_steps: int) -> dict:
    start = time.perf_counter()
    out: dict = {"clean_accuracy": float((classifier.predict(x) == y).float().mean())}
    adversarial = PGD(epsilon=EPSILON, n_steps=20, step_size=0.01)(x, y, classifier)
    out["pgd20_linf0.1_accuracy"] = float((classifier.predict(adversarial) == y).float().mean())
    report = evaluate_unforeseen(classifier, x, y, n_steps=n_steps)
    out["unforeseen"] = report.to_dict()
    for method, kwargs in (("worst_of_10", {"method": "worst_of_k", "n_samples": 10}),
                           ("grid_11x5x5", {"method": "grid", "n_rotations": 11, "n_translations": 5}),
                           ("gradient_10", {"method": "gradient", "n_steps": 10})):
        adversarial = Spatial(**kwargs)(x, y, classifier)
        out[f"spatial_{method}_accuracy"] = float((classifier.predict(adversarial) == y).float().mean())
    out["universal_patch"] = patch_success_curve(classifier, x_train, y_train, x, y, sizes=(0.1, 0.2, 0.3, 0.4),
                                                 n_epochs=2)
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=300)
    parser.add_argument("--n-train-patch", type=int, default=1000)
    parser.add_argument("--n-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    splits = default_splits()
    test = splits["test"].head(args.n_images, seed=0)
    patch_train = splits["validation"].head(args.n_train_patch, seed=0)
    payload: dict = {
        "command": f"python benchmarks/unforeseen_fidelity.py --n-images {args.n_images} --n-steps {args.n_steps} "
                   f"--threads {args.threads}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "advex_uar": probe_advex_uar(), "models": {},
    }
    _write(payload)
    models = {"standard": (load_default_classifier(), "the shipped default model")}
    models["pgd_at_linf0.1"] = adversarially_trained(splits)
    for name, (classifier, origin) in models.items():
        result = evaluate_model(classifier, test.images, test.labels, patch_train.images, patch_train.labels,
                                args.n_steps)
        payload["models"][name] = {"origin": origin, **result}
        _write(payload)
        print(name, json.dumps({k: v for k, v in result.items() if k != "unforeseen"}), "UA2",
              result["unforeseen"]["ua2"], flush=True)


if __name__ == "__main__":
    main()
