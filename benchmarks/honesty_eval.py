"""The default honesty evaluation of SmolLM2-135M-Instruct: every set, every layer, every probe.

Reads the activations cached by ``benchmarks/honesty_extract.py`` (run that first; otherwise this
extracts them), times the evaluation, and writes ``benchmarks/results/honesty_eval.json`` (every
figure in ``docs/honesty.md``) and an HTML + JSON report under ``--report``::

    nice -n 10 python benchmarks/honesty_eval.py [--n 1000] [--report /tmp/honesty-report]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from mlsafety.monitoring.honesty.datasets import make_statements
from mlsafety.monitoring.honesty.evaluation import DEFAULT_PROBES, DEFAULT_SETS, default_prior, evaluate, prepare_set
from mlsafety.monitoring.honesty.lm import load_language_model
from mlsafety.monitoring.honesty.report import build_honesty_report

OUT = Path(__file__).parent / "results" / "honesty_eval.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--feature", default="last", choices=["last", "mean"])
    parser.add_argument("--report", default=str(Path(tempfile.gettempdir()) / "honesty-report"))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    lm = load_language_model()
    data = [prepare_set(lm, make_statements(name, n=args.n, seed=0)) for name in DEFAULT_SETS]
    prior = default_prior(lm)
    prepared = time.perf_counter() - started
    results = evaluate(data, DEFAULT_PROBES, feature=args.feature, prior=prior)
    evaluation = time.perf_counter() - started - prepared
    attribution = sorted({d.statements.attribution for d in data if d.statements.attribution})
    build_honesty_report(results, args.report, metadata={"model": lm.name, "n_per_set": args.n},
                         attribution=attribution)
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), torch threads {args.threads}",
        "command": f"python benchmarks/honesty_eval.py --n {args.n} --feature {args.feature}",
        "model": lm.name, "prior": prior, "load_and_cache_seconds": round(prepared, 1),
        "evaluation_seconds": round(evaluation, 1),
        "sizes": {d.name: {"train": len(d.train), "test": len(d.test)} for d in data},
        **{k: v for k, v in dataclasses.asdict(results).items() if k != "honesty"},
        "honesty": {k: v for k, v in results.honesty.items() if k != "cases"},
    }
    out = Path(args.out)
    handle, temporary = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(record, stream, indent=1)
    os.replace(temporary, out)
    print(json.dumps({"pooled": results.pooled, "zero_shot": results.zero_shot["calibrated"]["pooled"],
                      "best_layer": results.best_layer, "gap": results.gap,
                      "lie_auroc": results.honesty.get("lie_auroc"), "seconds": results.seconds,
                      "evaluation_seconds": evaluation}, indent=1))


if __name__ == "__main__":
    main()
