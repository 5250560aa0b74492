"""Throughput of our batched corruptions against the reference ``imagecorruptions`` (one image at
a time, NumPy / OpenCV / scikit-image), on the same images, same machine, one CPU thread.

For each corruption at one severity (3), corrupts ``--n32`` photo patches of 32 px and ``--n224``
of 224 px with both, measuring CPU time of this process (robust to other load on a shared
machine) and wall time: after one warm-up call each, the best of ``--repeats`` runs (the
``timeit`` convention; the first call pays one-off costs such as reading the reference's frost
photographs and building our tables). Ours runs with ``resolution="imagenet"`` so both use the
same table. Each gets its native input, prepared outside the timing: the reference uint8
(H, W, 3) arrays, ours one contiguous float (N, 3, H, W) tensor in [0, 1] (as
``ImageDataset`` yields; a channels-last view costs one extra copy per call, about 0.05 ms
per 224 px image).
The reference's glass_blur, gaussian_blur and fog are patched to run (see
fidelity_corruptions.py); totals are given over all 19 and over the 16 that the unpatched
reference runs.

    python benchmarks/corruptions.py --n32 128 --n224 12 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
CRASHING = {"glass_blur", "gaussian_blur", "fog"}


def timed(function, repeats: int) -> tuple[float, float]:
    """Best wall and best CPU seconds of ``repeats`` calls after one warm-up call."""
    function()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n32", type=int, default=128)
    parser.add_argument("--n224", type=int, default=16)
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--names", default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="32,224", help="which of 32 and 224 to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    from fidelity_corruptions import patched_reference, photo_patches, reference_corrupt

    reference = patched_reference()
    from mlsafety.registry import CORRUPTIONS
    from mlsafety.robustness.corruptions import corruption_names

    names = corruption_names("all") if args.names == "all" else args.names.split(",")
    report = {"severity": args.severity, "threads": 1, "repeats": args.repeats, "torch": torch.__version__,
              "sizes": {}}
    sizes = [int(size) for size in args.sizes.split(",")]
    for size, n in ((32, args.n32), (224, args.n224)):
        if size not in sizes:
            continue
        images = photo_patches(n, size, seed=size)
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).contiguous()
        rows = {}
        for name in names:
            corruption = CORRUPTIONS.get(name)(severity=args.severity, seed=0, resolution="imagenet")
            ours_wall, ours_cpu = timed(lambda c=corruption, x=x: c(x), args.repeats)
            ref_wall, ref_cpu = timed(
                lambda name=name, images=images: reference_corrupt(reference, images, name, args.severity, 0),
                args.repeats)
            rows[name] = {"ours_ms": 1000 * ours_cpu / n, "reference_ms": 1000 * ref_cpu / n,
                          "ratio": ref_cpu / max(ours_cpu, 1e-9),
                          "ours_wall_ms": 1000 * ours_wall / n, "reference_wall_ms": 1000 * ref_wall / n}
            print(f"{size:3d}px {name:18s} ours {rows[name]['ours_ms']:8.3f} ms/img  "
                  f"reference {rows[name]['reference_ms']:9.3f} ms/img  x{rows[name]['ratio']:7.1f}", flush=True)
        totals = {}
        for label, subset in (("all", names), ("reference_runs_unpatched", [m for m in names if m not in CRASHING])):
            ours = sum(rows[m]["ours_ms"] for m in subset)
            ref = sum(rows[m]["reference_ms"] for m in subset)
            totals[label] = {"ours_ms": ours, "reference_ms": ref, "ratio": ref / max(ours, 1e-9), "n": len(subset)}
            print(f"{size:3d}px TOTAL ({label}, {len(subset)}): ours {ours:.2f} ms/img, reference {ref:.2f} ms/img, "
                  f"ratio x{ref / max(ours, 1e-9):.1f}", flush=True)
        report["sizes"][str(size)] = {"n_images": n, "corruptions": rows, "totals": totals}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "corruptions_speed.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
