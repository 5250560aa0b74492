"""Speed of the unforeseen, spatial and patch attacks against the model's forward+backward limit.

Every attack runs ``--n-steps`` signed-gradient steps on a batch of ``--n`` Fashion-MNIST test
images with the default SmallCNN; its images per second are set beside the limit measured in
the same run, ``n / (steps x one forward+backward pass)`` (what an attack whose only cost is the
model's input gradient would reach; the worst-of-k and grid searches are forward-only, so their
limit is ``n / (k x one forward pass)``). The machine is shared, so the pass is re-timed right
before each attack and that attack's limit uses it. Attacks stop early when every image is fooled, so a
strong attack can exceed the limit; the robust accuracy is printed beside it. Minimum of
``--repeats`` runs. Results go to ``benchmarks/results/unforeseen_speed.json`` (written atomically
after every attack).

Run: ``python benchmarks/unforeseen_speed.py [--n 256] [--n-steps 10] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from mlsafety.data import default_splits
from mlsafety.models import load_default_classifier
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks.patch import Patch
from mlsafety.robustness.attacks.spatial import Spatial
from mlsafety.robustness.attacks.unforeseen import unforeseen_names

RESULTS = Path(__file__).parent / "results" / "unforeseen_speed.json"


def _timed(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _write(payload: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    temporary = RESULTS.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(payload, indent=2))
    os.replace(temporary, RESULTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--n-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    classifier = load_default_classifier()
    classifier.batch_size = args.n
    test = default_splits()["test"].head(args.n, seed=1)
    x, y = test.images, test.labels

    def forward_backward() -> torch.Tensor:
        inputs = x.clone().requires_grad_(True)
        loss = F.cross_entropy(classifier.forward(inputs), y)
        return torch.autograd.grad(loss, inputs)[0]

    @torch.no_grad()
    def forward() -> torch.Tensor:
        return classifier.forward(x)

    with classifier.evaluating():
        _timed(forward_backward, 2)
        one_pass, _ = _timed(forward_backward, args.repeats)
        one_forward, _ = _timed(forward, args.repeats)
    payload = {
        "command": f"python benchmarks/unforeseen_speed.py --n {args.n} --n-steps {args.n_steps} "
                   f"--threads {args.threads}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start",
        "threads": args.threads, "n": args.n, "n_steps": args.n_steps,
        "forward_backward_seconds": round(one_pass, 5), "forward_seconds": round(one_forward, 5),
        "clean_accuracy": float((classifier.predict(x) == y).float().mean()), "rows": {},
    }
    steps = args.n_steps
    # (run, passes, backward): the attack and how many forward(+backward) passes bound its cost
    runs: dict[str, tuple[Callable[[], torch.Tensor], int, bool]] = {
        name: (lambda name=name: ATTACKS.create(name, level="medium", n_steps=steps)(x, y, classifier), steps, True)
        for name in unforeseen_names()
    }
    runs["spatial_gradient"] = (lambda: Spatial(method="gradient", n_steps=steps)(x, y, classifier), steps, True)
    runs["spatial_worst_of_10"] = (lambda: Spatial(method="worst_of_k", n_samples=10)(x, y, classifier), 10, False)
    runs["patch_1_location"] = (lambda: Patch(size=0.25, n_locations=1, n_steps=steps)(x, y, classifier), steps,
                                True)
    for name, (run, passes, backward) in runs.items():
        with classifier.evaluating():
            one, _ = _timed(forward_backward if backward else forward, args.repeats)
        limit_seconds = passes * one
        seconds, adversarial = _timed(run, args.repeats)
        row = {"seconds": round(seconds, 4), "images_per_second": round(args.n / seconds, 1),
               "limit_images_per_second": round(args.n / limit_seconds, 1),
               "fraction_of_limit": round(limit_seconds / seconds, 3),
               "robust_accuracy": float((classifier.predict(adversarial) == y).float().mean())}
        payload["rows"][name] = row
        _write(payload)
        print(name, row, flush=True)


if __name__ == "__main__":
    main()
