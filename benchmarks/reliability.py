"""Bad inputs against every command and mutated files against every loader, tallied.

Runs the table of bad inputs in ``tests/cli/test_contract.py`` through the CLI and
classifies each outcome: a clean error (exit 2, one ``error:`` line on stderr), a
traceback, a wrong exit code, or a silent acceptance (exit 0). Then feeds each loader
of users' files ``--mutations`` damaged copies of a valid file (the mutations of
``tests/test_loader_fuzz.py``) and counts how many were refused with an
``MLSafetyError``, loaded as a valid object, or escaped as another exception.

    python benchmarks/reliability.py [--mutations 300] [--json benchmarks/results/reliability.json]

The tables feed docs/reliability.md.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _unwrap(fixture):
    """The plain function behind a pytest fixture (pytest 8.4 wraps it in an object)."""
    inner = getattr(fixture, "_get_wrapped_function", None)
    return inner() if inner else getattr(fixture, "__wrapped__", fixture)


class _Folders:
    """Stands in for pytest's tmp_path_factory when a fixture runs outside pytest."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir()
        return folder


def _categories(source: str) -> dict[str, str]:
    """Case id -> the comment heading it sits under in the CASES table."""
    categories, current = {}, "other"
    table = source[source.index("CASES:"):]
    for line in table.splitlines():
        stripped = line.strip()
        if stripped == "]":
            break
        if stripped.startswith("# "):
            current = stripped[2:].split(",")[0]
        match = re.match(r'\("([a-z0-9-]+)",', stripped)
        if match:
            categories[match.group(1)] = current
    return categories


def contract_table(workspace_root: Path) -> list[dict]:
    contract_path = ROOT / "tests" / "cli" / "test_contract.py"
    contract = _module(contract_path, "contract_cases")
    categories = _categories(contract_path.read_text())

    workspace = _unwrap(contract.workspace)(_Folders(workspace_root))
    sys.path.insert(0, str(workspace))
    rows: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    os.chdir(workspace)
    for case_id, argv in contract.CASES:
        os.environ["MLSAFETY_CACHE"] = str(workspace_root / "cache")
        sys.modules.pop("factories", None)
        result = contract.runner.invoke(contract.app, [a.replace("{w}", str(workspace)) for a in argv])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        if "Traceback" in result.output or result.exit_code == 3 or (
                result.exception is not None and not isinstance(result.exception, SystemExit)):
            outcome = "traceback"
        elif result.exit_code == 0:
            outcome = "silent acceptance"
        elif result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "):
            outcome = "clean error"
        else:
            outcome = "wrong exit code or message"
        rows[categories.get(case_id, "other")][outcome] += 1
        if outcome != "clean error":
            print(f"{case_id}: {outcome}: exit {result.exit_code}: {result.output[-300:]!r}")
    os.chdir(ROOT)
    return [{"category": name, "tried": sum(counts.values()), **counts} for name, counts in rows.items()]


def fuzz_table(n_mutations: int, scratch: Path) -> list[dict]:
    fuzz = _module(ROOT / "tests" / "test_loader_fuzz.py", "loader_fuzz")
    from mlsafety.exceptions import MLSafetyError

    models = _unwrap(fuzz.model_files)(_Folders(scratch))
    rng = np.random.default_rng(0)

    def mutation() -> tuple:
        kind = rng.choice(["truncate", "flip", "insert", "replace"])
        if kind == "truncate":
            return ("truncate", float(rng.random()))
        if kind == "flip":
            return ("flip", [(float(rng.random()), int(rng.integers(256))) for _ in range(rng.integers(1, 17))])
        if kind == "insert":
            return ("insert", (float(rng.random()), rng.bytes(int(rng.integers(1, 33)))))
        return ("replace", rng.bytes(int(rng.integers(0, 513))))

    def write(folder: Path, name: str, data: bytes) -> Path:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        return folder / name

    from mlsafety.data import load_cifar10, load_image_folder, load_npz

    loaders = {
        ".npz": lambda f: load_npz(write(f, "d.npz", fuzz.mutate(fuzz.npz_bytes(), mutation()))),
        "image folder": lambda f: (write(f, "a/0.png", fuzz.png_bytes()),
                                   write(f, "b/1.png", fuzz.mutate(fuzz.png_bytes(), mutation())),
                                   load_image_folder(f))[-1],
        "CIFAR-10 batch": lambda f: (write(f, "test_batch", fuzz.mutate(fuzz.cifar_batch_bytes(), mutation())),
                                     load_cifar10(f))[-1],
        "Fashion-MNIST IDX": lambda f: (write(f, "t10k-images-idx3-ubyte",
                                              fuzz.mutate(fuzz.idx_bytes(True), mutation())),
                                        write(f, "t10k-labels-idx1-ubyte", fuzz.idx_bytes(False)),
                                        fuzz.load_fashion_mnist("test", path=f))[-1],
        ".safetensors (mlsafety)": lambda f: fuzz.load_classifier(
            write(f, "m.safetensors", fuzz.mutate(models["safetensors"], mutation()))),
        ".safetensors (weights only)": lambda f: fuzz.load_classifier(
            write(f, "m.safetensors", fuzz.mutate(models["raw_safetensors"], mutation())),
            architecture="small_cnn", architecture_kwargs={"width": 2}, normalization="none"),
        ".pt state dict": lambda f: fuzz.load_classifier(
            write(f, "m.pt", fuzz.mutate(models["pt"], mutation())),
            architecture="small_cnn", architecture_kwargs={"width": 2}, normalization="none"),
        "TorchScript": lambda f: fuzz.load_classifier(
            write(f, "m.torchscript", fuzz.mutate(models["torchscript"], mutation()))),
        "pairs CSV": lambda f: fuzz.load_pair_file(write(f, "p.csv", fuzz.mutate(fuzz.PAIRS_CSV.encode(), mutation()))),
        "ETHICS CSV": lambda f: fuzz.load_ethics_utilitarianism(
            write(f, "util_train.csv", fuzz.mutate(fuzz.ETHICS_CSV.encode(), mutation())), "train"),
        "statements CSV": lambda f: fuzz.load_statements_csv(
            write(f, "s.csv", fuzz.mutate(fuzz.STATEMENTS_CSV.encode(), mutation()))),
        "run table CSV/JSON": lambda f: fuzz.load_runs(
            write(f, "r.csv", fuzz.mutate(fuzz.RUNS_OUTPUTS_CSV.encode(), mutation()))),
    }
    rows = []
    for name, load in loaders.items():
        counts: collections.Counter = collections.Counter()
        for index in range(n_mutations):
            folder = scratch / f"{name.replace(' ', '_').replace('/', '_')}-{index}"
            folder.mkdir()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    load(folder)
                counts["loaded valid"] += 1
            except MLSafetyError:
                counts["refused (MLSafetyError)"] += 1
            except Exception as error:  # what the benchmark exists to count
                counts[f"escaped {type(error).__name__}"] += 1
        rows.append({"loader": name, "mutated files": n_mutations, **counts})
    return rows


def _print(rows: list[dict], key: str) -> None:
    columns = [key, *sorted({c for r in rows for c in r} - {key, "cases"}, key=lambda c: (c != "tried", c))]
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row.get(c, 0)) for c in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=300, help="damaged files per loader")
    parser.add_argument("--json", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        contract = contract_table(Path(scratch))
        fuzz = fuzz_table(args.mutations, Path(scratch))
    print("Bad inputs through the CLI")
    _print(contract, "category")
    print("\nMutated files through the loaders")
    _print(fuzz, "loader")
    print(f"\n{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"contract": contract, "fuzz": fuzz}, indent=1))


if __name__ == "__main__":
    main()
