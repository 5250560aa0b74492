"""``mlsafety audit``: run the safety checks on a model and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlsafety.cli._app import app
from mlsafety.cli._common import (
    ADDRESS_HELP,
    EXECUTOR_HELP,
    EXIT_FINDINGS,
    WORKERS_HELP,
    check_device,
    check_out_dir,
    check_seed,
    cli_errors,
    err_console,
    fail,
    make_cli_executor,
    parse_thresholds,
    print_verdict,
    print_written,
    split_names,
)

if TYPE_CHECKING:  # the heavy imports wait until a command runs, so --help starts fast
    from mlsafety.audit.base import AuditContext

GATE_VERDICTS = ("fail", "warn")


def build_context(
    model: str | None, data: str | None, validation: str | None, ood: list[str] | None,
    architecture: str | None, device: str | None, quick: bool, seed: int,
    normalization: str | None = None,
) -> AuditContext:
    """Load the model and data named on the command line (defaults when absent)."""
    from mlsafety.audit.base import AuditContext
    from mlsafety.data import default_splits, load_dataset
    from mlsafety.models import load_classifier, load_default_classifier

    if model is None:
        if architecture is not None or normalization is not None:
            raise fail("--architecture and --normalization describe a --model file; give --model too.")
        classifier = load_default_classifier(device=device)
    else:
        classifier = load_classifier(model, architecture=architecture, normalization=normalization, device=device)
    splits = default_splits() if data is None or validation is None else {}
    evaluation = splits["test"] if data is None else load_dataset(data)
    if validation is not None:
        held_out = load_dataset(validation)
    elif data is None:
        held_out = splits["validation"]
    else:
        # no validation set given: split one off the evaluation data, disjoint from what is scored
        held_out, evaluation = evaluation.split([0.3, 0.7], seed=seed)
    ood_sets = {}
    for item in ood or []:
        name, sep, path = item.partition("=")
        if sep and (not name.strip() or not path.strip()):
            raise fail(f"--ood takes NAME=PATH or PATH; got {item!r}.")
        ood_sets[name if sep else Path(item).stem] = load_dataset(path if sep else item)
    return AuditContext(
        classifier=classifier, data=evaluation, validation=held_out,
        train=splits["train"] if data is None else None, ood=ood_sets,
        quick=quick, seed=seed, is_default=model is None and data is None,
    )


@app.command()
@cli_errors
def audit(
    model: Annotated[str | None, typer.Option(metavar="FILE|MODULE:FN", help="Model: file (.safetensors, .pt, TorchScript) or module:function. Default: the embedded Fashion-MNIST model.")] = None,
    data: Annotated[str | None, typer.Option(metavar="DATA", help="Evaluation data: fashion-mnist, digits, .npz, CIFAR-10 folder or image folder.")] = None,
    validation: Annotated[str | None, typer.Option(metavar="DATA", help="Held-out data for tuning (default: split from --data).")] = None,
    ood: Annotated[list[str] | None, typer.Option(metavar="NAME=PATH", help="Out-of-distribution set NAME=PATH (repeatable).")] = None,
    architecture: Annotated[str | None, typer.Option(metavar="NAME", help="Architecture for weight-only checkpoints.")] = None,
    normalization: Annotated[str | None, typer.Option(metavar="SPEC", help="Input normalisation for weight-only checkpoints: MEAN,...,STD,... per channel, a preset (fashion-mnist, mnist, cifar10, imagenet) or none.")] = None,
    checks: Annotated[str | None, typer.Option(metavar="NAME,...", help="Comma-separated checks (default: all).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("mlsafety-report"),
    quick: Annotated[bool, typer.Option("--quick", help="Subsets and fewer steps (see the README for measured times).")] = False,
    device: Annotated[str | None, typer.Option(metavar="cpu|cuda", help="cpu or cuda.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
    fail_under: Annotated[list[str] | None, typer.Option(metavar="METRIC=VALUE", help="Exit 1 if METRIC < VALUE (repeatable), e.g. accuracy=0.9.")] = None,
    fail_over: Annotated[list[str] | None, typer.Option(metavar="METRIC=VALUE", help="Exit 1 if METRIC > VALUE (repeatable), e.g. calibration.ece=0.05.")] = None,
    fail_on: Annotated[str | None, typer.Option(metavar="fail|warn", help="Exit 1 if any check's verdict is this or worse (warn: warn, fail or error).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Recompute every check instead of resuming.")] = False,
    executor: Annotated[str, typer.Option(metavar="local|ray", help=EXECUTOR_HELP)] = "local",
    address: Annotated[str | None, typer.Option(metavar="auto|HOST:PORT", help=ADDRESS_HELP)] = None,
    workers: Annotated[int | None, typer.Option(metavar="N", help=WORKERS_HELP)] = None,
) -> None:
    """Run the safety checks on a classifier and write report.html + report.json.

    Exit codes: 0 done (whatever the verdicts, unless a gate is set); 1 a --fail-under,
    --fail-over or --fail-on gate tripped, or a check failed to run; 2 bad input or option.
    With --executor ray the checks run as shards on a Ray cluster, with the same metrics.
    """
    from mlsafety._io import locked_output_dir
    from mlsafety.audit.runner import available_checks, run_audit, validate_threshold_names
    from mlsafety.models.normalization import parse_normalization

    if fail_on is not None and fail_on.strip().lower() not in GATE_VERDICTS:
        raise fail(f"--fail-on must be fail or warn; got {fail_on!r}.")
    gate = fail_on.strip().lower() if fail_on is not None else None
    under = parse_thresholds(fail_under, "--fail-under")
    over = parse_thresholds(fail_over, "--fail-over")
    names = split_names(checks, "--checks")
    known = available_checks()
    for name in names or []:
        if name not in known:
            raise fail(f"unknown check {name!r}; available: {', '.join(known)}.")
    validate_threshold_names([*under, *over], names)
    check_seed(seed)
    device = check_device(device)
    if normalization is not None:
        parse_normalization(normalization)
    runner = make_cli_executor(executor, address, workers, device)
    check_out_dir(out)
    with locked_output_dir(out, command="mlsafety audit"), runner:
        context = build_context(model, data, validation, ood, architecture, device, quick, seed, normalization)
        report = run_audit(context, out, names, resume=not fresh, extra_metadata=_model_provenance(model),
                           executor=runner)
    for warning in report.metadata.get("warnings", []):
        err_console.print(f"warning: {warning}", markup=False)
    for result in report.results:
        print_verdict(result.verdict, result.name, result.summary)
    print_written("report", report.html_path)
    print_written("json", report.json_path)
    errors = [r.name for r in report.results if r.verdict == "error"]
    broken = report.violations(under, over)
    for line in broken:
        err_console.print(f"threshold violated: {line}", markup=False)
    if errors:
        err_console.print(f"checks failed to run: {', '.join(errors)} (see the report)", markup=False)
    gated = report.verdicts_at_or_above(gate) if gate else []
    if gated:
        err_console.print(f"--fail-on {gate}: {', '.join(gated)}", markup=False)
    if broken or errors or gated:
        raise typer.Exit(EXIT_FINDINGS)


def _model_provenance(model: str | None) -> dict[str, Any]:
    """The model file and its SHA-256 for the report header (the embedded checkpoint by default)."""
    from mlsafety.models.default import default_checkpoint
    from mlsafety.report import file_sha256

    path = Path(model) if model is not None and Path(model).is_file() else None
    if model is None:
        path = Path(default_checkpoint())
    if path is None or not path.is_file():
        return {"provenance": {"model source": model}} if model else {}
    return {"provenance": {"model file": str(path), "model file sha256": file_sha256(path)}}
