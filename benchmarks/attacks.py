"""Attack benchmarks: throughput against torchattacks, and AutoAttack against the reference.

Five parts, each writing a JSON file under ``benchmarks/results/``:

* ``throughput``: per-step cost of PGD-10 and APGD-CE against one forward+backward pass of the
  batch (the limit, measured in the same rounds), and ours (fp32 and bf16 autocast) against
  torchattacks at the same settings, on the default SmallCNN, an MLP and a PreAct-ResNet, at a
  budget where nearly all images survive and one where about half break; one table.
* ``breakdown``: where PGD-10's time goes against torchattacks (paired ratios of its step loop with
  and without early exit, of the whole attack and of torchattacks).
* ``reference``: robust accuracy of our AutoAttack (standard) vs the reference ``pyautoattack`` on
  the same models and images: the default Fashion-MNIST model and, when their checkpoints
  exist, the adversarially trained ones from ``benchmarks/adversarial_training.py``.
* ``reference_digits``: the same on the tiny 16 px digits model of the tests (200 images).
* ``l2``: APGD-CE + APGD-T at an L2 budget on the same models.

Run: ``python benchmarks/attacks.py throughput|breakdown|reference|reference_digits|l2 [--n 100]
[--epsilon 0.1] [--threads 1]``
(throughput: ``python benchmarks/attacks.py throughput --n 128 --epsilon 0.03 --repeats 9``;
breakdown: ``python benchmarks/attacks.py breakdown --n 128 --models mlp --repeats 80``)
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
from torch import nn

from mlsafety.data import default_splits
from mlsafety.models import Classifier, cache_dir, load_classifier, load_default_classifier
from mlsafety.robustness.attacks import APGD, PGD, AutoAttack
from mlsafety.robustness.attacks._common import make_forward

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


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def benchmark_models() -> dict[str, Classifier]:
    """The default SmallCNN and two briefly trained Fashion-MNIST models (cached after the first
    run): an MLP 784-512-512-10 (2 epochs on 20,000 images) and the registry's PreAct-ResNet
    (width 16, one block per stage; 1 epoch on 10,000 images)."""
    from safetensors.torch import load_file, save_file

    from mlsafety.models.architectures import build_architecture
    from mlsafety.models.training import train_classifier

    train = default_splits()["train"]
    models = {"small_cnn": load_default_classifier()}
    for name, build, n_train, epochs in (("mlp", _mlp, 20_000, 2),
                                         ("preact_resnet", lambda: build_architecture("preact_resnet"), 10_000, 1)):
        torch.manual_seed(0)
        classifier = Classifier(build(), mean=[0.2860], std=[0.3530], input_shape=(1, 28, 28))
        path = cache_dir() / f"benchmark_attacks_{name}.safetensors"
        if path.exists():
            classifier.module.load_state_dict(load_file(path))
        else:
            train_classifier(classifier, train.head(n_train, seed=0), epochs=epochs, progress=False)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in classifier.module.state_dict().items()}, path)
        classifier.module.eval()
        models[name] = classifier
    return models


def _runs(classifier: Classifier, module: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
          apgd_steps: int) -> dict:
    """name -> (callable, number of steps) for one model and budget; "limit" is forward+backward
    passes of the batch."""
    import torchattacks

    from mlsafety.robustness.attacks.pgd import pgd

    steps, alpha = 10, 2.5 * eps / 10
    forward = make_forward(classifier)

    def forward_backward() -> torch.Tensor:
        inputs = x.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(module(inputs), y)
        return torch.autograd.grad(loss, inputs)[0]

    def pgd_all_steps() -> torch.Tensor:
        # the functional core without early exit: exactly ``steps`` forward+backward passes
        with classifier.evaluating():
            return pgd(forward, x, y, epsilon=eps, norm="Linf", n_steps=steps, step_size=alpha,
                       early_stop=False, generator=torch.Generator().manual_seed(0))

    def limit() -> None:
        # as many back-to-back passes as the attacks run steps, so that both are timed over the
        # same span of a noisy machine (the minimum of one short pass would flatter the limit)
        for _ in range(steps):
            forward_backward()

    def limit_channels_last() -> None:
        # the same passes in the layout the attacks use on the CPU (Classifier.channels_last;
        # the same as ``limit`` for models without convolutions)
        with classifier.evaluating(), classifier.channels_last():
            for _ in range(steps):
                inputs = x.clone().requires_grad_(True)
                loss = nn.functional.cross_entropy(classifier.forward(inputs), y)
                torch.autograd.grad(loss, inputs)

    return {
        "limit": (limit, steps),
        "limit_channels_last": (limit_channels_last, steps),
        "pgd10_ours_no_exit": (pgd_all_steps, steps),
        "pgd10_ours": (lambda: PGD(epsilon=eps, n_steps=steps, step_size=alpha)(x, y, classifier), steps),
        # ``y`` omitted: the labels are the model's predictions (the same as ``y`` here, every
        # image is classified correctly), so no clean forward pass runs: what that pass costs
        "pgd10_ours_y_omitted": (lambda: PGD(epsilon=eps, n_steps=steps, step_size=alpha)(x, None, classifier), steps),
        "pgd10_torchattacks": (lambda: torchattacks.PGD(module, eps=eps, alpha=alpha, steps=steps,
                                                        random_start=True)(x, y), steps),
        f"apgd{apgd_steps}_ours": (lambda: APGD(epsilon=eps, n_steps=apgd_steps)(x, y, classifier), apgd_steps),
        f"apgd{apgd_steps}_ours_y_omitted": (lambda: APGD(epsilon=eps, n_steps=apgd_steps)(x, None, classifier),
                                             apgd_steps),
        f"apgd{apgd_steps}_torchattacks": (lambda: torchattacks.APGD(module, eps=eps, steps=apgd_steps,
                                                                    n_restarts=1, loss="ce", seed=0)(x, y),
                                           apgd_steps),
        "pgd10_ours_bf16": (lambda: PGD(epsilon=eps, n_steps=steps, step_size=alpha, precision="bf16")(
            x, y, classifier), steps),
        f"apgd{apgd_steps}_ours_bf16": (lambda: APGD(epsilon=eps, n_steps=apgd_steps, precision="bf16")(
            x, y, classifier), apgd_steps),
    }


def throughput(args: argparse.Namespace) -> dict:
    """Per-step cost of PGD and APGD against one forward+backward pass of the batch (the limit),
    and ours against torchattacks at the same settings, on three models, one table.

    Two settings per model: ``--epsilon-survive`` (small: nearly every image survives, so the
    per-sample early exit saves nothing and the per-step cost shows) and ``--epsilon`` (about
    half break). Every timing is CPU seconds of this process (one thread), the minimum over
    ``--repeats`` rounds in which the limit, ours and torchattacks run back to back (the JSON also
    has the medians over the rounds and their ratios, and the paired ratios: the median and quartiles
    over the rounds of the ratio within one round: columns ``paired`` and ``paired (IQR)``). The
    attacks run convolutional models channels-last on the CPU (``Classifier.channels_last``), so
    the table also gives the per-step cost against the forward+backward pass in that layout
    (``/cl lim``). The images are the first ``--n`` test images each model classifies correctly. Robust accuracy is
    re-scored in fp32 for every attack (also the bf16 one).
    """
    test = default_splits()["test"]
    table, out = [], {"n": args.n, "threads": torch.get_num_threads(), "pgd_steps": 10,
                      "apgd_steps": args.apgd_steps, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "load_average_start": os.getloadavg(), "date": datetime.datetime.now(
                          datetime.timezone.utc).isoformat(), "models": {}}
    models = benchmark_models()
    loads = [os.getloadavg()[0]]
    for model_name, classifier in models.items():
        if args.models and model_name not in args.models.split(","):
            continue
        module = _module(classifier)
        # the first n test images the model gets right: no attack drops any at the start, so at the
        # small budget every step runs on (nearly) the whole batch
        correct = (classifier.predict(test.images[:4 * args.n]) == test.labels[:4 * args.n]).nonzero().squeeze(1)
        x, y = test.images[correct[:args.n]], test.labels[correct[:args.n]]
        classifier.batch_size = args.n
        clean = _accuracy(classifier, test.images[:4 * args.n], test.labels[:4 * args.n])

        rows = {}
        for setting, eps in (("survive", args.epsilon_survive), ("break", args.epsilon)):
            runs = _runs(classifier, module, x, y, eps, args.apgd_steps)
            times = {name: [] for name in runs}
            adversarial = {}
            for name, (run, _) in runs.items():  # warm-up
                adversarial[name] = run()
            for _ in range(args.repeats):
                for name, (run, _) in runs.items():
                    start = time.process_time()
                    run()
                    times[name].append(time.process_time() - start)
                loads.append(os.getloadavg()[0])
            best = {name: min(values) for name, values in times.items()}
            median = {name: statistics.median(values) for name, values in times.items()}
            limit = best["limit"] / runs["limit"][1]
            limit_median = median["limit"] / runs["limit"][1]
            layout_limit = best["limit_channels_last"] / runs["limit_channels_last"][1]
            for name, (_, n_steps) in runs.items():
                per_step = best[name] / n_steps
                row = {"seconds": round(best[name], 4), "seconds_median": round(median[name], 4),
                       "ms_per_step": round(1000 * per_step, 3), "per_step_over_limit": round(per_step / limit, 3),
                       "per_step_over_limit_median": round(median[name] / n_steps / limit_median, 3),
                       "per_step_over_channels_last_limit": round(per_step / layout_limit, 3),
                       "per_step_over_limit_paired_median": round(statistics.median(
                           (t / n_steps) / (lim / runs["limit"][1]) for t, lim in zip(times[name], times["limit"])), 3)}
                if not name.startswith("limit"):
                    row["robust_accuracy_fp32"] = _accuracy(classifier, adversarial[name], y)
                rows[f"{setting}/{name}"] = row
            for attack in ("pgd10", f"apgd{args.apgd_steps}"):
                theirs = rows[f"{setting}/{attack}_torchattacks"]
                for variant in ("ours", "ours_y_omitted", "ours_bf16"):
                    row = rows[f"{setting}/{attack}_{variant}"]
                    row["speedup_vs_torchattacks"] = round(theirs["seconds"] / row["seconds"], 3)
                    row["speedup_vs_torchattacks_median"] = round(theirs["seconds_median"] / row["seconds_median"], 3)
                    # per round: theirs over ours from the same round (back to back), so that a slow
                    # stretch of the machine affects both; median and quartiles over the rounds
                    paired = [a / b for a, b in zip(times[f"{attack}_torchattacks"], times[f"{attack}_{variant}"])]
                    quartiles = statistics.quantiles(paired, n=4) if len(paired) > 1 else paired * 3
                    row["speedup_vs_torchattacks_paired"] = {"median": round(statistics.median(paired), 3),
                                                             "q1": round(quartiles[0], 3), "q3": round(quartiles[2], 3)}
            for name, row in rows.items():
                if name.startswith(setting):
                    table.append((model_name, eps, name.split("/")[1], row))
            print(model_name, eps, {k: v for k, v in rows.items() if k.startswith(setting)}, flush=True)
        out["models"][model_name] = {"clean_accuracy": clean, "forward_backward_seconds": round(limit, 5),
                                     "rows": rows}
    out["load_average_end"] = os.getloadavg()
    out["load_1min_during"] = {"min": min(loads), "median": statistics.median(loads), "max": max(loads)}
    print(f"\n{'model':14s} {'eps':>6s} {'run':26s} {'ms/step':>8s} {'/limit':>7s} {'med.':>6s} {'paired':>6s} "
          f"{'/cl lim':>7s} {'vs TA':>6s} {'med.':>6s} {'paired (IQR)':>17s} {'robust':>7s}")
    for model_name, eps, name, row in table:
        paired = row.get("speedup_vs_torchattacks_paired")
        paired_text = f"{paired['median']:.2f} ({paired['q1']:.2f}-{paired['q3']:.2f})" if paired else "nan"
        print(f"{model_name:14s} {eps:6.3f} {name:26s} {row['ms_per_step']:8.2f} {row['per_step_over_limit']:7.3f} "
              f"{row['per_step_over_limit_median']:6.3f} {row['per_step_over_limit_paired_median']:6.3f} "
              f"{row['per_step_over_channels_last_limit']:7.3f} "
              f"{row.get('speedup_vs_torchattacks', float('nan')):6.2f} "
              f"{row.get('speedup_vs_torchattacks_median', float('nan')):6.2f} {paired_text:>17s} "
              f"{row.get('robust_accuracy_fp32', float('nan')):7.3f}")
    return out


def _paired_pgd_ratios(classifier: Classifier, x: torch.Tensor, y: torch.Tensor, eps: float, rounds: int) -> dict:
    """Paired ratios (median and quartiles over ``rounds``) of PGD-10's parts on one model."""
    import torchattacks

    from mlsafety.robustness.attacks.pgd import pgd

    module, alpha, forward = _module(classifier), 2.5 * eps / 10, make_forward(classifier)

    def loop(early_stop: bool) -> torch.Tensor:
        with classifier.evaluating(), classifier.channels_last():
            return pgd(forward, x, y, epsilon=eps, norm="Linf", n_steps=10, step_size=alpha,
                       early_stop=early_stop, generator=torch.Generator().manual_seed(0))

    runs = {"loop": lambda: loop(False), "loop_early_exit": lambda: loop(True),
            "attack": lambda: PGD(epsilon=eps, n_steps=10, step_size=alpha)(x, y, classifier),
            "torchattacks": lambda: torchattacks.PGD(module, eps=eps, alpha=alpha, steps=10, random_start=True)(x, y)}
    pairs = (("loop_early_exit", "loop"), ("torchattacks", "loop"), ("attack", "loop_early_exit"),
             ("attack", "torchattacks"))
    for run in runs.values():
        run()
    ratios = {f"{a}/{b}": [] for a, b in pairs}
    for round_ in range(rounds):
        for a, b in pairs:
            seconds = {}
            for name in ((a, b) if round_ % 2 == 0 else (b, a)):
                start = time.process_time()
                runs[name]()
                seconds[name] = time.process_time() - start
            ratios[f"{a}/{b}"].append(seconds[a] / seconds[b])
    rows = {}
    for key, values in ratios.items():
        quartiles = statistics.quantiles(values, n=4)
        rows[key] = {"median": round(statistics.median(values), 3), "q1": round(quartiles[0], 3),
                     "q3": round(quartiles[2], 3)}
    return rows


def breakdown(args: argparse.Namespace) -> dict:
    """Where PGD-10's time goes against torchattacks, at ``--epsilon-survive`` (nearly every image
    survives): paired ratios over ``--repeats`` rounds (the two sides of a ratio run back to back,
    in alternating order) of our step loop with early exit over the same loop without it,
    torchattacks over our loop without early exit, and the whole attack (input checks and the
    clean forward pass) over its loop with early exit. Models and images as in ``throughput``."""
    test = default_splits()["test"]
    out = {"n": args.n, "epsilon": args.epsilon_survive, "rounds": args.repeats, "threads": torch.get_num_threads(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability(), "date": datetime.datetime.now(
               datetime.timezone.utc).isoformat(), "load_average_start": os.getloadavg(), "models": {}}
    for model_name, classifier in benchmark_models().items():
        if args.models and model_name not in args.models.split(","):
            continue
        correct = (classifier.predict(test.images[:4 * args.n]) == test.labels[:4 * args.n]).nonzero().squeeze(1)
        x, y = test.images[correct[:args.n]], test.labels[correct[:args.n]]
        classifier.batch_size = args.n
        rows = _paired_pgd_ratios(classifier, x, y, args.epsilon_survive, args.repeats)
        for key, row in rows.items():
            print(f"{model_name:14s} {key:32s} {row['median']:6.3f} ({row['q1']:.3f}-{row['q3']:.3f})", flush=True)
        out["models"][model_name] = rows
    out["load_average_end"] = os.getloadavg()
    return out


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
    parser.add_argument("part", choices=["throughput", "breakdown", "reference", "reference_digits", "l2"])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--epsilon-survive", type=float, default=0.002,
                        help="throughput: the small budget at which nearly every image survives")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--apgd-steps", type=int, default=20)
    parser.add_argument("--models", default="")
    parser.add_argument("--out", default="", help="result file name (default: attacks_<part>.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"throughput": throughput, "breakdown": breakdown, "reference": reference,
              "reference_digits": reference_digits, "l2": l2}[args.part](args)
    RESULTS.mkdir(exist_ok=True)
    suffix = ""
    path = RESULTS / (args.out or f"attacks_{args.part}{suffix}.json")
    path.write_text(json.dumps(result, indent=2))
    print("wrote", path)


if __name__ == "__main__":
    main()
