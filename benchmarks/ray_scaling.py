"""Ray executor: start-up cost, the full default audit local vs Ray (1 and 2 workers), and
shard-level scaling of corruption generation.

Usage::

    .venv/bin/python benchmarks/ray_scaling.py        # everything; writes benchmarks/results/ray_scaling.json
    .venv/bin/python benchmarks/ray_scaling.py --skip-audit --out benchmarks/results/ray_scaling_generation.json

Every run uses one torch thread per process (``OMP_NUM_THREADS=1``; Ray workers take the
driver's count), so "2 workers" means two cores' worth of work.

* **Start-up**: ``import ray``, ``ray.init`` of a local 2-CPU instance, and the first task on
  each worker (a worker process imports torch and mlsafety once).
* **Audit**: ``mlsafety audit --fresh`` (default model and data, no backdoor zoo, a fresh
  ``MLSAFETY_CACHE``) in a fresh interpreter: local, then ``--executor ray --workers 1`` and
  ``--workers 2``. Wall time includes Ray's start-up. CPU is the driver process's (user +
  system from ``getrusage``); the Ray workers' CPU is not visible to it.
* **Corruption generation**: the 15 benchmark corruptions x severities 1, 3, 5 of
  ``--n-images`` Fashion-MNIST test images upsampled to ``--size`` px (at 28 px a shard
  takes milliseconds and measures only Ray's per-task overhead), ``--repeats`` rounds of
  1 worker then 2 workers (alternating, so a changing load hits both), one shard per
  (corruption, severity, batch), each returning a checksum of its uint8 images (so the
  transfer of images does not dominate), run by warm Ray workers: 1 worker, then 2. The
  checksums must equal the local executor's. CPU is summed from ``time.process_time`` inside
  the shards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "ray_scaling.json"


def generation_shard(shard, images):
    import hashlib

    from mlsafety.robustness.corruptions import corrupt_dataset

    start_cpu = time.process_time()
    p = shard.params
    first = p["batch"] * p["batch_size"]
    batch = next(corrupt_dataset(images[first:first + p["batch_size"]], p["corruption"], p["severity"],
                                 seed=0, batch_size=p["batch_size"], first_batch=p["batch"]))
    pixels = (batch * 255).round().clamp(0, 255).byte().numpy()
    return {"sha256": hashlib.sha256(pixels.tobytes()).hexdigest(), "cpu": time.process_time() - start_cpu,
            "images": len(pixels)}


def _warm(shard, shared):
    import torch  # noqa: F401

    import mlsafety.robustness.corruptions  # noqa: F401 - what every later shard imports

    time.sleep(0.5)  # keep this worker busy so the next warm-up shard lands on the other one
    return os.getpid()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure_startup() -> dict[str, float]:
    started = time.perf_counter()
    import ray

    imported = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, _node_ip_address="127.0.0.1",
             logging_level="ERROR", log_to_driver=False)
    initialised = time.perf_counter()
    from mlsafety.execution import RayExecutor, Shard

    pids = RayExecutor(workers=2).map(_warm, [Shard.create(f"w{i}") for i in range(2)])
    warm = time.perf_counter()
    return {"import_ray_s": imported - started, "ray_init_s": initialised - imported,
            "first_task_per_worker_s": warm - initialised, "total_s": warm - started, "worker_pids": len(set(pids))}


def measure_generation(n_images: int, batch_size: int, size: int, repeats: int) -> dict[str, object]:
    import torch

    torch.set_num_threads(1)
    from mlsafety.data import default_splits
    from mlsafety.execution import LocalExecutor, RayExecutor, Shard
    from mlsafety.robustness.corruptions import corruption_names

    images = default_splits()["test"].head(n_images, seed=0).images
    if size != images.shape[-1]:  # bigger images, so a shard's work dwarfs Ray's per-task overhead
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear").clamp(0, 1)
    shards = [Shard.create(f"{name}-{severity}-{batch}", 0, corruption=name, severity=severity, batch=batch,
                          batch_size=batch_size)
              for name in corruption_names("benchmark") for severity in (1, 3, 5)
              for batch in range((n_images + batch_size - 1) // batch_size)]
    ray_1, ray_2 = RayExecutor(workers=1), RayExecutor(workers=2)
    rounds: list[dict[str, dict[str, object]]] = []

    def timed(executor: object) -> dict[str, object]:
        load = loadavg()
        started = time.perf_counter()
        results = executor.map(generation_shard, shards, shared=images)
        wall = time.perf_counter() - started
        return {"wall_s": wall, "shard_cpu_s": sum(r["cpu"] for r in results),
                "images_per_s": sum(r["images"] for r in results) / wall, "load_before": load,
                "sha256": [r["sha256"] for r in results]}

    # 1 and 2 workers alternate, so a change of the machine's load hits both alike
    for _ in range(repeats):
        rounds.append({"ray_1_worker": timed(ray_1), "ray_2_workers": timed(ray_2)})
    local = timed(LocalExecutor())
    same = all(run["sha256"] == local["sha256"] for one in rounds for run in one.values())
    for run in [local, *[run for one in rounds for run in one.values()]]:
        run.pop("sha256")
    speedups = sorted(one["ray_1_worker"]["wall_s"] / one["ray_2_workers"]["wall_s"] for one in rounds)
    return {"n_images": n_images, "image_size": size, "batch_size": batch_size, "n_shards": len(shards),
            "corrupted_images": n_images * 15 * 3, "rounds": rounds, "local": local,
            "same_bytes_as_local": same,
            "speedup_2_over_1_per_round": speedups, "speedup_2_over_1_median": speedups[len(speedups) // 2]}


def measure_audit(extra: list[str], quick: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "MLSAFETY_CACHE": str(Path(folder) / "cache"), "OMP_NUM_THREADS": "1"}
        command = [str(ROOT / ".venv" / "bin" / "mlsafety"), "audit", "--fresh", "--out", str(Path(folder) / "out"),
                   *(["--quick"] if quick else []), *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = loadavg()
        started = time.perf_counter()
        completed = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if completed.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
        report = json.loads((Path(folder) / "out" / "report.json").read_text())
    metrics = {c["name"]: {k: v for k, v in c["metrics"].items() if not k.endswith("_seconds")}
               for c in report["checks"]}
    return {"command": " ".join(["mlsafety", *command[1:]]).replace(folder, "<tmp>"), "wall_s": wall,
            "driver_cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "load_before": load, "check_seconds": report["metadata"]["timings"], "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-images", type=int, default=400, help="images to corrupt (Fashion-MNIST test)")
    parser.add_argument("--size", type=int, default=128, help="upsample the images to SIZE x SIZE px")
    parser.add_argument("--batch-size", type=int, default=200, help="images per shard")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of 1 worker then 2 workers")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON record goes")
    parser.add_argument("--skip-audit", action="store_true")
    parser.add_argument("--quick", action="store_true", help="audit --quick instead of the full audit")
    args = parser.parse_args()
    import torch

    record: dict[str, object] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"1 torch thread per process, CPU kernels {torch.backends.cpu.get_cpu_capability()}",
        "command": " ".join([".venv/bin/python", "benchmarks/ray_scaling.py", *sys.argv[1:]]),
        "load_at_start": loadavg(),
    }
    record["startup"] = measure_startup()
    print("start-up", record["startup"], flush=True)
    record["generation"] = measure_generation(args.n_images, args.batch_size, args.size, args.repeats)
    generation = record["generation"]
    print("generation", {k: v for k, v in generation.items() if k not in ("rounds", "local")}, flush=True)
    for label, run in [*[(k, v) for one in generation["rounds"] for k, v in one.items()],
                       ("local", generation["local"])]:
        print(f"  {label}: {run['wall_s']:.1f} s wall, {run['shard_cpu_s']:.1f} s CPU in shards, "
              f"{run['images_per_s']:.0f} images/s, load {run['load_before']}", flush=True)
    import ray

    ray.shutdown()
    if not args.skip_audit:
        audits = {}
        for label, extra in (("local", []), ("ray_1_worker", ["--executor", "ray", "--workers", "1"]),
                             ("ray_2_workers", ["--executor", "ray", "--workers", "2"])):
            audits[label] = measure_audit(extra, args.quick)
            run = audits[label]
            print(f"audit {label}: {run['wall_s']:.1f} s wall, driver CPU {run['driver_cpu_s']:.1f} s, "
                  f"load {run['load_before']}", flush=True)
        same = all(a["metrics"] == audits["local"]["metrics"] for a in audits.values())
        record["audit"] = {"quick": args.quick, "runs": audits, "same_metrics": same}
        print("same metrics in all three audits:", same)
    record["load_at_end"] = loadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
