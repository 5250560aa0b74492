"""``mlsafety backdoor scan``: does a model carry a backdoor? Neural Cleanse, universal perturbations and
STRIP, with a report."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from mlsafety.cli._app import app
from mlsafety.cli._common import (
    ADDRESS_HELP,
    EXECUTOR_HELP,
    EXIT_FINDINGS,
    check_device,
    check_seed,
    cli_errors,
    console,
    err_console,
    fail,
    holds_output_folder,
    make_cli_executor,
    print_written,
)

backdoor_app = typer.Typer(help="Backdoors (trojans): scan a model for a hidden trigger.", no_args_is_help=True)
app.add_typer(backdoor_app, name="backdoor")


@backdoor_app.command()
@cli_errors
@holds_output_folder
def scan(
    model: Annotated[str | None, typer.Option(help="Model: file (.safetensors, .pt, TorchScript) or module:function. Default: the embedded Fashion-MNIST model.")] = None,
    data: Annotated[str | None, typer.Option(help="Clean data the model was meant for (default: Fashion-MNIST).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder for report.html / report.json.")] = Path("mlsafety-backdoor"),
    architecture: Annotated[str | None, typer.Option(help="Architecture for weight-only checkpoints.")] = None,
    normalization: Annotated[str | None, typer.Option(help="Input normalisation for weight-only checkpoints: MEAN,...,STD,... per channel, a preset or none.")] = None,
    steps: Annotated[int | None, typer.Option(help="Neural Cleanse optimisation steps (default 25, the zoo-calibrated setting; another value recomputes the zoo's statistics once).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="STRIP on fewer inputs, no Spectral Signatures; the same model-level verdict.")] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
) -> None:
    """Reverse-engineer a trigger and a universal perturbation per class, print the verdict, write the report.

    With a shadow-model zoo for the model's architecture and data (``mlsafety backdoor zoo build``)
    the verdict is calibrated (each class against the same class of clean shadows, empirical
    p-value); without one it is labelled uncalibrated, reported as info, and never exits 1. Exit code 1 when a backdoor is suspected, 0
    otherwise, 2 on bad input.
    """
    from mlsafety.audit.checks.backdoor import BackdoorCheck
    from mlsafety.audit.preflight import preflight
    from mlsafety.cli.audit import build_context
    from mlsafety.models.normalization import parse_normalization
    from mlsafety.report import render_report

    if steps is not None and steps < 1:
        raise fail(f"--steps must be an integer >= 1; got {steps}.")
    check_seed(seed)
    device = check_device(device)
    if normalization is not None:
        parse_normalization(normalization)
    context = build_context(model, data, None, None, architecture, device, quick, seed, normalization)
    for warning in preflight(context):
        err_console.print(f"warning: {warning}", markup=False)
    if steps is not None:
        context.options["backdoor"] = {"neural_cleanse": {"steps": steps}}
    check = BackdoorCheck()
    reason = check.not_applicable(context)
    if reason is not None:
        raise fail(f"cannot scan this model: {reason}.")
    result = check.run(context)
    metadata = {"command": "backdoor scan", "model": model or "default", "data": data or "fashion-mnist",
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "model_card": context.classifier.describe(), "quick": quick, "seed": seed}
    json_path, html_path = render_report(out, [result], metadata, title="mlsafety backdoor scan")
    # a warning needs a calibrated flag; without a zoo the verdict is info ("no verdict"), exit 0
    suspected = result.verdict == "warn"
    verdict = ("BACKDOOR SUSPECTED" if suspected else "no verdict (uncalibrated)" if result.verdict == "info"
               else "no backdoor found")
    console.print(f"{verdict}: {result.summary}", markup=False)
    print_written("report", html_path)
    print_written("json", json_path)
    if suspected:
        raise typer.Exit(EXIT_FINDINGS)


zoo_app = typer.Typer(help="Shadow-model zoos: clean and backdoored reference models for calibrated verdicts.",
                      no_args_is_help=True)
backdoor_app.add_typer(zoo_app, name="zoo")


@zoo_app.command("build")
@cli_errors
def zoo_build(
    architecture: Annotated[str, typer.Option(help="Registered architecture of the shadow models.")] = "small_cnn",
    data: Annotated[str, typer.Option(help="fashion-mnist (28 px) or digits (16 px).")] = "fashion-mnist",
    n_clean: Annotated[int, typer.Option(help="Clean shadow models.")] = 30,
    n_backdoored: Annotated[int, typer.Option(help="Backdoored shadow models (families BadNets, Blended, WaNet, SIG in turn).")] = 32,
    width: Annotated[int, typer.Option(help="Channel width of the shadow models.")] = 16,
    n_train: Annotated[int, typer.Option(help="Training images per model.")] = 10000,
    epochs: Annotated[int, typer.Option(help="Training epochs per model.")] = 3,
    workers: Annotated[int | None, typer.Option(
        metavar="N", help="Models trained at once: processes here (default 1, one thread each), or Ray shards with "
        "--executor ray (default: the cluster's CPUs).")] = None,
    executor: Annotated[str, typer.Option(metavar="local|ray", help=EXECUTOR_HELP)] = "local",
    seed: Annotated[int, typer.Option(help="Seeds the attack draws and the training.")] = 0,
    root: Annotated[Path | None, typer.Option(help="Folder of zoos (default: the cache folder's backdoor_zoo).")] = None,
    address: Annotated[str | None, typer.Option(metavar="auto|HOST:PORT", help=ADDRESS_HELP)] = None,
) -> None:
    """Train (or resume) a shadow-model zoo, cached under the cache folder with a manifest."""
    from mlsafety.monitoring.backdoor.zoo import DATASETS, Zoo, ZooConfig
    from mlsafety.registry import ARCHITECTURES

    for name, value, low in (("--n-clean", n_clean, 0), ("--n-backdoored", n_backdoored, 0), ("--width", width, 1),
                             ("--n-train", n_train, 1), ("--epochs", epochs, 1), ("--workers", 1 if workers is None else workers, 1)):
        if value < low:
            raise fail(f"{name} must be an integer >= {low}; got {value}.")
    if n_clean + n_backdoored == 0:
        raise fail("--n-clean and --n-backdoored are both 0; ask for at least one model.")
    if data not in DATASETS:
        raise fail(f"--data must be one of {', '.join(DATASETS)}; got {data!r}.")
    if architecture not in ARCHITECTURES.names():
        raise fail(f"--architecture must be one of {', '.join(sorted(ARCHITECTURES.names()))}; got {architecture!r}.")
    if not 0 <= seed < 2**31:
        raise fail(f"--seed must be in 0..{2**31 - 1}; got {seed}.")
    if root is not None and root.exists() and not root.is_dir():
        raise fail(f"--root {root} is a file; pass a folder.")
    config = ZooConfig(architecture=architecture, data=data, width=width, n_train=n_train, epochs=epochs, seed=seed)
    zoo = Zoo(config, root)

    def report(row: dict) -> None:
        asr = "" if row["attack_success_rate"] is None else f", ASR {row['attack_success_rate']:.3f}"
        console.print(f"{row['name']}: C-Acc {row['clean_accuracy']:.3f}{asr} ({row['training_seconds']:.1f} s)",
                      markup=False)

    on_ray = executor.strip().lower() == "ray"
    runner = make_cli_executor(executor, address, workers if on_ray else None)
    with runner:
        manifest = zoo.build(n_clean, n_backdoored, n_workers=1 if on_ray else workers or 1, progress=report,
                             executor=runner)
    console.print(f"zoo {config.identity}: {len(zoo.rows('clean'))} clean, {len(zoo.rows('backdoored'))} backdoored "
                  f"models in {zoo.folder} (manifest: {zoo.manifest_path.name}, {len(manifest['models'])} rows)",
                  markup=False)
