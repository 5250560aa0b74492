"""Throughput of our batched corruptions against the reference ``imagecorruptions`` (one image at
a time, NumPy / OpenCV / scikit-image), on the same images, same machine, one CPU thread.

For each corruption at one severity (3), corrupts ``--n32`` photo patches of 32 px and ``--n224``
of 224 px with both, measuring CPU time of this process (robust to other load on a shared
machine) and wall time. After one warm-up call each (the first call pays one-off costs such as
reading the reference's frost photographs and building our tables), ours and the reference run
alternately ``--repeats`` times each, so that both see the same machine state; the table gives
the medians (the JSON also the minima, the ``timeit`` convention). Ours runs with
``resolution="imagenet"`` so both use the same table. Each gets its native input, prepared
outside the timing: the reference uint8 (H, W, 3) arrays, ours one contiguous float
(N, 3, H, W) tensor in [0, 1] (as ``ImageDataset`` yields; a channels-last view costs one extra
copy per call, about 0.05 ms per 224 px image).
The reference's glass_blur, gaussian_blur and fog are patched to run (see
fidelity_corruptions.py); totals are given over all 19 and over the 16 that the unpatched
reference runs.

Limits: the noise corruptions read and write each value once (8 bytes per float32 value), so
their bound is a memory copy of the batch; the script measures ``torch`` copy of a tensor of
the batch's size in the same run (``memcpy`` column, bytes read + written per second) and
prints the noise ops' effective bytes per second against it, next to the rate of the random
draws they need (``torch.randn`` / ``torch.rand`` of the batch's size), which is what they
actually wait for on the CPU.

Output: one table per size (ours, reference, ratio, limit) and the totals; the JSON also
records the ATen CPU capability, the load average and the date.

    python benchmarks/corruptions.py --n32 128 --n224 12 --repeats 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
CRASHING = {"glass_blur", "gaussian_blur", "fog"}


NOISE = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")


def timed(function, repeats: int, medians: dict | None = None) -> tuple[float, float]:
    """Best wall and best CPU seconds of ``repeats`` calls after one warm-up call (the median
    CPU seconds go into ``medians["cpu"]`` when given)."""
    stats = interleaved({"f": function}, repeats)["f"]
    if medians is not None:
        medians["cpu"] = stats["cpu_median"]
    return stats["wall_min"], stats["cpu_min"]


def interleaved(functions: dict, repeats: int) -> dict:
    """Median and minimum wall and CPU seconds of each function, after one warm-up call each,
    running them in turn ``repeats`` times (so that load from other processes falls on all)."""
    for function in functions.values():
        function()
    walls = {key: [] for key in functions}
    cpus = {key: [] for key in functions}
    for _ in range(repeats):
        for key, function in functions.items():
            wall, cpu = time.perf_counter(), time.process_time()
            function()
            walls[key].append(time.perf_counter() - wall)
            cpus[key].append(time.process_time() - cpu)
    return {key: {"wall_median": statistics.median(walls[key]), "wall_min": min(walls[key]),
                  "cpu_median": statistics.median(cpus[key]), "cpu_min": min(cpus[key])} for key in functions}


def memory_limits(x: torch.Tensor, repeats: int) -> dict:
    """Bytes per second of a copy of ``x`` (read + write) and values per second of the draws."""
    out = torch.empty_like(x)
    generator = torch.Generator().manual_seed(0)
    copy = timed(lambda: out.copy_(x), max(repeats, 5))[1]
    randn = timed(lambda: torch.randn(x.shape, generator=generator, out=out), max(repeats, 5))[1]
    rand = timed(lambda: torch.rand(x.shape, generator=generator, out=out), max(repeats, 5))[1]
    return {"memcpy_bytes_per_s": 2 * x.numel() * 4 / max(copy, 1e-9), "randn_values_per_s": x.numel() / randn,
            "rand_values_per_s": x.numel() / rand}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n32", type=int, default=128)
    parser.add_argument("--n224", type=int, default=16)
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--names", default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="32,224", help="which of 32 and 224 to run")
    parser.add_argument("--out", default="corruptions_speed.json", help="file name under benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    from fidelity_corruptions import patched_reference, photo_patches, reference_corrupt

    reference = patched_reference()
    from mlsafety.registry import CORRUPTIONS
    from mlsafety.robustness.corruptions import corruption_names

    names = corruption_names("all") if args.names == "all" else args.names.split(",")
    report = {"severity": args.severity, "threads": 1, "repeats": args.repeats, "torch": torch.__version__,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "load_average_start": os.getloadavg(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "sizes": {}}
    print(f"ATen CPU capability {report['cpu_capability']}, load average {report['load_average_start']}", flush=True)
    loads = [os.getloadavg()[0]]
    sizes = [int(size) for size in args.sizes.split(",")]
    for size, n in ((32, args.n32), (224, args.n224)):
        if size not in sizes:
            continue
        images = photo_patches(n, size, seed=size)
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).contiguous()
        limits = memory_limits(x, args.repeats)
        print(f"{size}px batch {tuple(x.shape)}: memcpy {limits['memcpy_bytes_per_s'] / 1e9:.1f} GB/s, "
              f"randn {limits['randn_values_per_s'] / 1e6:.0f} M values/s, "
              f"rand {limits['rand_values_per_s'] / 1e6:.0f} M values/s", flush=True)
        print(f"{'corruption':18s} {'ours ms/img':>11s} {'ref ms/img':>11s} {'ratio':>7s}  limit", flush=True)
        rows = {}
        for name in names:
            corruption = CORRUPTIONS.get(name)(severity=args.severity, seed=0, resolution="imagenet")
            # ours and the reference alternately for each corruption (same machine state)
            stats = interleaved({
                "ours": lambda c=corruption, x=x: c(x),
                "reference": lambda name=name, images=images: reference_corrupt(reference, images, name,
                                                                                args.severity, 0)}, args.repeats)
            ours, ref = stats["ours"], stats["reference"]
            ours_cpu = ours["cpu_median"]
            rows[name] = {"ours_ms": 1000 * ours_cpu / n, "reference_ms": 1000 * ref["cpu_median"] / n,
                          "ratio": ref["cpu_median"] / max(ours_cpu, 1e-9),
                          "ratio_of_minima": ref["cpu_min"] / max(ours["cpu_min"], 1e-9),
                          "ours_min_ms": 1000 * ours["cpu_min"] / n, "reference_min_ms": 1000 * ref["cpu_min"] / n,
                          "ours_wall_ms": 1000 * ours["wall_median"] / n,
                          "reference_wall_ms": 1000 * ref["wall_median"] / n}
            limit = ""
            if name in NOISE:
                # read x, write the result: 8 bytes per value at best
                rate = 8 * x.numel() / max(ours_cpu, 1e-9)
                rows[name]["bytes_per_s"] = rate
                rows[name]["fraction_of_memcpy"] = rate / limits["memcpy_bytes_per_s"]
                limit = (f"{rate / 1e9:.1f} GB/s = {rate / limits['memcpy_bytes_per_s']:.0%} of memcpy "
                         f"({limits['memcpy_bytes_per_s'] / 1e9:.0f} GB/s)")
            loads.append(os.getloadavg()[0])
            print(f"{name:18s} {rows[name]['ours_ms']:11.3f} {rows[name]['reference_ms']:11.3f} "
                  f"{rows[name]['ratio']:6.1f}x  {limit}", flush=True)
        totals = {}
        for label, subset in (("all", names), ("reference_runs_unpatched", [m for m in names if m not in CRASHING])):
            ours = sum(rows[m]["ours_ms"] for m in subset)
            ref = sum(rows[m]["reference_ms"] for m in subset)
            totals[label] = {"ours_ms": ours, "reference_ms": ref, "ratio": ref / max(ours, 1e-9), "n": len(subset)}
            print(f"{size:3d}px TOTAL ({label}, {len(subset)}): ours {ours:.2f} ms/img, reference {ref:.2f} ms/img, "
                  f"ratio x{ref / max(ours, 1e-9):.1f}", flush=True)
        report["sizes"][str(size)] = {"n_images": n, "limits": limits, "corruptions": rows, "totals": totals}
    report["load_average_end"] = os.getloadavg()
    report["load_1min_during"] = {"min": min(loads), "median": statistics.median(loads), "max": max(loads)}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / args.out
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
