"""``mlsafety proxy``: proxy-gaming sweeps, detection and reward-model overoptimisation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from mlsafety.cli._app import app
from mlsafety.cli._common import (
    ADDRESS_HELP,
    EXECUTOR_HELP,
    WORKERS_HELP,
    check_positive_option,
    check_seed,
    cli_errors,
    fail,
    holds_output_folder,
    make_cli_executor,
    print_verdict,
    print_written,
    split_names,
)

proxy_app = typer.Typer(help="Proxy gaming: optimisation-power sweeps, gamed-policy detection, overoptimisation.",
                        no_args_is_help=True)
app.add_typer(proxy_app, name="proxy")


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise fail(f"{option} takes comma-separated numbers (e.g. 1,2,4); got {text!r}.") from None


def _names(text: str, option: str) -> list[str]:
    return split_names(text, option) or []


def _print_paths(json_path: Path, html_path: Path) -> None:
    print_written("report", html_path)
    print_written("json", json_path)


QUICK_HELP = "Fewer seeds and resamples (seconds; indicative only)."


@proxy_app.command("sweep")
@cli_errors
@holds_output_folder
def sweep_command(
    env: Annotated[str, typer.Option(help="Environment: boat_race, tomato_watering, lagoon or pandemic.")] = "lagoon",
    knob: Annotated[str, typer.Option(help="Power knob: horizon, discount, boltzmann, q_learning, capacity, observation_noise.")] = "horizon",
    values: Annotated[str | None, typer.Option(help="Comma-separated power levels (default: the knob's grid).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Number of seeds (default 5; 2 with --quick).")] = None,
    proxy_noise: Annotated[float, typer.Option(help="Per-seed noise on the proxy, in units of its std.")] = 0.05,
    mitigations: Annotated[bool, typer.Option("--mitigations/--no-mitigations", help="Add KL/occupancy regularisation and early stopping.")] = True,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("proxy-sweep"),
    quick: Annotated[bool, typer.Option("--quick", help=QUICK_HELP)] = False,
    executor: Annotated[str, typer.Option(metavar="local|ray", help=EXECUTOR_HELP)] = "local",
    address: Annotated[str | None, typer.Option(metavar="auto|HOST:PORT", help=ADDRESS_HELP)] = None,
    workers: Annotated[int | None, typer.Option(metavar="N", help=WORKERS_HELP)] = None,
) -> None:
    """Sweep optimisation power on one environment; plot proxy and true return; flag a phase transition."""
    from mlsafety.alignment.proxy.report import mitigation_section, sweep_section, write_report
    from mlsafety.alignment.proxy.sweep import sweep

    seeds = seeds if seeds is not None else (2 if quick else 5)
    if seeds < 1:
        raise fail(f"--seeds must be >= 1; got {seeds}.")
    if not (math.isfinite(proxy_noise) and proxy_noise >= 0):
        raise fail(f"--proxy-noise must be a finite number >= 0; got {proxy_noise}.")
    runner = make_cli_executor(executor, address, workers)
    with runner:
        result = sweep(env, knob, values=_floats(values, "--values"), seeds=seeds, proxy_noise=proxy_noise,
                       executor=runner)
    sections = [sweep_section(result)]
    if mitigations:
        sections.append(mitigation_section(result))
    paths = write_report(out, sections, {"command": "proxy sweep", "environment": env, "knob": knob, "seeds": seeds,
                                         "quick": quick},
                         title=f"mlsafety proxy gaming: {env} / {knob}")
    for section in sections:
        print_verdict(section.verdict, section.name, section.summary)
    _print_paths(*paths)


@proxy_app.command("detect")
@cli_errors
@holds_output_folder
def detect_command(
    envs: Annotated[str, typer.Option(help="Comma-separated environments.")] = "boat_race,tomato_watering,lagoon,pandemic",
    knobs: Annotated[str, typer.Option(help="Comma-separated power knobs.")] = "horizon,discount,boltzmann,q_learning,capacity,observation_noise",
    seeds: Annotated[int | None, typer.Option(help="Seeds per sweep (default 5; 2 with --quick).")] = None,
    margin: Annotated[float, typer.Option(help="Gamed = true return below trusted - margin * |trusted - random|.")] = 0.2,
    n_resamples: Annotated[int | None, typer.Option(help="Bootstrap resamples for the AUROC intervals (default 500; 200 with --quick).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("proxy-detect"),
    quick: Annotated[bool, typer.Option("--quick", help=QUICK_HELP)] = False,
) -> None:
    """Score every swept policy against a trusted policy; report AUROC (bootstrap CI) and max-F1."""
    from mlsafety.alignment.proxy.detection import evaluate_detection
    from mlsafety.alignment.proxy.report import detection_section, sweep_section, write_report
    from mlsafety.alignment.proxy.sweep import get_knob, make_environment

    seeds = seeds if seeds is not None else (2 if quick else 5)
    n_resamples = n_resamples if n_resamples is not None else (200 if quick else 500)
    if seeds < 1:
        raise fail(f"--seeds must be >= 1; got {seeds}.")
    env_names, knob_names = _names(envs, "--envs"), _names(knobs, "--knobs")
    check_positive_option(n_resamples, "--n-resamples")
    if not (math.isfinite(margin) and margin >= 0):
        raise fail(f"--margin must be a finite number >= 0; got {margin}.")
    for name in env_names:
        make_environment(name)  # unknown names fail here with suggestions
    for name in knob_names:
        get_knob(name)
    result = evaluate_detection(env_names, knob_names, seeds=seeds, margin=margin, n_resamples=n_resamples)
    section = detection_section(result)
    sections = [section] + [sweep_section(s) for s in result.sweeps]
    paths = write_report(out, sections, {"command": "proxy detect", "seeds": seeds, "n_resamples": n_resamples,
                                         "quick": quick}, title="mlsafety proxy gaming: detection")
    print_verdict(section.verdict, section.name, section.summary)
    _print_paths(*paths)


@proxy_app.command("overoptimization")
@cli_errors
@holds_output_folder
def overoptimization_command(
    comparisons: Annotated[int, typer.Option(help="Gold-labelled comparisons for the proxy reward model.")] = 50,
    capacity: Annotated[int | None, typer.Option(help="Squared features the proxy may use (default: all).")] = None,
    label_noise: Annotated[float, typer.Option(help="Probability that a comparison label is flipped.")] = 0.1,
    ensemble: Annotated[int | None, typer.Option(help="Ensemble size for conservative reward models (0: none; default 5, 3 with --quick).")] = None,
    n_values: Annotated[str | None, typer.Option(help="Comma-separated best-of-n values (default 1..1000, 20 values).")] = None,
    sweep_seeds: Annotated[int | None, typer.Option(help="Seeds per point of the comparisons / capacity / noise sweeps (0: skip; default 3, 1 with --quick).")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("proxy-overoptimization"),
    quick: Annotated[bool, typer.Option("--quick", help=QUICK_HELP)] = False,
) -> None:
    """Best-of-n and softmax-policy overoptimisation of a Bradley-Terry proxy; fit Gao et al.'s forms."""
    from mlsafety.alignment.proxy.overoptimization import overoptimization_experiment, overoptimization_sweep
    from mlsafety.alignment.proxy.report import overoptimization_section, write_report

    ensemble = ensemble if ensemble is not None else (3 if quick else 5)
    sweep_seeds = sweep_seeds if sweep_seeds is not None else (1 if quick else 3)
    check_positive_option(comparisons, "--comparisons")
    if capacity is not None and capacity < 0:
        raise fail(f"--capacity must be >= 0; got {capacity}.")
    if not 0 <= label_noise < 0.5:
        raise fail(f"--label-noise must lie in [0, 0.5) (at 0.5 the labels carry no information); got {label_noise}.")
    if ensemble < 0 or sweep_seeds < 0:
        raise fail("--ensemble and --sweep-seeds must be >= 0.")
    check_seed(seed)
    settings: dict = {"capacity": capacity, "label_noise": label_noise}
    values = _floats(n_values, "--n-values")
    if values is not None:
        bad = [v for v in values if v < 1 or not float(v).is_integer()]
        if bad:
            raise fail(f"--n-values must be integers >= 1 (best-of-n needs at least one sample); got {bad[0]:g}.")
        settings["n_values"] = [int(v) for v in values]
    result = overoptimization_experiment(n_comparisons=comparisons, n_ensemble=ensemble, seed=seed, **settings)
    sweeps = {}
    if sweep_seeds > 0:
        sweeps["n_comparisons"] = overoptimization_sweep("n_comparisons", [30, 100, 300, 1000, 3000],
                                                         seeds=sweep_seeds, capacity=capacity, label_noise=label_noise)
        sweeps["capacity"] = overoptimization_sweep("capacity", [0, 5, 10, 20], seeds=sweep_seeds,
                                                    n_comparisons=comparisons, label_noise=label_noise)
        sweeps["label_noise"] = overoptimization_sweep("label_noise", [0.0, 0.1, 0.2, 0.3], seeds=sweep_seeds,
                                                       n_comparisons=comparisons, capacity=capacity)
    section = overoptimization_section(result, sweeps)
    paths = write_report(out, [section], {"command": "proxy overoptimization", "ensemble": ensemble,
                                          "sweep_seeds": sweep_seeds, "quick": quick},
                         title="mlsafety proxy gaming: reward-model overoptimisation")
    print_verdict(section.verdict, section.name, section.summary)
    _print_paths(*paths)
