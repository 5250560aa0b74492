"""One prepared GPU check: CUDA correctness against the CPU, then throughput (issue 21).

Run where a CUDA device is present (on a machine without one it prints a message and exits 0):

    python benchmarks/gpu.py                    # everything, about 5 minutes on one H200
    python benchmarks/gpu.py --skip-audit       # without the full audit (the longest part)
    python benchmarks/gpu.py --device cpu --parts attacks,correctness --n 64   # dry run of the logic

Parts, each timed with ``torch.cuda.synchronize`` around it, each guarded so that one failure
does not lose the others:

1. ``correctness``: every corruption on the same images on the CPU and on CUDA. Deterministic
   corruptions must agree within ``--tolerance`` (max abs difference; JPEG always runs on the
   CPU codec); random ones draw from a different generator on CUDA, so their mean change from
   the clean images must agree within 5 %. Logits of the three benchmark models must agree
   within 1e-3, and PGD-10 / APGD-20 robust accuracy on CUDA must be within 2 images of the CPU
   one (different random starts).
2. ``corruptions``: a CIFAR-10-C-scale generation (10,000 photo patches of 32 px x 19
   corruptions x 5 severities, batches of 500, conversion to uint8 included); target < 10 s.
3. ``attacks``: PGD-10 and APGD-CE-20 images/s, ours in fp32 and bf16 autocast (re-scored in
   fp32) against torchattacks (fp32), on the default SmallCNN, the MLP and the PreAct-ResNet of
   ``benchmarks/attacks.py``, at the same budget; per-step cost against one forward+backward
   pass of the batch measured in the same run; target: bf16 PGD >= 1.5x torchattacks at equal
   robust accuracy.
4. ``audit``: the full audit of the default model on CUDA (``mlsafety audit --device cuda``),
   wall seconds, and the quick one.

Writes ``benchmarks/results/gpu.json`` (and ``$OUT/gpu.json`` when ``OUT`` is set) and prints one
table per part.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).parent))


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(function, repeats: int = 3) -> tuple[float, object]:
    """Minimum wall seconds of ``repeats`` calls after one warm-up (GPU work included)."""
    out = function()
    _sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = function()
        _sync()
        best = min(best, time.perf_counter() - start)
    return best, out


def correctness(args: argparse.Namespace) -> dict:
    from attacks import benchmark_models
    from fidelity_corruptions import photo_patches
    from mlsafety.data import default_splits
    from mlsafety.registry import CORRUPTIONS
    from mlsafety.robustness.attacks import APGD, PGD
    from mlsafety.robustness.corruptions import corruption_names

    out: dict = {"corruptions": {}, "models": {}}
    random = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur", "snow",
              "frost", "fog", "spatter", "elastic_transform"}
    for size, n in ((32, 64), (224, 4)):
        x = torch.from_numpy(photo_patches(n, size, seed=size)).permute(0, 3, 1, 2).float().div(255).contiguous()
        for name in corruption_names("all"):
            corruption = CORRUPTIONS.get(name)(severity=3, seed=0, resolution="imagenet")
            cpu, cuda = corruption(x), corruption(x.to(args.device)).cpu()
            if name in random:
                change_cpu, change_cuda = (cpu - x).abs().mean().item(), (cuda - x).abs().mean().item()
                ok = abs(change_cuda / max(change_cpu, 1e-12) - 1) < 0.05
                row = {"mean_change_cpu": change_cpu, "mean_change_cuda": change_cuda, "ok": ok}
            else:
                difference = (cpu - cuda).abs().max().item()
                row = {"max_abs_difference": difference, "ok": difference <= args.tolerance}
            out["corruptions"][f"{size}px/{name}"] = row
            print(f"{size:3d}px {name:18s} {'ok' if row['ok'] else 'MISMATCH'} {row}", flush=True)
    test = default_splits()["test"].head(256, seed=1)
    for name, classifier in benchmark_models().items():
        with torch.no_grad():
            logits_cpu = classifier.predict_logits(test.images)
            classifier.to(args.device)
            logits_cuda = classifier.predict_logits(test.images)
        row = {"max_abs_logit_difference": (logits_cpu - logits_cuda).abs().max().item()}
        for attack_name, attack in (("pgd10", PGD(epsilon=0.03, n_steps=10)), ("apgd20", APGD(epsilon=0.03,
                                                                                              n_steps=20))):
            robust = {}
            for device in ("cpu", args.device):
                classifier.to(device)
                adversarial = attack(test.images, test.labels, classifier)
                classifier.to("cpu")
                robust[device] = int((classifier.predict(adversarial) == test.labels).sum())
            row[attack_name] = {"cpu": robust["cpu"], "cuda": robust[args.device]}
        row["ok"] = (row["max_abs_logit_difference"] < 1e-3
                     and all(abs(row[a]["cpu"] - row[a]["cuda"]) <= 2 for a in ("pgd10", "apgd20")))
        out["models"][name] = row
        print(name, row, flush=True)
    out["all_ok"] = all(r["ok"] for r in out["corruptions"].values()) and all(r["ok"] for r in out["models"].values())
    return out


def corruptions(args: argparse.Namespace) -> dict:
    from fidelity_corruptions import photo_patches
    from mlsafety.robustness.corruptions import corrupt_dataset, corruption_names

    images = torch.from_numpy(photo_patches(10_000, 32, seed=10)).permute(0, 3, 1, 2).float().div(255)
    images = images.contiguous().to(args.device)
    # warm-up: kernels, tables and texture banks of every corruption
    for name in corruption_names("all"):
        next(corrupt_dataset(images[:500], name, 1, resolution="cifar"))
    _sync()
    rows, total = {}, 0.0
    for name in corruption_names("all"):
        start = time.perf_counter()
        for severity in range(1, 6):
            for batch in corrupt_dataset(images, name, severity, seed=0, batch_size=500, resolution="cifar"):
                batch.mul(255).round_().to(torch.uint8).cpu()
        _sync()
        rows[name] = time.perf_counter() - start
        total += rows[name]
        print(f"{name:18s} {rows[name]:7.2f} s", flush=True)
    print(f"TOTAL 950,000 corrupted 32 px images: {total:.1f} s (target < 10 s)", flush=True)
    return {"seconds": rows, "total_seconds": total, "target_met": total < 10}


def _forward_backward(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    inputs = x.clone().requires_grad_(True)
    return torch.autograd.grad(torch.nn.functional.cross_entropy(module(inputs), y), inputs)[0]


def _attack_runs(classifier, module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                 apgd_steps: int) -> dict:
    import torchattacks

    from mlsafety.robustness.attacks import APGD, PGD

    return {
        "pgd10_ours_fp32": lambda: PGD(epsilon=eps, n_steps=steps)(x, y, classifier),
        "pgd10_ours_bf16": lambda: PGD(epsilon=eps, n_steps=steps, precision="bf16")(x, y, classifier),
        "pgd10_torchattacks": lambda: torchattacks.PGD(module, eps=eps, alpha=2.5 * eps / steps, steps=steps,
                                                       random_start=True)(x, y),
        "apgd20_ours_fp32": lambda: APGD(epsilon=eps, n_steps=apgd_steps)(x, y, classifier),
        "apgd20_ours_bf16": lambda: APGD(epsilon=eps, n_steps=apgd_steps, precision="bf16")(x, y, classifier),
        "apgd20_torchattacks": lambda: torchattacks.APGD(module, eps=eps, steps=apgd_steps, n_restarts=1,
                                                         loss="ce", seed=0)(x, y),
    }


def attacks(args: argparse.Namespace) -> dict:

    from attacks import _module, benchmark_models
    from mlsafety.data import default_splits

    test = default_splits()["test"]
    n, eps, steps, apgd_steps = args.n, 0.03, 10, 20
    out, table = {}, []
    for model_name, classifier in benchmark_models().items():
        classifier.to(args.device)
        classifier.batch_size = n
        correct = (classifier.predict(test.images[:2 * n]) == test.labels[:2 * n]).nonzero().squeeze(1)[:n]
        x, y = test.images[correct].to(args.device), test.labels[correct].to(args.device)
        with classifier.evaluating():
            module = _module(classifier)

            limit, _ = _timed(lambda module=module, x=x, y=y: _forward_backward(module, x, y), 10)
            runs = _attack_runs(classifier, module, x, y, eps, steps, apgd_steps)
            rows = {"limit_forward_backward_s": limit}
            for name, run in runs.items():
                seconds, adversarial = _timed(run)
                with torch.no_grad():
                    robust = float((module(adversarial).argmax(1) == y).float().mean())  # fp32 re-score
                n_steps = steps if name.startswith("pgd") else apgd_steps
                rows[name] = {"seconds": seconds, "images_per_s": len(x) / seconds, "robust_accuracy_fp32": robust,
                              "per_step_over_limit": seconds / n_steps / limit}
            for attack in ("pgd10", "apgd20"):
                for precision in ("fp32", "bf16"):
                    row = rows[f"{attack}_ours_{precision}"]
                    row["speedup_vs_torchattacks"] = rows[f"{attack}_torchattacks"]["seconds"] / row["seconds"]
        classifier.to("cpu")
        out[model_name] = rows
        for name, row in rows.items():
            if isinstance(row, dict):
                table.append((model_name, name, row))
        print(model_name, json.dumps(rows), flush=True)
    print(f"\n{'model':14s} {'run':22s} {'img/s':>9s} {'/limit':>7s} {'vs TA':>6s} {'robust':>7s}")
    for model_name, name, row in table:
        print(f"{model_name:14s} {name:22s} {row['images_per_s']:9.0f} {row['per_step_over_limit']:7.2f} "
              f"{row.get('speedup_vs_torchattacks', float('nan')):6.2f} {row['robust_accuracy_fp32']:7.3f}")
    return out


def audit(args: argparse.Namespace) -> dict:
    executable = Path(sys.executable).parent / "mlsafety"
    out = {}
    for mode in (["--quick"], []):
        label = "quick" if mode else "full"
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            process = subprocess.run([str(executable), "audit", *mode, "--device", args.device, "--out", folder],
                                     capture_output=True, text=True, timeout=args.audit_timeout)
            out[label] = {"seconds": time.perf_counter() - start, "exit_code": process.returncode,
                          "stderr_tail": process.stderr[-2000:]}
        print(f"audit {label}: {out[label]['seconds']:.1f} s, exit {process.returncode}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1024, help="images per attack batch")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--skip-audit", action="store_true")
    parser.add_argument("--audit-timeout", type=int, default=1800)
    parser.add_argument("--parts", default="correctness,corruptions,attacks,audit")
    parser.add_argument("--device", default="cuda", help="'cpu' only to dry-run the script's logic")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device here (torch.cuda.is_available() is False); nothing to measure. "
              "Run it on a machine with a GPU.")
        return
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 in the comparisons
    torch.backends.cudnn.allow_tf32 = False
    report: dict = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
                    "torch": torch.__version__,
                    "cuda": torch.version.cuda,
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "parts": {}}
    print(f"device {report['device']}, torch {report['torch']}, CUDA {report['cuda']}", flush=True)
    parts = [(name, part) for name, part in (("correctness", correctness), ("corruptions", corruptions),
                                             ("attacks", attacks), ("audit", audit))
             if name in args.parts.split(",") and not (name == "audit" and args.skip_audit)]
    for name, part in parts:
        print(f"\n== {name}", flush=True)
        start = time.perf_counter()
        try:
            report["parts"][name] = part(args)
        except Exception:  # keep the other parts' results
            report["parts"][name] = {"error": traceback.format_exc()}
            print(report["parts"][name]["error"], flush=True)
        report["parts"][name]["part_seconds"] = time.perf_counter() - start
        text = json.dumps(report, indent=1, default=str)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / ("gpu.json" if args.device.startswith("cuda") else "gpu_dry_run.json")).write_text(text)
        if os.environ.get("OUT"):
            (Path(os.environ["OUT"]) / "gpu.json").write_text(text)
    print(f"\nwrote {RESULTS / ('gpu.json' if args.device.startswith('cuda') else 'gpu_dry_run.json')}")


if __name__ == "__main__":
    main()
