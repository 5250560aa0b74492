"""Held-out triggers: backdoored models whose trigger pattern and position no zoo attack uses.

The shadow-model zoo (``mlsafety backdoor zoo build``) draws BadNets patches (checkerboard or
white squares in a corner), Blended (i.i.d. grey-level noise key), WaNet and SIG. This script
trains models with the zoo's recipe (width-16 SmallCNN, 10,000 Fashion-MNIST images, 3 epochs)
but with two trigger kinds none of those attacks produce:

* ``interior_patch``: a random binary (salt-and-pepper) square of 3-5 px at a random position
  at least 6 px away from every border (BadNets patches touch a corner, at most 2 px away);
* ``block_blend``: a whole-image key of random 4x4-px black/white blocks blended with weight
  0.1-0.25 (the zoo's Blended key is per-pixel noise).

Models and ``manifest.json`` go to ``cache_dir()/backdoor_zoo_holdout/<zoo identity>/``; the
manifest is rewritten atomically after every model, so an interrupted build resumes. The
detectors are evaluated on these models by ``benchmarks/backdoor_meta.py --stages holdout``.

    nohup nice -n 10 python benchmarks/backdoor_holdout.py --n 16 &
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlsafety._io import atomic_write_text
from mlsafety.monitoring.backdoor._attack import BackdoorAttack
from mlsafety.monitoring.backdoor.zoo import ZooConfig, zoo_splits

KINDS = ("interior_patch", "block_blend")


class InteriorPatch(BackdoorAttack):
    """A random binary square stamped away from the borders (a held-out BadNets variant)."""

    registry_name = "interior_patch"

    def __init__(self, patch_size: int = 4, top: int = 10, left: int = 10, target_class: int = 0,
                 poison_rate: float = 0.05, seed: int | None = 0) -> None:
        super().__init__(target_class, "all_to_one", poison_rate, seed)
        self.patch_size = patch_size
        self.top = top
        self.left = left

    def apply_trigger(self, x: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(self.seed or 0))
        square = (torch.rand(self.patch_size, self.patch_size, generator=generator) < 0.5).to(x.dtype)
        square[0, 0] = 1.0  # never all black
        mask = torch.zeros(x.shape[-2:], dtype=x.dtype)
        pattern = torch.zeros(x.shape[-2:], dtype=x.dtype)
        rows, columns = slice(self.top, self.top + self.patch_size), slice(self.left, self.left + self.patch_size)
        mask[rows, columns] = 1.0
        pattern[rows, columns] = square
        return (1 - mask.to(x.device)) * x + (mask * pattern).to(x.device)


class BlockBlend(BackdoorAttack):
    """A key of random 4x4-px black/white blocks blended into the whole image."""

    registry_name = "block_blend"

    def __init__(self, alpha: float = 0.2, block: int = 4, target_class: int = 0, poison_rate: float = 0.05,
                 seed: int | None = 0) -> None:
        super().__init__(target_class, "all_to_one", poison_rate, seed)
        self.alpha = alpha
        self.block = block

    def apply_trigger(self, x: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(self.seed or 0))
        height, width = x.shape[-2:]
        cells = (torch.rand(-(-height // self.block), -(-width // self.block), generator=generator) < 0.5)
        key = cells.to(x.dtype).repeat_interleave(self.block, 0).repeat_interleave(self.block, 1)[:height, :width]
        return (1 - self.alpha) * x + self.alpha * key.to(x.device)


def plan(index: int, config: ZooConfig, image_size: int = 28, n_classes: int = 10) -> dict[str, Any]:
    rng = np.random.default_rng([config.seed, 7, index])
    kind = KINDS[index % len(KINDS)]
    common = {"target_class": int(rng.integers(n_classes)), "seed": int(rng.integers(2**31)),
              "poison_rate": round(float(rng.uniform(0.03, 0.1)), 4)}
    if kind == "interior_patch":
        size = int(rng.integers(3, 6))
        kwargs = {"patch_size": size, "top": int(rng.integers(6, image_size - 6 - size + 1)),
                  "left": int(rng.integers(6, image_size - 6 - size + 1))}
    else:
        kwargs = {"alpha": round(float(rng.uniform(0.1, 0.25)), 3)}
    return {"name": f"{kind}_{index:03d}", "family": kind, "attack": {**kwargs, **common},
            "seed": int(rng.integers(2**31))}


def make(entry: dict[str, Any]) -> BackdoorAttack:
    return (InteriorPatch if entry["family"] == "interior_patch" else BlockBlend)(**entry["attack"])


def holdout_folder(config: ZooConfig) -> Path:
    from mlsafety.models.default import cache_dir

    return cache_dir() / "backdoor_zoo_holdout" / config.identity


def train(entry: dict[str, Any], config: ZooConfig, folder: Path) -> dict[str, Any]:
    from mlsafety.models import Classifier, build_architecture, save_checkpoint, train_classifier
    from mlsafety.models.training import accuracy
    from mlsafety.monitoring.backdoor.evaluation import attack_success_rate

    splits = zoo_splits(config.data, config.n_train)
    attack = make(entry)
    poisoned, _ = attack.poison_dataset(splits["train"])
    start, cpu = time.perf_counter(), time.process_time()
    kwargs = {"in_channels": 1, "n_classes": poisoned.n_classes, "width": config.width}
    torch.manual_seed(entry["seed"])
    module = build_architecture(config.architecture, **kwargs).eval()
    classifier = Classifier(module, mean=splits["mean"], std=splits["std"], class_names=list(poisoned.class_names),
                            input_shape=tuple(poisoned.images.shape[1:]), name=f"holdout:{entry['name']}")
    train_classifier(classifier, poisoned, epochs=config.epochs, batch_size=config.batch_size,
                     learning_rate=config.learning_rate, seed=entry["seed"], progress=False)
    row = {**entry, "clean_accuracy": accuracy(classifier, splits["test"]),
           "attack_success_rate": attack_success_rate(classifier, attack, splits["test"]),
           "training_seconds": round(time.perf_counter() - start, 2),
           "training_cpu_seconds": round(time.process_time() - cpu, 2),
           "file": f"models/{entry['name']}.safetensors"}
    save_checkpoint(classifier, folder / row["file"], config.architecture, kwargs,
                    {"zoo": config.identity, "zoo_model": entry["name"]})
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = ZooConfig()
    folder = holdout_folder(config)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"zoo": config.identity,
                                                                                     "models": {}}
    for index in range(args.n):
        entry = plan(index, config)
        if entry["name"] in manifest["models"] and (folder / manifest["models"][entry["name"]]["file"]).exists():
            continue
        row = train(entry, config, folder)
        manifest["models"][row["name"]] = row
        atomic_write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True))
        print(row["name"], f"acc {row['clean_accuracy']:.3f} asr {row['attack_success_rate']:.3f}",
              f"{row['training_cpu_seconds']} CPU s", flush=True)


if __name__ == "__main__":
    main()
