"""Value learning on ETHICS utilitarianism (Hendrycks et al. 2021, "Aligning AI With Shared
Human Values", ICLR): our utility models on the paper's protocol, and a Goodhart curve.

Protocol: pairwise accuracy -- the model must rank the first (more pleasant) scenario of
each pair above the second -- on the paper's test (4,808 pairs) and hard test (4,272 pairs)
splits, after training on the 13,738 training pairs; 95% percentile-bootstrap intervals
over pairs (2,000 resamples).

Models: frozen all-MiniLM-L6-v2 + linear Bradley–Terry head (the default of ``values
train``), the same + MLP head, MiniLM fine-tuned with the Bradley–Terry loss (top
``--layers`` transformer layers and the head, head started from the frozen linear fit),
the hashing baseline + linear head, and (``--only smollm2``) mean-pooled layer-15 hidden
states of SmolLM2-135M-Instruct + linear head on a subset (2,000 training pairs, 1,000 pairs
of each test split: the LM is ten times slower than MiniLM on a CPU).

Goodhart: greedy word edits of test scenarios maximise a proxy -- a frozen-MiniLM linear
utility trained on 300 pairs -- and are scored by held-out judges that the optimiser never
sees: the fine-tuned model (all training pairs) and the frozen linear model on all pairs.

Caches (reruns are cheap): MiniLM / SmolLM2 embeddings in ``cache_dir()/embeddings``; the
fine-tuned weights (safetensors, trained tensors only) and the utilities it gives the test
texts in ``cache_dir()/values/``. Results are written after every stage, atomically.

Run (one torch thread)::

    python benchmarks/values_ethics.py                  # -> benchmarks/results/values_ethics.json
    python benchmarks/values_ethics.py --only smollm2   # -> benchmarks/results/values_ethics_smollm2.json

Data: ``--data PATH`` (the ethics folder), else ``$MLSAFETY_DATA/ethics``, else
``../shared/data/ethics`` next to the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mlsafety.alignment.values import HashingEncoder, MiniLMEncoder, Pairs, UtilityModel
from mlsafety.alignment.values.ethics import ethics_pairwise, load_ethics_utilitarianism
from mlsafety.alignment.values.finetune import FineTunedUtility
from mlsafety.alignment.values.goodhart import GreedyTextOptimizer, vocabulary_from_texts
from mlsafety.models.default import cache_dir
from mlsafety.report import write_json_atomic

RESULTS = Path(__file__).parent / "results" / "values_ethics.json"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ethics"


def data_root(path: str | None) -> Path:
    if path:
        return Path(path)
    if os.environ.get("MLSAFETY_DATA"):
        return Path(os.environ["MLSAFETY_DATA"]) / "ethics"
    return SHARED


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = round(time.perf_counter() - self.wall, 1)
        self.cpu = round(time.process_time() - self.cpu, 1)

    def record(self) -> dict:
        return {"wall_seconds": self.wall, "cpu_seconds": self.cpu}


def progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


def environment() -> dict:
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "loadavg_start": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None}


def save(out: dict, path: Path) -> None:
    out["loadavg_now"] = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    write_json_atomic(path, out)


def pool_utilities(model, embeddings: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {split: model.utility(e).numpy() for split, e in embeddings.items()}


def evaluate(utilities: dict[str, np.ndarray], data: dict) -> dict:
    return {split: ethics_pairwise(utilities[split], data[split]) for split in ("test", "test_hard")}


def show(name: str, row: dict) -> None:
    print(f"{name:28s} test {row['test']['accuracy']:.4f} [{row['test']['low']:.4f}, {row['test']['high']:.4f}]  "
          f"hard {row['test_hard']['accuracy']:.4f} [{row['test_hard']['low']:.4f}, {row['test_hard']['high']:.4f}]",
          flush=True)


def frozen_models(data: dict, out: dict, path: Path) -> dict:
    """Frozen encoders + heads; returns the MiniLM embeddings and the fitted linear model."""
    encoders = {"minilm": MiniLMEncoder(), "hashing": HashingEncoder()}
    embedded = {}
    for name, encoder in encoders.items():
        with Clock() as clock, progress() as bar:
            embedded[name] = {}
            for split, pairs in data.items():
                task = bar.add_task(f"encoding {split} ({name})", total=len(pairs.texts))
                parts = []
                for start in range(0, len(pairs.texts), 2048):
                    parts.append(encoder.encode(pairs.texts[start:start + 2048]))
                    bar.advance(task, len(parts[-1]))
                embedded[name][split] = torch.cat(parts)
        out["encoding"][name] = clock.record()
    fitted = {}
    for key, encoder, head in (("minilm_linear", "minilm", "linear"), ("minilm_mlp", "minilm", "mlp"),
                               ("hashing_linear", "hashing", "linear")):
        train = data["train"]
        e = embedded[encoder]["train"]
        params = {"head": head} if head == "linear" else {"head": "mlp", "hidden_size": 256, "n_steps": 1500,
                                                          "batch_size": 256, "weight_decay": 1e-2}
        with Clock() as clock:
            model = UtilityModel(encoder=encoders[encoder], seed=0, **params).fit_pairs(e[train.better],
                                                                                         e[train.worse])
            row = evaluate(pool_utilities(model, embedded[encoder]), data)
        out["models"][key] = {**row, "fit": clock.record(), "params": params}
        fitted[key] = model
        show(key, row)
        save(out, path)
    return {"embeddings": embedded["minilm"], "linear": fitted["minilm_linear"], "encoder": encoders["minilm"]}


def finetuned_model(data: dict, frozen: dict, out: dict, path: Path, layers: int, epochs: float) -> FineTunedUtility:
    train = data["train"]
    model = FineTunedUtility(n_trainable_layers=layers, n_epochs=epochs, batch_size=16, learning_rate=5e-5,
                             head_learning_rate=1e-3, seed=0)
    # the cache key: the settings and the training pairs themselves
    digest = hashlib.sha256(json.dumps(model.get_params(), sort_keys=True, default=str).encode())
    for a, b in zip(train.better_texts, train.worse_texts):
        digest.update(f"{a}\t{b}\n".encode())
    key = digest.hexdigest()[:10]
    weights = cache_dir() / "values" / f"ethics-finetuned-{key}.safetensors"
    scores = weights.with_suffix(".utilities.npz")
    if weights.is_file():
        model = FineTunedUtility.load(weights)
        print(f"fine-tuned weights from the cache: {weights}", flush=True)
        fit = {"cached": True}
    else:
        with Clock() as clock, progress() as bar:
            model.fit_pairs(train.better_texts, train.worse_texts, init_head=frozen["linear"], progress=bar)
        model.save(weights, extra={"data": "ethics utilitarianism train"})
        fit = clock.record()
        out["finetune_loss"] = [round(float(np.mean(model.history_[i:i + 50])), 4)
                                for i in range(0, len(model.history_), 50)]
    fit.update({"seconds_per_epoch": round(model.seconds_per_epoch_, 1),
                "cpu_seconds_per_epoch": round(model.cpu_seconds_per_epoch_, 1), "n_steps": model.n_steps_,
                "weights_file": str(weights), "weights_bytes": weights.stat().st_size})
    with Clock() as clock:
        if scores.is_file() and scores.stat().st_mtime >= weights.stat().st_mtime:
            with np.load(scores) as stored:
                utilities = {split: stored[split] for split in ("test", "test_hard")}
        else:
            with progress() as bar:
                utilities = {split: model.utility(data[split].texts, progress=bar).numpy()
                             for split in ("test", "test_hard")}
            np.savez(scores, **utilities)
    row = evaluate(utilities, data)
    out["models"]["minilm_finetuned"] = {**row, "fit": fit, "score": clock.record(), "params": model.get_params()}
    show("minilm_finetuned", row)
    save(out, path)
    model.test_utilities_ = utilities
    return model


def goodhart(data: dict, frozen: dict, finetuned: FineTunedUtility, out: dict, path: Path, n_proxy_pairs: int = 300,
             n_texts: int = 12, n_steps: int = 8, n_candidates: int = 24) -> None:
    train, test = data["train"], data["test"]
    encoder, e = frozen["encoder"], frozen["embeddings"]
    small = train.head(n_proxy_pairs, seed=0)
    with Clock() as clock:
        proxy = UtilityModel(encoder=encoder, seed=0).fit_pairs(e["train"][small.better], e["train"][small.worse])
        judges = {"finetuned": finetuned, "frozen_all_pairs": frozen["linear"]}
        scales = {"finetuned": float(np.std(finetuned.test_utilities_["test"])),
                  "frozen_all_pairs": float(frozen["linear"].utility(e["test"]).std())}
        rng = np.random.default_rng(0)
        lengths = np.array([len(t.split()) for t in test.texts])
        starts = [test.texts[i] for i in rng.choice(np.flatnonzero((lengths >= 6) & (lengths <= 20)), n_texts,
                                                    replace=False)]
        vocabulary = vocabulary_from_texts(train.texts, 300)
        optimizer = GreedyTextOptimizer(vocabulary, n_steps=n_steps, n_candidates=n_candidates, seed=0)
        result = {}
        for name, target in (("proxy_300_pairs", proxy), ("frozen_all_pairs", frozen["linear"])):
            gold = {k: (lambda texts, j=j: j.score_texts(texts, cache=False)) for k, j in judges.items()
                    if j is not target}
            scales_here = {**scales, "proxy": float(target.utility(e["test"]).std())}
            with progress() as bar:
                bar.add_task(f"optimising against {name} ({n_steps} steps)", total=None)
                trace = optimizer.optimize(starts, lambda texts, p=target: p.score_texts(texts, cache=False), gold)
            curves = trace.standardized(scales_here)
            result[name] = {"curves": {k: np.round(v, 3).tolist() for k, v in curves.items()},
                            "accepted_per_step": trace.accepted.mean(1).round(3).tolist(),
                            "examples": list(zip(starts[:4], trace.texts[-1][:4]))}
            print("goodhart", name, {k: round(float(v[-1]), 3) for k, v in curves.items()}, flush=True)
    out["goodhart"] = {"n_proxy_pairs": n_proxy_pairs, "n_texts": n_texts, "n_steps": n_steps,
                       "n_candidates": n_candidates,
                       "proxy_300_pairs_accuracy": evaluate(pool_utilities(proxy, e), data),
                       "runs": result, "time": clock.record(),
                       "units": "mean gain over the start texts, in standard deviations of that model's utility over "
                                "the natural test texts"}
    save(out, path)


def smollm2(data: dict, path: Path, n_train: int = 2000, n_test: int = 1000) -> None:
    from mlsafety.alignment.values.lm_encoder import LanguageModelEncoder

    out = {"environment": environment(), "subset": {"train_pairs": n_train, "test_pairs": n_test}, "models": {}}
    subsets = {"train": data["train"].head(n_train, seed=0), "test": data["test"].head(n_test, seed=0),
               "test_hard": data["test_hard"].head(n_test, seed=0)}
    encoder = LanguageModelEncoder()
    with Clock() as clock, progress() as bar:
        embedded = {}
        for split, pairs in subsets.items():
            used = np.unique(np.concatenate([pairs.better, pairs.worse]))
            texts = [pairs.texts[i] for i in used]
            task = bar.add_task(f"encoding {split} (smollm2 layer {encoder.layer})", total=len(texts))
            rows = []
            for start in range(0, len(texts), 256):
                rows.append(encoder.encode(texts[start:start + 256]))
                bar.advance(task, len(rows[-1]))
            full = torch.zeros(len(pairs.texts), rows[0].shape[1])
            full[torch.as_tensor(used)] = torch.cat(rows)
            embedded[split] = full
    out["encoding"] = {**clock.record(), "n_texts": int(sum(len(np.unique(np.concatenate([p.better, p.worse])))
                                                            for p in subsets.values()))}
    for key, encoder_name in (("smollm2_linear", "smollm2"), ("minilm_linear_same_subset", "minilm")):
        if encoder_name == "minilm":
            minilm = MiniLMEncoder()
            e = {s: minilm.encode(p.texts) for s, p in subsets.items()}
        else:
            e = embedded
        train = subsets["train"]
        with Clock() as clock:
            model = UtilityModel(seed=0).fit_pairs(e["train"][train.better], e["train"][train.worse])
            row = {split: ethics_pairwise(model.utility(e[split]).numpy(), subsets[split])
                   for split in ("test", "test_hard")}
        out["models"][key] = {**row, "fit": clock.record()}
        show(key, row)
        save(out, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the ethics folder (default $MLSAFETY_DATA/ethics, then ../shared/data/ethics)")
    parser.add_argument("--only", choices=["main", "smollm2"], default="main")
    parser.add_argument("--layers", type=int, default=2, help="top MiniLM layers fine-tuned (-1: all)")
    parser.add_argument("--epochs", type=float, default=0.5, help="passes over the training pairs when fine-tuning")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-goodhart", action="store_true", help="skip the Goodhart optimisation")
    parser.add_argument("--smoke", type=int, default=0, help="use only this many pairs of each split (a quick check)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = data_root(args.data)
    if not (root / "utilitarianism").is_dir():
        raise SystemExit(f"no ETHICS utilitarianism folder under {root}; pass --data or set MLSAFETY_DATA.")
    with Clock() as clock:
        data = {split: load_ethics_utilitarianism(root, split) for split in ("train", "test", "test_hard")}
    if args.smoke:
        data = {split: pairs.head(args.smoke, seed=0) for split, pairs in data.items()}
        data = {split: Pairs.from_texts(p.better_texts, p.worse_texts) for split, p in data.items()}
    if args.only == "smollm2":
        smollm2(data, args.out or RESULTS.with_name("values_ethics_smollm2.json"))
        return
    path = args.out or RESULTS
    out = {"environment": environment(), "data": str(root), "load_data": clock.record(),
           "n_pairs": {s: len(p) for s, p in data.items()}, "n_texts": {s: len(p.texts) for s, p in data.items()},
           "encoding": {}, "models": {}}
    started = Clock().__enter__()
    frozen = frozen_models(data, out, path)
    finetuned = finetuned_model(data, frozen, out, path, args.layers, args.epochs)
    if not args.no_goodhart:
        goodhart(data, frozen, finetuned, out, path)
    started.__exit__()
    out["total"] = started.record()
    save(out, path)
    print("total", out["total"], flush=True)


if __name__ == "__main__":
    main()
