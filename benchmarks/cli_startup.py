"""Start-up cost of the command line: CPU and wall time of ``--help`` and ``info``, and which
heavy libraries each one imports.

Usage::

    .venv/bin/python benchmarks/cli_startup.py [--runs 5]   # writes benchmarks/results/cli_startup.json

Each command runs ``--runs`` times in a fresh interpreter; the median CPU time (user + system,
from ``resource.getrusage`` of the child) and wall time are reported, with the load average,
so that a busy machine is visible in the record. ``python -X importtime`` of ``mlsafety --help``
gives the modules that cost most, cumulatively.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

COMMANDS = (["--help"], ["audit", "--help"], ["info", "--help"], ["values", "eval", "--help"],
            ["proxy", "sweep", "--help"], ["info"])
HEAVY = ("torch", "sklearn", "scipy", "matplotlib", "numpy", "transformers")
# runs the console script's entry point, then says which heavy modules got imported
_CODE = ("import sys\nsys.argv = ['mlsafety', *sys.argv[1:]]\nfrom mlsafety.cli import main\n"
         "try:\n    main()\nexcept SystemExit:\n    pass\n"
         f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")


def measure(args: list[str], runs: int) -> dict[str, object]:
    cpu, wall, heavy = [], [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", _CODE, *args], capture_output=True, text=True, check=False)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        heavy = [line for line in result.stderr.splitlines() if line.startswith("HEAVY")]
    return {"cpu_seconds": round(statistics.median(cpu), 3), "wall_seconds": round(statistics.median(wall), 3),
            "heavy_imports": heavy[0][6:] if heavy else "?"}


def import_profile(top: int = 8) -> list[list[object]]:
    """The modules with the largest cumulative import time under ``mlsafety --help``."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", _CODE, "--help"], capture_output=True,
                            text=True, check=False)
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
            if not name.startswith(" ") and "." not in name.strip():
                rows.append([name.strip(), round(int(cumulative) / 1e6, 3)])
    return sorted(rows, key=lambda r: -r[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cli_startup.json"))
    args = parser.parse_args()
    record = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        "load_average_before": os.getloadavg(),
        "commands": {" ".join(c): measure(list(c), args.runs) for c in COMMANDS},
        "import_seconds_cumulative_help": import_profile(),
        "load_average_after": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    for command, row in record["commands"].items():
        print(f"mlsafety {command:<22} CPU {row['cpu_seconds']:6.2f} s  wall {row['wall_seconds']:6.2f} s  "
              f"heavy imports {row['heavy_imports']}")
    print(f"load average {record['load_average_before']} -> {record['load_average_after']}")


if __name__ == "__main__":
    main()
