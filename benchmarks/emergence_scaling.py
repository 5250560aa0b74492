"""Tiny GPT-2 scaling family on algorithmic tasks, then the emergence analysis of its outputs.

Results: benchmarks/results/emergence_scaling_runs.csv (per-example outputs at every checkpoint; the
rows with the last step are a run table for ``mlsafety emergence analyze``) and
benchmarks/results/emergence_scaling.json (timings and the analysis); summary in docs/emergence.md.

Usage::

    python benchmarks/emergence_scaling.py                  # 6 sizes (4k-150k parameters), 2,500 steps
    python benchmarks/emergence_scaling.py --steps 500      # a quick look
    python benchmarks/emergence_scaling.py --analyze-only   # re-run the analysis on the saved records

One CPU thread. The records are rewritten atomically after every model.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import time
from pathlib import Path

import torch

from mlsafety.monitoring.emergence import EmergenceAnalysis, analyze, table_from_records
from mlsafety.monitoring.emergence.testbeds.scaling import ScalingResult, train_family
from mlsafety.report import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ["model", "scale", "step", "task", "example", "output", "target", "target_logprob"]


def write_csv(path: Path, records: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(buffer.getvalue())
    os.replace(temporary, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-eval", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--analyze-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "processor": platform.processor() or platform.machine(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    command = (f"python benchmarks/emergence_scaling.py --steps {args.steps} --batch-size {args.batch_size} "
               f"--n-eval {args.n_eval} --seed {args.seed}")
    runs = RESULTS / "emergence_scaling_runs.csv"

    def save(result: ScalingResult) -> None:
        write_csv(runs, result.records)
        print(f"{result.models[-1]['name']}: {result.models[-1]['n_params']} parameters, "
              f"{result.models[-1]['cpu_seconds']:.0f} s CPU", flush=True)

    if args.analyze_only:
        summary = json.loads((RESULTS / "emergence_scaling.json").read_text())
        with runs.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        last = max(int(r["step"]) for r in rows)
        analysis = analyze(table_from_records([r for r in rows if int(r["step"]) == last]))
        summary["analysis"] = analysis.to_dict()
        summary["analysis_date"] = machine["date"]
        write_json_atomic(RESULTS / "emergence_scaling.json", summary)
        _print(analysis)
        return
    wall = time.perf_counter()
    result = train_family(n_steps=args.steps, batch_size=args.batch_size, n_eval=args.n_eval, seed=args.seed,
                          callback=save)
    wall = time.perf_counter() - wall
    analysis = analyze(table_from_records(result.final_records()))
    summary = {"machine": machine, "command": command, "cpu_seconds": result.seconds, "wall_seconds": wall,
               "models": result.models, "settings": result.settings, "losses": result.losses,
               "analysis": analysis.to_dict()}
    write_json_atomic(RESULTS / "emergence_scaling.json", summary)
    _print(analysis)
    print(f"total {result.seconds:.0f} s CPU, {wall:.0f} s wall")


def _print(analysis: EmergenceAnalysis) -> None:
    for item in analysis.curves:
        jump = item.flagged
        print(f"{item.curve.label:<36} {[round(float(v), 3) for v in item.curve.values]} "
              f"{'JUMP at ' + format(jump.scale_after, 'g') if jump else '-'}")
    for comparison in analysis.comparisons:
        print(f"{comparison.task}/{comparison.metric}: {comparison.verdict}")


if __name__ == "__main__":
    main()
