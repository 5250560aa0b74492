"""``mlsafety corrupt``: write a corrupted copy of a data set, laid out as CIFAR-10-C.

One ``<corruption>.npy`` per corruption holds uint8 images of shape (5 N, H, W, C):
severity 1 for the first N images, then severity 2, ... (the severities asked for, in
order); ``labels.npy`` holds the labels repeated once per severity. Progress is saved after
every batch, so an interrupted run resumes where it stopped and produces the same bytes as
an uninterrupted one (every batch has its own derived seed).

With ``--executor ray`` every (corruption, severity, batch) is a shard on a Ray cluster; the
batches arrive in any order, are written in place at once and listed in the manifest's
``finished``, and the files are byte for byte those of the local executor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mlsafety.cli._app import app
from mlsafety.cli._common import (
    ADDRESS_HELP,
    EXECUTOR_HELP,
    WORKERS_HELP,
    check_device,
    check_out_dir,
    check_seed,
    cli_errors,
    console,
    fail,
    make_cli_executor,
)


def _parse_names(text: str) -> list[str]:
    from mlsafety.registry import CORRUPTIONS
    from mlsafety.robustness.corruptions import corruption_names

    names: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if item in ("benchmark", "holdout", "all"):
            names += corruption_names(item)
        elif item:
            CORRUPTIONS.get(item)  # raises UnknownMethodError with suggestions
            names.append(item)
    return list(dict.fromkeys(names))


def _parse_severities(text: str) -> list[int]:
    try:
        severities = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise fail(f"--severities takes comma-separated integers in 1..5; got {text!r}.") from None
    if not severities or any(s < 1 or s > 5 for s in severities) or len(set(severities)) != len(severities):
        raise fail(f"--severities must be distinct integers in 1..5; got {text!r}.")
    return severities


@app.command()
@cli_errors
def corrupt(
    out: Annotated[Path, typer.Option(help="Output folder (created; resumed if it holds an unfinished run).")],
    data: Annotated[str, typer.Option(help="Data: fashion-mnist, digits, .npz, CIFAR-10 folder or image folder.")] = "fashion-mnist",
    split: Annotated[str, typer.Option(help="Split of a named data set (test or train).")] = "test",
    corruptions: Annotated[str, typer.Option(help="Comma-separated names, or benchmark / holdout / all.")] = "all",
    severities: Annotated[str, typer.Option(help="Comma-separated severities in 1..5.")] = "1,2,3,4,5",
    limit: Annotated[int | None, typer.Option(help="Use only the first N images.")] = None,
    seed: Annotated[int, typer.Option(help="Base seed (each batch derives its own).")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images corrupted per batch.")] = 500,
    resolution: Annotated[str, typer.Option(help="Severity table: auto, cifar, tiny_imagenet or imagenet.")] = "auto",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Start afresh even if OUT holds a run with other settings.")] = False,
    executor: Annotated[str, typer.Option(metavar="local|ray", help=EXECUTOR_HELP)] = "local",
    address: Annotated[str | None, typer.Option(metavar="auto|HOST:PORT", help=ADDRESS_HELP)] = None,
    workers: Annotated[int | None, typer.Option(metavar="N", help=WORKERS_HELP)] = None,
) -> None:
    """Write a corrupted copy of a data set (one .npy per corruption, severities stacked)."""

    names = _parse_names(corruptions)
    levels = _parse_severities(severities)
    if batch_size < 1:
        raise fail(f"--batch-size must be >= 1; got {batch_size}.")
    if limit is not None and limit < 1:
        raise fail(f"--limit must be >= 1; got {limit}.")
    if split not in ("test", "train"):
        raise fail(f"--split must be test or train; got {split!r}.")
    if resolution not in ("auto", "cifar", "tiny_imagenet", "imagenet"):
        raise fail(f"--resolution must be auto, cifar, tiny_imagenet or imagenet; got {resolution!r}.")
    check_seed(seed)
    device = check_device(device) or "cpu"
    runner = make_cli_executor(executor, address, workers, device)
    check_out_dir(out)
    from mlsafety._io import locked_output_dir

    with locked_output_dir(out, command="mlsafety corrupt"), runner:
        _corrupt(out, data, split, names, levels, limit, seed, batch_size, resolution, device, overwrite, runner)


def corrupt_batch(shard: Any, images: Any) -> Any:
    """One batch of one corruption and severity as uint8 (B, H, W, C): the shard of ``--executor ray``.

    Seeded like the local path (``corrupt_dataset`` at ``first_batch``), so the bytes agree."""
    from mlsafety.robustness.corruptions import corrupt_dataset

    p = shard.params
    start = p["batch"] * p["batch_size"]
    batch = next(corrupt_dataset(images[start:start + p["batch_size"]], p["corruption"], p["severity"],
                                 seed=p["seed"], batch_size=p["batch_size"], resolution=p["resolution"],
                                 device=p["device"], first_batch=p["batch"]))
    return (batch * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()


def _corrupt(out: Path, data: str, split: str, names: list[str], levels: list[int], limit: int | None, seed: int,
             batch_size: int, resolution: str, device: str, overwrite: bool, runner: Any = None) -> None:
    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from mlsafety._io import atomic_write_text
    from mlsafety.data import load_dataset
    from mlsafety.robustness.corruptions import corrupt_dataset

    dataset = load_dataset(data, split=split)
    if limit is not None:
        dataset = dataset.subset(range(min(limit, len(dataset))))
    images = dataset.images
    n, c, h, w = images.shape
    settings = {"data": str(data), "split": split, "n_images": n, "shape": [h, w, c], "severities": levels,
                "seed": seed, "batch_size": batch_size, "resolution": resolution}
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and not overwrite:
        try:
            previous = json.loads(manifest_path.read_text())
        except (ValueError, UnicodeDecodeError):
            raise fail(f"{manifest_path} is damaged; pass --overwrite to start afresh.") from None
        if previous.get("settings") != settings:
            raise fail(f"{out} holds a run with other settings ({previous.get('settings')}); "
                       "choose another --out or pass --overwrite.")
        done = previous.get("done", {})
        finished = {name: set(steps) for name, steps in previous.get("finished", {}).items()}
    else:
        done = {}
        finished = {}
        for stale in list(out.glob("*.partial.npy")) + list(out.glob("*.npy")):
            stale.unlink()
    np.save(out / "labels.npy", np.tile(dataset.labels.numpy().astype(np.int64), len(levels)))

    def save_manifest() -> None:
        atomic_write_text(manifest_path, json.dumps({
            "settings": settings, "corruptions": names, "class_names": dataset.class_names,
            "layout": "(len(severities) * N, H, W, C) uint8, severity-major", "done": done,
            **({"finished": {k: sorted(v) for k, v in finished.items()}} if finished else {})}, indent=1))

    save_manifest()
    batches = (n + batch_size - 1) // batch_size
    if runner is not None and not runner.is_local:
        _corrupt_sharded(runner, out, images, names, levels, seed, batch_size, resolution, device, done,
                         finished, save_manifest)
        console.print(f"wrote {len(names)} corruption(s) x {len(levels)} severities of {n} images to {out}",
                      markup=False)
        return
    total = len(names) * len(levels) * batches
    completed = sum(done.get(name, 0) for name in names)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("corrupting", total=total, completed=completed)
        for name in names:
            final = out / f"{name}.npy"
            steps = len(levels) * batches
            if done.get(name, 0) >= steps and final.exists():
                continue
            partial = out / f"{name}.partial.npy"
            if partial.exists() and done.get(name, 0) > 0:
                array = np.load(partial, mmap_mode="r+")
            else:
                done[name] = 0
                array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(len(levels) * n, h, w, c))
            progress.update(task, description=name)
            for level_index, level in enumerate(levels):
                first_batch = max(0, done[name] - level_index * batches)
                if first_batch >= batches:
                    continue
                stream = corrupt_dataset(images[first_batch * batch_size:], name, level, seed=seed,
                                         batch_size=batch_size, resolution=resolution, device=device,
                                         first_batch=first_batch)
                for batch_index, batch in enumerate(stream, start=first_batch):
                    start = level_index * n + batch_index * batch_size
                    pixels = (batch * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
                    array[start:start + len(pixels)] = pixels
                    array.flush()
                    done[name] = level_index * batches + batch_index + 1
                    save_manifest()
                    progress.advance(task)
            del array
            partial.replace(final)
    console.print(f"wrote {len(names)} corruption(s) x {len(levels)} severities of {n} images to {out}", markup=False)


def _corrupt_sharded(runner: Any, out: Path, images: Any, names: list[str], levels: list[int], seed: int,
                     batch_size: int, resolution: str, device: str, done: dict[str, int],
                     finished: dict[str, set[int]], save_manifest: Any) -> None:
    """Every missing (corruption, severity, batch) as a shard; each is written into its
    ``.partial.npy`` and recorded in the manifest as it arrives, in any order.

    ``done[name]`` stays the count of leading finished steps (what the local path resumes
    from); ``finished[name]`` lists every finished step (step = severity index x batches + batch).
    """
    import numpy as np

    from mlsafety.execution import Shard, Task

    n, c, h, w = images.shape
    batches = (n + batch_size - 1) // batch_size
    steps = len(levels) * batches
    arrays: dict[str, Any] = {}
    tasks = []
    shared = runner.share(images)
    for name in names:
        final = out / f"{name}.npy"
        if done.get(name, 0) >= steps and final.exists():
            continue
        partial = out / f"{name}.partial.npy"
        if partial.exists() and (done.get(name, 0) > 0 or finished.get(name)):
            arrays[name] = np.load(partial, mmap_mode="r+")
        else:
            done[name] = 0
            finished[name] = set()
            arrays[name] = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8,
                                                     shape=(len(levels) * n, h, w, c))
        have = finished.setdefault(name, set()) | set(range(done.get(name, 0)))
        for step in range(steps):
            if step not in have:
                level_index, batch = divmod(step, batches)
                tasks.append(Task(corrupt_batch, Shard.create(
                    f"{name}-{levels[level_index]}-{batch}", seed, corruption=name, severity=levels[level_index],
                    batch=batch, batch_size=batch_size, seed=seed, resolution=resolution, device=device,
                    step=step), shared))
    if not tasks:
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task_id = progress.add_task("corrupting (shards)", total=len(tasks))

        def on_result(task: Any, pixels: Any, resumed: bool) -> None:
            from mlsafety.execution import ShardError

            if isinstance(pixels, ShardError):
                raise pixels.error
            p = task.shard.params
            name, step = p["corruption"], p["step"]
            level_index, batch = divmod(step, batches)
            start = level_index * n + batch * batch_size
            arrays[name][start:start + len(pixels)] = pixels
            arrays[name].flush()
            finished[name].add(step)
            while done.get(name, 0) in finished[name]:
                done[name] = done.get(name, 0) + 1
            if done[name] >= steps:
                finished.pop(name)
            save_manifest()
            progress.advance(task_id)
            if done[name] >= steps:
                arrays.pop(name).flush()
                (out / f"{name}.partial.npy").replace(out / f"{name}.npy")

        runner.run(tasks, on_result)

