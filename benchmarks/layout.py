"""Channels-last on the CPU: batched inference and forward+backward passes in the model's own
layout against ``Classifier.channels_last()``, on the three models of ``attacks.py``.

For each model (the default SmallCNN, the MLP 784-512-512-10 and the PreAct-ResNet of
``benchmarks/attacks.py``): ``predict_logits`` on ``--n`` Fashion-MNIST test images (batches of
256), and forward+backward passes of a 128-image batch for the input gradient (what an attack
step costs), each in the model's own layout and channels-last, alternately ``--repeats`` times
after a warm-up; CPU seconds of this process, medians (the JSON also has the minima). Also the
largest logit difference between the two layouts and whether the predictions agree.

    python benchmarks/layout.py --n 1024 --repeats 7
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import torch

from attacks import benchmark_models
from mlsafety.data import default_splits

RESULTS = Path(__file__).parent / "results"


def own_layout(classifier, function):
    """Run ``function`` with channels-last switched off for ``classifier``."""
    def run():
        classifier._layout_unsupported = True
        try:
            return function()
        finally:
            classifier._layout_unsupported = False
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = default_splits()["test"]
    x = test.images[:args.n]
    xb, yb = test.images[:128], test.labels[:128]
    out = {"n": args.n, "threads": args.threads, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "load_average_start": os.getloadavg(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "models": {}}
    print(f"{'model':14s} {'inference own':>13s} {'channels-last':>13s} {'speed-up':>8s} "
          f"{'fwd+bwd own':>11s} {'channels-last':>13s} {'speed-up':>8s}  max |logit diff|")
    for name, classifier in benchmark_models().items():
        def step(classifier=classifier):
            with classifier.evaluating(), classifier.channels_last():
                inputs = xb.clone().requires_grad_(True)
                loss = torch.nn.functional.cross_entropy(classifier.forward(inputs), yb)
                return torch.autograd.grad(loss, inputs)[0]

        def infer(classifier=classifier):
            return classifier.predict_logits(x)

        runs = {"inference_own": own_layout(classifier, infer), "inference_channels_last": infer,
                "step_own": own_layout(classifier, step), "step_channels_last": step}
        times = {key: [] for key in runs}
        for run in runs.values():
            run()
        for _ in range(args.repeats):
            for key, run in runs.items():
                start = time.process_time()
                run()
                times[key].append(time.process_time() - start)
        own, fast = runs["inference_own"](), runs["inference_channels_last"]()
        median = {key: statistics.median(v) for key, v in times.items()}
        row = {"inference_own_ms_per_image": 1000 * median["inference_own"] / len(x),
               "inference_channels_last_ms_per_image": 1000 * median["inference_channels_last"] / len(x),
               "inference_speedup": median["inference_own"] / median["inference_channels_last"],
               "step_own_ms": 1000 * median["step_own"], "step_channels_last_ms": 1000 * median["step_channels_last"],
               "step_speedup": median["step_own"] / median["step_channels_last"],
               "minima": {key: min(v) for key, v in times.items()},
               "max_abs_logit_difference": float((own - fast).abs().max()),
               "predictions_agree": float((own.argmax(1) == fast.argmax(1)).float().mean())}
        out["models"][name] = row
        print(f"{name:14s} {row['inference_own_ms_per_image']:13.3f} "
              f"{row['inference_channels_last_ms_per_image']:13.3f} "
              f"{row['inference_speedup']:7.2f}x {row['step_own_ms']:11.1f} {row['step_channels_last_ms']:13.1f} "
              f"{row['step_speedup']:7.2f}x  {row['max_abs_logit_difference']:.2g}", flush=True)
    out["load_average_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "layout.json"
    path.write_text(json.dumps(out, indent=2))
    print("wrote", path)


if __name__ == "__main__":
    main()
