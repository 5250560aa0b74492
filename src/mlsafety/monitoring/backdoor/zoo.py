"""A shadow-model zoo: many small models, clean and backdoored, trained and cached.

Model-level backdoor detectors need reference models: meta-detectors (MNTD, ULP) learn from
labelled shadow models, and a calibrated decision compares a statistic of the user's model
with its distribution over *clean* shadow models of the same architecture and data
(:mod:`mlsafety.monitoring.backdoor.calibration`).

The zoo follows the "jumbo" shadow distribution of Xu et al. (2021), *Detecting AI Trojans
Using Meta Neural Analysis* (IEEE S&P): every backdoored model draws its attack family
(BadNets, Blended, WaNet, SIG; SIG is clean-label) and, within it, a random trigger
(pattern, size, position, blend strength, warping strength), target class and poison rate.

A zoo lives in ``cache_dir()/backdoor_zoo/<identity>/``: ``models/<name>.safetensors`` and a
``manifest.json`` (configuration, and per model its attack, clean accuracy and attack
success). Every file is written to a temporary name and renamed, after each model, so an
interrupted build resumes where it stopped; ``manifest.json`` and ``statistics.json`` are
updated under a file lock (read, merge, write), so concurrent builds or audits sharing a zoo
never drop each other's rows. Model ``i`` of each kind depends only on the
configuration and ``i``: asking for more models later extends the same zoo.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from mlsafety._io import atomic_write_text
from mlsafety._validation import check_positive
from mlsafety.exceptions import DataNotFoundError, InvalidParameterError, parameter_error

FAMILIES = ("badnets", "blended", "wanet", "sig")
DATASETS = ("fashion-mnist", "digits")
MANIFEST = "manifest.json"
STATISTICS = "statistics.json"
# how long a writer waits for another one to finish its read-merge-write (a few milliseconds)
LOCK_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class ZooConfig:
    """What every model of a zoo shares; its hash is the zoo's identity.

    Parameters
    ----------
    architecture : a registered architecture name (``small_cnn``).
    data : ``"fashion-mnist"`` (28 px) or ``"digits"`` (scikit-learn's digits at 16 px).
    width : channel width passed to the architecture.
    n_train : training images per model (a fixed seeded subset of the training split).
    epochs, batch_size, learning_rate : training recipe (AdamW, one-cycle).
    seed : seeds the attack draws and the training of every model.
    """

    architecture: str = "small_cnn"
    data: str = "fashion-mnist"
    width: int = 16
    n_train: int = 10000
    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 5e-3
    seed: int = 0

    def validate(self) -> ZooConfig:
        from mlsafety.registry import ARCHITECTURES

        owner = "ZooConfig"
        if self.architecture not in ARCHITECTURES.names():
            raise parameter_error("architecture", owner, f"one of {sorted(ARCHITECTURES.names())}", self.architecture)
        if self.data not in DATASETS:
            raise parameter_error("data", owner, f"one of {list(DATASETS)}", self.data)
        for name in ("width", "n_train", "epochs", "batch_size"):
            check_positive(getattr(self, name), name, owner, integer=True)
        check_positive(self.learning_rate, "learning_rate", owner)
        return self

    @property
    def identity(self) -> str:
        """``<architecture>-<data>-w<width>-<hash of the whole configuration>``."""
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.architecture}-{self.data}-w{self.width}-{digest}"


def zoo_root() -> Path:
    """``$MLSAFETY_CACHE/backdoor_zoo`` (or ``~/.cache/mlsafety/backdoor_zoo``)."""
    from mlsafety.models.default import cache_dir

    return cache_dir() / "backdoor_zoo"


def build_command(architecture: str, data: str) -> str:
    """The one command that builds a zoo for a model (shown when none exists)."""
    return (f"mlsafety backdoor zoo build --architecture {architecture} --data {data} "
            "--n-clean 30 --n-backdoored 32")


def zoo_splits(data: str, n_train: int) -> dict[str, Any]:
    """Training subset, test subset and normalisation of a zoo's data set."""
    if data == "fashion-mnist":
        from mlsafety.data import default_splits
        from mlsafety.models.default import FASHION_MNIST_MEAN, FASHION_MNIST_STD

        splits = default_splits()
        return {"train": splits["train"].head(n_train, seed=0), "test": splits["test"].head(2000, seed=0),
                "validation": splits["validation"].head(1000, seed=0),
                "mean": FASHION_MNIST_MEAN, "std": FASHION_MNIST_STD}
    if data == "digits":
        from mlsafety.data import load_digits

        train, validation, test = load_digits(size=16).split([0.6, 0.2, 0.2], seed=0)
        return {"train": train.head(min(n_train, len(train)), seed=0), "test": test, "validation": validation,
                "mean": [0.3], "std": [0.4]}
    raise parameter_error("data", "zoo", f"one of {list(DATASETS)}", data)


def plan_model(config: ZooConfig, kind: str, index: int, image_size: int, n_classes: int) -> dict[str, Any]:
    """The deterministic recipe of model ``index`` of ``kind`` (``"clean"`` or ``"backdoored"``)."""
    rng = np.random.default_rng([config.seed, 0 if kind == "clean" else 1, index])
    train_seed = int(rng.integers(2**31))
    if kind == "clean":
        return {"name": f"clean_{index:03d}", "family": None, "attack": None, "seed": train_seed}
    family = FAMILIES[index % len(FAMILIES)]
    target = int(rng.integers(n_classes))
    common: dict[str, Any] = {"target_class": target, "seed": int(rng.integers(2**31))}
    if family == "badnets":
        high = max(3, image_size // 6)
        kwargs = {"patch_size": int(rng.integers(2, high + 1)), "margin": int(rng.integers(0, 3)),
                  "position": str(rng.choice(["bottom_right", "bottom_left", "top_right", "top_left"])),
                  "pattern": str(rng.choice(["checkerboard", "white"])),
                  "poison_rate": round(float(rng.uniform(0.03, 0.1)), 4)}
    elif family == "blended":
        kwargs = {"alpha": round(float(rng.uniform(0.1, 0.3)), 3),
                  "poison_rate": round(float(rng.uniform(0.03, 0.1)), 4)}
    elif family == "wanet":
        kwargs = {"strength": round(float(rng.uniform(0.75, 1.25)), 3), "grid_size": 4,
                  "poison_rate": round(float(rng.uniform(0.08, 0.15)), 4)}
    else:
        # clean-label: only target-class samples can carry the signal (about 1/K of the data)
        kwargs = {"delta": round(float(rng.uniform(25, 45)) / 255, 4), "frequency": int(rng.integers(4, 9)),
                  "poison_rate": round(float(rng.uniform(0.04, 0.07)) * 10 / n_classes, 4)}
    return {"name": f"{family}_{index:03d}", "family": family, "attack": {**kwargs, **common}, "seed": train_seed}


def make_attack(entry: dict[str, Any]) -> Any:
    """The attack object of a planned model (``None`` for a clean one)."""
    from mlsafety.registry import BACKDOOR_ATTACKS

    return None if entry["family"] is None else BACKDOOR_ATTACKS.create(entry["family"], **entry["attack"])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the OS file lock ``.<name>.lock`` beside ``path`` (released even if the process dies)."""
    with FileLock(str(path.with_name(f".{path.name}.lock")), timeout=LOCK_TIMEOUT_SECONDS):
        yield


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def update_json(path: Path, update: Callable[[Any], None], default: Callable[[], Any] = dict) -> Any:
    """Read ``path`` (or ``default()``), apply ``update`` in place and write it back atomically, all
    under the file's lock, so concurrent writers merge instead of overwriting each other."""
    with _locked(path):
        payload = _read_json(path, None)
        payload = default() if payload is None else payload
        update(payload)
        atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True))
    return payload


def _train_shard(shard: Any, shared: tuple[ZooConfig, str]) -> dict[str, Any]:
    """One zoo model as an executor shard (module level, so that workers can import it)."""
    config, folder = shared
    return train_one(config, dict(shard.params["entry"]), folder)


def train_one(config: ZooConfig, entry: dict[str, Any], folder: str) -> dict[str, Any]:
    """Train one planned model, save it atomically, and return its manifest row."""
    from mlsafety.models import Classifier, build_architecture, save_checkpoint, train_classifier
    from mlsafety.models.training import accuracy
    from mlsafety.monitoring.backdoor.evaluation import attack_success_rate

    torch.set_num_threads(1)
    splits = zoo_splits(config.data, config.n_train)
    train = splits["train"]
    attack = make_attack(entry)
    if attack is not None:
        train, _ = attack.poison_dataset(train)
    start = time.perf_counter()
    kwargs = {"in_channels": int(train.images.shape[1]), "n_classes": train.n_classes, "width": config.width}
    torch.manual_seed(entry["seed"])
    module = build_architecture(config.architecture, **kwargs).eval()
    classifier = Classifier(module, mean=splits["mean"], std=splits["std"], class_names=list(train.class_names),
                            input_shape=tuple(train.images.shape[1:]), name=f"zoo:{entry['name']}")
    train_classifier(classifier, train, epochs=config.epochs, batch_size=config.batch_size,
                     learning_rate=config.learning_rate, seed=entry["seed"], progress=False)
    seconds = time.perf_counter() - start
    row = {**entry, "clean_accuracy": accuracy(classifier, splits["test"]),
           "attack_success_rate": None if attack is None else attack_success_rate(classifier, attack, splits["test"]),
           "training_seconds": round(seconds, 2), "file": f"models/{entry['name']}.safetensors"}
    save_checkpoint(classifier, Path(folder) / row["file"], config.architecture, kwargs,
                    {"zoo": config.identity, "zoo_model": entry["name"]})
    return row


class Zoo:
    """A cached shadow-model zoo (see the module docstring).

    Parameters
    ----------
    config : ZooConfig
    root : folder holding zoos (default :func:`zoo_root`).

    Examples
    --------
    >>> zoo = Zoo(ZooConfig(data="digits", width=8, n_train=600, epochs=4))
    >>> zoo.build(n_clean=4, n_backdoored=4)
    >>> clean = zoo.load_models("clean")
    """

    def __init__(self, config: ZooConfig, root: str | Path | None = None) -> None:
        self.config = config.validate()
        self.folder = Path(root) if root is not None else zoo_root()
        self.folder = self.folder / config.identity

    # -- manifest ------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST

    def manifest(self) -> dict[str, Any]:
        """The manifest (an empty one if nothing was built)."""
        if self.manifest_path.exists():
            return json.loads(self.manifest_path.read_text())
        return {"identity": self.config.identity, "config": dataclasses.asdict(self.config), "models": {}}

    def rows(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Manifest rows of the built models, sorted by name; ``kind`` in {None, "clean", "backdoored"}."""
        rows = [row for row in self.manifest()["models"].values() if (self.folder / row["file"]).exists()]
        if kind == "clean":
            rows = [row for row in rows if row["family"] is None]
        elif kind == "backdoored":
            rows = [row for row in rows if row["family"] is not None]
        return sorted(rows, key=lambda row: row["name"])

    # -- building ------------------------------------------------------------------------
    def plan(self, n_clean: int, n_backdoored: int) -> list[dict[str, Any]]:
        splits = zoo_splits(self.config.data, 1)
        size, n_classes = int(splits["train"].images.shape[-1]), splits["train"].n_classes
        return ([plan_model(self.config, "clean", i, size, n_classes) for i in range(n_clean)]
                + [plan_model(self.config, "backdoored", i, size, n_classes) for i in range(n_backdoored)])

    def build(self, n_clean: int, n_backdoored: int, n_workers: int = 1,
              progress: Callable[[dict[str, Any]], None] | None = None, executor: Any = None) -> dict[str, Any]:
        """Train the models of the plan that are not built yet; returns the manifest.

        Resumable: the manifest is rewritten atomically after every model, and a model whose
        row and file exist is skipped. With a distributed ``executor`` (for example
        :class:`~mlsafety.execution.RayExecutor`) each model is one shard; its seeds come from
        the plan, so where it is trained does not change it. On several machines the zoo
        folder must be on storage that every worker sees.
        """
        for name, value in (("n_clean", n_clean), ("n_backdoored", n_backdoored)):
            check_positive(value, name, "Zoo.build", integer=True, allow_zero=True)
        check_positive(n_workers, "n_workers", "Zoo.build", integer=True)
        (self.folder / "models").mkdir(parents=True, exist_ok=True)
        # temporaries of a killed writer (an hour old: a live writer renames its own within seconds)
        for leftover in self.folder.glob(".*.tmp"):
            if time.time() - leftover.stat().st_mtime > 3600:
                leftover.unlink(missing_ok=True)
        done = {row["name"] for row in self.rows()}
        todo = [entry for entry in self.plan(n_clean, n_backdoored) if entry["name"] not in done]

        def record(row: dict[str, Any]) -> None:
            def add(manifest: dict[str, Any]) -> None:
                manifest["models"][row["name"]] = row
                manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

            update_json(self.manifest_path, add, self.manifest)
            if progress is not None:
                progress(row)

        if executor is not None and not executor.is_local:
            from mlsafety.execution import Shard, ShardError, Task

            handle = executor.share((self.config, str(self.folder)))

            def on_result(task: Any, row: Any, resumed: bool) -> None:
                if isinstance(row, ShardError):
                    raise row.error
                record(row)

            executor.run([Task(_train_shard, Shard(entry["name"], {"entry": entry}, int(entry["seed"])), handle)
                          for entry in todo], on_result)
        elif n_workers == 1:
            for entry in todo:
                record(train_one(self.config, entry, str(self.folder)))
        else:
            import multiprocessing

            with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(train_one, self.config, entry, str(self.folder)) for entry in todo]
                for future in as_completed(futures):
                    record(future.result())
        return self.manifest()

    # -- loading -------------------------------------------------------------------------
    def load_models(self, kind: str | None = None) -> list[tuple[dict[str, Any], Any]]:
        """``(row, Classifier)`` for every built model of ``kind``."""
        from mlsafety.models import load_classifier

        rows = self.rows(kind)
        if not rows:
            raise DataNotFoundError(f"the zoo {self.config.identity} has no {kind or ''} models under {self.folder}; "
                                    f"build it with: {build_command(self.config.architecture, self.config.data)}")
        return [(row, load_classifier(self.folder / row["file"])) for row in rows]

    # -- cached statistics ---------------------------------------------------------------
    def statistics(self, key: str, compute: Callable[[Any], Any], kind: str | None = None,
                   names: Collection[str] | None = None) -> dict[str, Any]:
        """``{model name: compute(classifier)}``, cached in ``statistics.json`` under ``key``.

        ``compute`` returns a number or a JSON-friendly dict; ``names`` restricts the models.
        The cache is written after every model, so an interrupted run resumes.
        """
        path = self.folder / STATISTICS
        # one snapshot of the rows: a build running at the same time may add models meanwhile
        rows = [row for row in self.rows(kind) if names is None or row["name"] in names]
        values = dict(_read_json(path, {}).get(key, {}))
        missing = [row for row in rows if row["name"] not in values]
        if missing:
            from mlsafety.models import load_classifier

            for row in missing:
                value = compute(load_classifier(self.folder / row["file"]))
                value = value if isinstance(value, dict) else float(value)
                values[row["name"]] = value

                def add(cache: dict[str, Any], name: str = row["name"], value: Any = value) -> None:
                    cache.setdefault(key, {})[name] = value

                # merged under the lock: other processes may be adding other models or statistics
                update_json(path, add)
        return {row["name"]: values[row["name"]] for row in rows}


def find_zoo(architecture: str, data: str, root: str | Path | None = None) -> Zoo | None:
    """The built zoo with the most clean models for ``architecture`` and ``data``, if any."""
    folder = Path(root) if root is not None else zoo_root()
    best: tuple[int, Zoo] | None = None
    for manifest_path in sorted(folder.glob(f"{architecture}-{data}-*/{MANIFEST}")):
        try:
            config = ZooConfig(**json.loads(manifest_path.read_text())["config"])
        except (ValueError, TypeError, KeyError, InvalidParameterError):
            continue
        zoo = Zoo(config, folder)
        n_clean = len(zoo.rows("clean"))
        if n_clean and (best is None or n_clean > best[0]):
            best = (n_clean, zoo)
    return None if best is None else best[1]
