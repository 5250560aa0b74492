"""Grokking on modular addition with Nanda et al.'s progress measures.

Results: benchmarks/results/emergence_grokking*.json; summary in docs/emergence.md.

Usage::

    python benchmarks/emergence_grokking.py                         # p = 113, 15,000 epochs (Nanda et al.'s setup)
    python benchmarks/emergence_grokking.py --p 59 --epochs 8000    # a shorter run
    python benchmarks/emergence_grokking.py --budget-min 80         # stop training after 80 minutes (wall clock)

One CPU thread. The curves are written atomically after every evaluation (without the progress
measures, which need the final key frequencies), then once more with the measures and milestones.
Reference for p = 113 (Nanda et al. 2023): train loss < 0.01 by about epoch 300, test-loss peak
about epoch 1,400, test loss < 1 near epoch 13,800.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from mlsafety.monitoring.emergence.testbeds.grokking import GrokkingResult, train_grokking
from mlsafety.report import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--p", type=int, default=113)
    parser.add_argument("--epochs", type=int, default=15000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--train-fraction", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-min", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.out or RESULTS / ("emergence_grokking.json" if args.p == 113 else f"emergence_grokking_p{args.p}.json")
    machine = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "processor": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                            time.gmtime())}
    command = "python benchmarks/emergence_grokking.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out")

    def save(result: GrokkingResult, final: bool = False) -> None:
        write_json_atomic(out, {"machine": machine, "command": command, "final": final, **result.to_dict()})

    result = train_grokking(args.p, n_epochs=args.epochs, eval_every=args.eval_every,
                            train_fraction=args.train_fraction, seed=args.seed,
                            time_budget_s=None if args.budget_min is None else 60 * args.budget_min, callback=save)
    save(result, final=True)
    print(f"wrote {out}: {result.seconds:.0f} s CPU, milestones {result.milestones}")


if __name__ == "__main__":
    main()
