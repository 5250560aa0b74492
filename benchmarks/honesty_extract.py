"""Extract and cache SmolLM2-135M-Instruct activations for the default honesty evaluation; time it.

Writes ``benchmarks/results/honesty_extraction.json`` (statements per second per view, fp32, and a
short fp32-vs-bf16 throughput comparison). Run before ``benchmarks/honesty_eval.py``::

    nice -n 10 python benchmarks/honesty_extract.py [--n 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from mlsafety.monitoring.honesty.activations import extract_activations
from mlsafety.monitoring.honesty.datasets import make_statements
from mlsafety.monitoring.honesty.evaluation import DEFAULT_SETS
from mlsafety.monitoring.honesty.lm import load_language_model

OUT = Path(__file__).parent / "results" / "honesty_extraction.json"


def _save(record: dict) -> None:
    handle, temporary = tempfile.mkstemp(dir=OUT.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(record, stream, indent=2)
    os.replace(temporary, OUT)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    record: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor()
                    or platform.machine(), "cpus": os.cpu_count(), "threads": args.threads, "n": args.n,
                    "torch": torch.__version__, "runs": []}
    started = time.perf_counter()
    lm = load_language_model()
    record["load_seconds"] = round(time.perf_counter() - started, 2)
    for name in DEFAULT_SETS:
        statements = make_statements(name, n=args.n, seed=0)
        _, test = statements.split(0.3, seed=0)
        for view, data in (("statement", statements), ("honest", statements), ("lie", test)):
            result = extract_activations(lm, data, view, batch_size=args.batch_size)
            seconds = result.seconds or float(result.meta.get("cached_seconds", 0.0))
            record["runs"].append({"set": name, "view": view, "n": len(data), "seconds": round(seconds, 2),
                                   "statements_per_second": round(len(data) / max(seconds, 1e-9), 2),
                                   "tokens": result.n_tokens, "dtype": "float32"})
            _save(record)
            print(record["runs"][-1], flush=True)
    # fp32 against bf16 on the same 64 statements, uncached
    sample = make_statements("cities", n=64, seed=1)
    for dtype in ("float32", "bfloat16"):
        model = lm if dtype == "float32" else load_language_model(dtype=dtype)
        for view in ("statement", "honest"):
            result = extract_activations(model, sample, view, batch_size=args.batch_size, cache=False)
            record["runs"].append({"set": "cities-64", "view": view, "n": len(sample), "dtype": dtype,
                                   "seconds": round(result.seconds, 2),
                                   "statements_per_second": round(len(sample) / result.seconds, 2),
                                   "tokens": result.n_tokens})
            _save(record)
            print(record["runs"][-1], flush=True)
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    _save(record)


if __name__ == "__main__":
    main()
