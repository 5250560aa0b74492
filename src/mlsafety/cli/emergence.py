"""``mlsafety emergence``: detect, explain and forecast sudden jumps in capability curves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlsafety.cli._app import app
from mlsafety.cli._common import EXIT_FINDINGS, cli_errors, fail, print_verdict, print_written

emergence_app = typer.Typer(help="Emergent capabilities: jumps, metric re-scoring, forecasting surprise, testbeds.",
                            no_args_is_help=True)
testbed_app = typer.Typer(help="Train a testbed and analyse its curves: scaling (tiny GPT-2 family) or grokking.",
                          no_args_is_help=True)
emergence_app.add_typer(testbed_app, name="testbed")
app.add_typer(emergence_app, name="emergence")


def _rule(min_fraction: float, min_step_ratio: float, confidence: float, n_resamples: int, seed: int) -> Any:
    from mlsafety.monitoring.emergence.jump import FlagRule

    return FlagRule(min_fraction=min_fraction, min_step_ratio=min_step_ratio, confidence=confidence,
                    n_resamples=n_resamples, seed=seed)


def _print_paths(json_path: Path, html_path: Path) -> None:
    print_written("report", html_path)
    print_written("json", json_path)


def _print_sections(sections: list) -> None:
    for section in sections:
        print_verdict(section.verdict, section.name, section.summary)


@emergence_app.command("analyze")
@cli_errors
def analyze_command(
    runs: Annotated[Path, typer.Argument(help="Run table (CSV or JSON): scale, task, metric/value or "
                                              "example/output/target[/target_logprob/target_prob].")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("emergence-report"),
    min_fraction: Annotated[float, typer.Option(help="Flag rule: a jump covers at least this share of the range.")] = 0.25,
    min_step_ratio: Annotated[float, typer.Option(help="Flag rule: a jump is this many times the typical step.")] = 3.0,
    confidence: Annotated[float, typer.Option(help="Coverage of bootstrap and forecast intervals.")] = 0.95,
    n_resamples: Annotated[int, typer.Option(help="Bootstrap resamples over examples.")] = 1000,
    changepoints: Annotated[int, typer.Option(help="Changepoints placed per curve.")] = 1,
    method: Annotated[str, typer.Option(help="Changepoint search: dynp (exact least squares) or kernel (rbf).")] = "dynp",
    fit_points: Annotated[int | None, typer.Option(help="Points used by each forecast (default: those before the "
                                                        "jump, else all but the last).")] = None,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    fail_on_jump: Annotated[bool, typer.Option("--fail-on-jump", help="Exit 1 when a jump is flagged.")] = False,
) -> None:
    """Analyse a run table: flag jumps, re-score outputs, compare metrics and forecast; write HTML + JSON."""
    if method not in ("dynp", "kernel"):
        raise fail(f"--method must be dynp or kernel; got {method!r}.")
    if changepoints < 1:
        raise fail(f"--changepoints must be >= 1; got {changepoints}.")
    if fit_points is not None and fit_points < 3:
        raise fail(f"--fit-points must be >= 3 (2 to fit, 1 to choose the curve family); got {fit_points}.")
    rule = _rule(min_fraction, min_step_ratio, confidence, n_resamples, seed)
    from mlsafety.monitoring.emergence.analysis import analyze
    from mlsafety.monitoring.emergence.report import analysis_sections, write_report
    from mlsafety.monitoring.emergence.schema import load_runs

    table = load_runs(runs)
    analysis = analyze(table, rule, n_changepoints=changepoints, method=method, n_fit=fit_points)
    sections = analysis_sections(analysis, table.scale_name)
    paths = write_report(out, sections, {"command": "emergence analyze", "runs": str(runs)},
                         title=f"mlsafety emergent capabilities: {runs.name}")
    _print_sections(sections)
    _print_paths(*paths)
    if fail_on_jump and analysis.flagged:
        raise typer.Exit(EXIT_FINDINGS)


def _sizes(text: str) -> tuple[tuple[int, int, int], ...]:
    sizes = []
    for item in text.split(","):
        try:
            width, layers, heads = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise fail(f"--sizes takes WIDTHxLAYERSxHEADS items separated by commas (e.g. 16x1x2,32x2x2); "
                       f"got {item!r}.") from None
        if width < 1 or layers < 1 or heads < 1 or width % heads:
            raise fail(f"--sizes item {item!r}: width, layers and heads must be >= 1 and heads must divide width.")
        sizes.append((width, layers, heads))
    if len(sizes) < 3:
        raise fail(f"--sizes needs at least 3 model sizes to make a curve; got {len(sizes)}.")
    return tuple(sizes)


@testbed_app.command("scaling")
@cli_errors
def scaling_command(
    out: Annotated[Path, typer.Option(help="Output folder (report and runs.csv).")] = Path("emergence-scaling"),
    sizes: Annotated[str, typer.Option(help="Model sizes WIDTHxLAYERSxHEADS, comma-separated.")] =
        "16x1x2,24x1x2,32x1x2,32x2x2,48x2x2,64x3x4",
    tasks: Annotated[str, typer.Option(help="Comma-separated tasks: addition, reversal, modular.")] =
        "addition,reversal,modular",
    steps: Annotated[int, typer.Option(help="Training steps per model.")] = 2500,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 64,
    n_eval: Annotated[int, typer.Option(help="Evaluation examples per task.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Train a tiny GPT-2 family on algorithmic tasks and analyse the final checkpoints along model size."""
    family = _sizes(sizes)
    task_names = tuple(t.strip() for t in tasks.split(",") if t.strip())
    from mlsafety.monitoring.emergence.testbeds.scaling import TASKS

    unknown = [t for t in task_names if t not in TASKS]
    if unknown or not task_names:
        raise fail(f"--tasks must be a subset of {', '.join(TASKS)}; got {tasks!r}.")
    if steps < 1 or batch_size < 1 or n_eval < 2:
        raise fail("--steps and --batch-size must be >= 1 and --n-eval >= 2.")
    import csv

    import torch

    from mlsafety.monitoring.emergence.analysis import analyze
    from mlsafety.monitoring.emergence.report import analysis_sections, write_report
    from mlsafety.monitoring.emergence.schema import table_from_records
    from mlsafety.monitoring.emergence.testbeds.scaling import train_family

    torch.set_num_threads(1)
    result = train_family(family, tasks=task_names, n_steps=steps, batch_size=batch_size, n_eval=n_eval, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "runs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["model", "scale", "step", "task", "example", "output", "target",
                                         "target_logprob"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result.final_records())
    analysis = analyze(table_from_records(result.final_records()))
    sections = analysis_sections(analysis, "parameters")
    paths = write_report(out, sections, {"command": "emergence testbed scaling", "models": result.models,
                                         "cpu_seconds": result.seconds},
                         title="mlsafety emergent capabilities: tiny GPT-2 scaling testbed")
    _print_sections(sections)
    print_written("runs", out / "runs.csv")
    _print_paths(*paths)


@testbed_app.command("grokking")
@cli_errors
def grokking_command(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("emergence-grokking"),
    p: Annotated[int, typer.Option(help="Modulus (113 in Nanda et al.).")] = 113,
    epochs: Annotated[int, typer.Option(help="Full-batch training steps (about 15,000 to grok at p = 113).")] = 15000,
    train_fraction: Annotated[float, typer.Option(help="Share of all pairs used for training.")] = 0.3,
    eval_every: Annotated[int, typer.Option(help="Epochs between evaluations.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Grok modular addition; report the curves, Nanda et al.'s progress measures and the jump analysis."""
    if p < 5:
        raise fail(f"--p must be >= 5 (a prime such as 23, 59 or 113); got {p}.")
    if not 0 < train_fraction < 1:
        raise fail(f"--train-fraction must be in (0, 1); got {train_fraction}.")
    if epochs < 1 or eval_every < 1:
        raise fail("--epochs and --eval-every must be >= 1.")
    if epochs // eval_every < 3:
        raise fail(f"--epochs / --eval-every gives {epochs // eval_every + 1} evaluations; the analysis needs "
                   "at least 4 (lower --eval-every).")
    import torch

    from mlsafety.monitoring.emergence.analysis import analyze
    from mlsafety.monitoring.emergence.report import analysis_sections, grokking_section, write_report
    from mlsafety.monitoring.emergence.schema import Curve, RunTable
    from mlsafety.monitoring.emergence.testbeds.grokking import train_grokking

    torch.set_num_threads(1)
    result = train_grokking(p, n_epochs=epochs, train_fraction=train_fraction, eval_every=eval_every, seed=seed)
    table = RunTable(scale_name="epoch")
    # accuracy is the discontinuous metric; test loss and the restricted loss are the continuous checks
    table.add(Curve("modular_addition", "test_accuracy", result.epochs, result.curves["test_accuracy"],
                    continuous=False, bounds=(0.0, 1.0)))
    for name in ("test_loss", "restricted_loss"):
        table.add(Curve("modular_addition", name, result.epochs, result.curves[name], higher_is_better=False,
                        continuous=True, bounds=(0.0, None)))
    analysis = analyze(table)
    sections = [grokking_section(result), *analysis_sections(analysis, "epoch")]
    paths = write_report(out, sections, {"command": "emergence testbed grokking"},
                         title=f"mlsafety emergent capabilities: grokking (p = {p})")
    _print_sections(sections)
    _print_paths(*paths)
