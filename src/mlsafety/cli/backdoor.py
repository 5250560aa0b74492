"""``mlsafety backdoor scan``: does a model carry a backdoor? Neural Cleanse + STRIP, with a report."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from mlsafety.audit.checks.backdoor import BackdoorCheck
from mlsafety.audit.preflight import preflight
from mlsafety.audit.report import render_report
from mlsafety.cli._app import app
from mlsafety.cli._common import (
    EXIT_FINDINGS,
    check_device,
    check_seed,
    cli_errors,
    console,
    err_console,
    fail,
    holds_output_folder,
)
from mlsafety.models.normalization import parse_normalization

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
    steps: Annotated[int | None, typer.Option(help="Neural Cleanse optimisation steps (default 120; 25 with --quick).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Few steps and small subsets (seconds, indicative only).")] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
) -> None:
    """Reverse-engineer a trigger per class (Neural Cleanse), print the verdict, write the report.

    Exit code 1 when a backdoor is suspected, 0 otherwise, 2 on bad input.
    """
    from mlsafety.cli.audit import build_context

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
    verdict = "BACKDOOR SUSPECTED" if result.metrics["is_backdoored"] else "no backdoor found"
    console.print(f"{verdict}: {result.summary}", markup=False)
    console.print(f"report: {html_path.resolve()}", markup=False)
    console.print(f"json:   {json_path.resolve()}", markup=False)
    if result.metrics["is_backdoored"]:
        raise typer.Exit(EXIT_FINDINGS)
