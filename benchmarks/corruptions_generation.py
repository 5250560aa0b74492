"""Time a CIFAR-10-C-scale generation with our corruptions: 10,000 RGB images of 32 px x 19
corruptions x 5 severities (950,000 corrupted images), CIFAR severity table, batches of 500,
as ``mlsafety corrupt`` does it (:func:`corrupt_dataset`, then conversion to uint8; no disk
writes). The images are random 32 px crops of scikit-image's bundled photographs.

    python benchmarks/corruptions_generation.py --threads 1             # CPU, one thread
    python benchmarks/corruptions_generation.py --device cuda           # on a GPU, if there is one

Prints wall and CPU seconds per corruption and in total; writes
``benchmarks/results/corruptions_generation_<device>_<threads>t.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-images", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).parent))
    from fidelity_corruptions import photo_patches
    from mlsafety.robustness.corruptions import corrupt_dataset, corruption_names

    images = torch.from_numpy(photo_patches(args.n_images, 32, seed=10)).permute(0, 3, 1, 2).float().div(255)
    images = images.contiguous().to(args.device)
    rows, total_wall, total_cpu = {}, 0.0, 0.0
    for name in corruption_names("all"):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        for severity in range(1, 6):
            for batch in corrupt_dataset(images, name, severity, seed=0, batch_size=args.batch_size,
                                         resolution="cifar"):
                batch.mul(255).round_().to(torch.uint8).cpu()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        rows[name] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
        total_wall += rows[name]["wall_s"]
        total_cpu += rows[name]["cpu_s"]
        print(f"{name:18s} wall {rows[name]['wall_s']:7.2f} s  cpu {rows[name]['cpu_s']:7.2f} s", flush=True)
    print(f"TOTAL {len(rows)} corruptions x 5 severities x {len(images)} images: wall {total_wall:.1f} s, "
          f"cpu {total_cpu:.1f} s ({1e3 * total_wall / (len(rows) * 5 * len(images)):.3f} ms wall per image)")
    report = {"n_images": len(images), "device": args.device, "threads": args.threads,
              "batch_size": args.batch_size, "torch": torch.__version__, "corruptions": rows,
              "total_wall_s": total_wall, "total_cpu_s": total_cpu}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"corruptions_generation_{args.device.split(':')[0]}_{args.threads}t.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
