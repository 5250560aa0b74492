"""Value learning on the VADER human ratings: MiniLM vs hashing utilities, learning curve,
domain transfer and the Goodhart curve.

Run (about 15-30 minutes on two busy CPU cores once the MiniLM embeddings are cached)::

    python benchmarks/values.py                   # writes benchmarks/results/values.json
    python benchmarks/values.py --long-goodhart   # 30 steps, writes values_goodhart_long.json

Needs the VADER files (``mlsafety values fetch`` fetches them once).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mlsafety.alignment.values import HashingEncoder, MiniLMEncoder, load_lexicon
from mlsafety.alignment.values.experiment import (
    domain_transfer,
    evaluate_utility,
    fit_utility,
    goodhart_experiment,
    learning_curve,
    vader_splits,
)

RESULTS = Path(__file__).parent / "results" / "values.json"


def main(quick: bool = False) -> dict:
    torch.set_num_threads(1)
    started = time.time()
    splits = vader_splits(seed=0)
    out: dict = {"n_train_texts": len(splits.train), "n_test_texts": len(splits.test),
                 "n_train_pairs": len(splits.train_pairs), "n_test_pairs": len(splits.test_pairs),
                 "n_hard_test_pairs": int(splits.test_pairs.hard.sum()), "models": {}}
    encoders = {"minilm": MiniLMEncoder(), "hashing": HashingEncoder()}
    embeddings = {name: (enc.encode(splits.train.texts), enc.encode(splits.test.texts))
                  for name, enc in encoders.items()}
    print(f"embedded in {time.time() - started:.0f} s", flush=True)
    for name, (train_e, test_e) in embeddings.items():
        for head, loss in (("linear", "bradley_terry"), ("mlp", "bradley_terry"), ("linear", "regression"),
                           ("mlp", "regression")):
            t = time.time()
            model = fit_utility(train_e, splits.train_pairs, ratings=splits.train.ratings, loss=loss, head=head)
            metrics = evaluate_utility(model.utility(test_e).numpy(), splits.test, splits.test_pairs)
            metrics.pop("calibration")
            key = f"{name}/{head}/{loss}"
            out["models"][key] = {**metrics, "seconds": round(time.time() - t, 1)}
            print(key, {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}, flush=True)
    sizes = [100, 300, 1000, 3000, 10000, 20000] if not quick else [100, 1000]
    out["learning_curve"] = {}
    for name, (train_e, test_e) in embeddings.items():
        out["learning_curve"][name] = learning_curve(train_e, splits.train_pairs, test_e, splits.test_pairs, sizes,
                                                     n_repeats=3 if not quick else 1, head="linear")
        print("curve", name, [(int(r["n_pairs"]), round(r["pairwise_accuracy"], 4))
                              for r in out["learning_curve"][name]], flush=True)
    train_e, test_e = embeddings["minilm"]
    out["transfer"] = domain_transfer(splits, train_e, test_e, n_pairs=3000, head="linear")
    print("transfer", json.dumps(out["transfer"]), flush=True)
    goodhart = {}
    for n_proxy in ((300, 3000) if not quick else (300,)):
        result = goodhart_experiment(splits, encoders["minilm"], train_e, lexicon=load_lexicon(),
                                     n_texts=16 if not quick else 4, n_steps=12 if not quick else 3,
                                     n_candidates=48 if not quick else 8, n_proxy_pairs=n_proxy, seed=0)
        goodhart[str(n_proxy)] = {
            "summary": result["summary"],
            "curves": {k: {s: v.tolist() for s, v in t.standardized(result["summary"][k]["scales"]).items()}
                       for k, t in result["traces"].items()},
            "examples": {k: list(zip(result["starts"][:5], t.texts[-1][:5])) for k, t in result["traces"].items()},
        }
        print("goodhart", n_proxy, json.dumps({k: {m: round(v, 3) for m, v in s.items() if isinstance(v, float)}
                                              for k, s in result["summary"].items()}), flush=True)
    out["goodhart"] = goodhart
    out["seconds"] = round(time.time() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))
    return out


def long_goodhart(n_steps: int = 30) -> dict:
    """A longer optimisation of the 300-pair proxy: does the gold judge ever fall?"""
    torch.set_num_threads(1)
    splits = vader_splits(seed=0)
    encoder = MiniLMEncoder()
    result = goodhart_experiment(splits, encoder, encoder.encode(splits.train.texts), lexicon=load_lexicon(),
                                 n_texts=8, n_steps=n_steps, n_candidates=24, n_proxy_pairs=300, n_members=3, seed=1)
    out = {name: {s: np.round(v, 3).tolist() for s, v in t.standardized(result["summary"][name]["scales"]).items()}
           for name, t in result["traces"].items()}
    out["examples"] = {k: list(zip(result["starts"][:4], t.texts[-1][:4])) for k, t in result["traces"].items()}
    path = RESULTS.with_name("values_goodhart_long.json")
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "examples"}), flush=True)
    return out


if __name__ == "__main__":
    if "--long-goodhart" in sys.argv:
        long_goodhart()
    else:
        main(quick="--quick" in sys.argv)
    print("done", np.__name__)
