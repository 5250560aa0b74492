"""Report sections for proxy gaming, rendered with the shared HTML + JSON renderer.

Each builder turns one experiment into a :class:`~mlsafety.report.CheckResult`
(metrics, tables, figures, a verdict); :func:`write_report` renders a list of them with
:func:`mlsafety.report.render_report`. Figures use ``matplotlib.figure.Figure``
(never pyplot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure as MatplotlibFigure

from mlsafety.alignment.proxy.detection import DetectionResult, trusted_policy
from mlsafety.alignment.proxy.detector import PolicyDivergenceDetector
from mlsafety.alignment.proxy.mitigations import early_stop, regularization_curve, regularized_sweep
from mlsafety.alignment.proxy.overoptimization import OveroptimizationResult
from mlsafety.alignment.proxy.planning import _as_mdp, evaluate_policy
from mlsafety.alignment.proxy.sweep import SweepResult, make_environment
from mlsafety.report import CheckResult, Figure, Table, render_report

HAZARD = "Alignment: proxy gaming"


def _power_axis(axes: Any, result: SweepResult) -> np.ndarray:
    positions = np.arange(result.values.size)
    axes.set_xticks(positions, [f"{v:g}" for v in result.values], rotation=45, fontsize=7)
    arrow = "" if result.settings.get("power_increases_with_value", True) else " (decreasing: more power)"
    axes.set_xlabel(f"{result.knob}{arrow}")
    return positions


def plot_sweep(result: SweepResult) -> MatplotlibFigure:
    """Proxy and true return against power: one thin line per seed, the mean in bold."""
    figure = MatplotlibFigure(figsize=(9.5, 3.6))
    for column, (label, returns, colour) in enumerate(
            (("proxy return", result.proxy_returns, "tab:blue"), ("true return", result.true_returns, "tab:red"))):
        axes = figure.add_subplot(1, 2, column + 1)
        positions = _power_axis(axes, result)
        for row in returns:
            axes.plot(positions, row, color=colour, alpha=0.3, linewidth=0.9)
        axes.plot(positions, returns.mean(0), color=colour, linewidth=2.2, marker="o", markersize=3, label="mean")
        transition = result.transition
        if transition.flagged:
            axes.axvspan(transition.index, transition.index + 1, color="orange", alpha=0.25,
                         label="phase transition")
        axes.set_ylabel(label)
        axes.set_title(f"{result.environment}: {label}", fontsize=9)
        axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def sweep_section(result: SweepResult) -> CheckResult:
    """A report section for one optimisation-power sweep."""
    t = result.transition
    spread = "every seed agrees" if t.spread == 0 else f"{t.ratio:.3g}x the seed spread"
    if t.flagged:
        summary = (f"Phase transition: mean true return falls by {t.drop:.3g} between {result.knob} = "
                   f"{t.value_before:g} and {t.value_after:g} ({spread}, "
                   f"{t.fraction_of_range:.0%} of the curve's range).")
    else:
        summary = (f"No phase transition flagged; largest drop {t.drop:.3g} between {result.knob} = "
                   f"{t.value_before:g} and {t.value_after:g} ({spread}).")
    rows = []
    for k, value in enumerate(result.values):
        proxy, true = result.proxy_returns[:, k], result.true_returns[:, k]
        spread = (lambda x: float(x.std(ddof=1)) if x.size > 1 else 0.0)
        rows.append([float(value), float(proxy.mean()), spread(proxy), float(true.mean()), spread(true)])
    table = Table(f"Returns by {result.knob} ({len(result.seeds)} seeds)",
                  [result.knob, "proxy mean", "proxy std", "true mean", "true std"], rows)
    per_seed = Table("True return per seed", ["seed", *[f"{v:g}" for v in result.values]],
                     [[seed, *map(float, result.true_returns[i])] for i, seed in enumerate(result.seeds)])
    figure = Figure.from_matplotlib(plot_sweep(result), f"{result.environment}: proxy vs true return",
                                    "Thin lines: seeds; bold: mean; shaded: the flagged transition.")
    return CheckResult(
        name=f"sweep.{result.environment}.{result.knob}", title=f"Optimisation power: {result.environment} / "
        f"{result.knob}", verdict="warn" if t.flagged else "info", summary=summary, hazard=HAZARD,
        metrics={"transition_drop": t.drop, "transition_ratio": t.ratio, "transition_flagged": float(t.flagged),
                 "true_return_at_max_power": float(result.true_returns[:, -1].mean()),
                 "proxy_return_at_max_power": float(result.proxy_returns[:, -1].mean())},
        tables=[table, per_seed], figures=[figure], details=result.to_dict(), config=dict(result.settings),
    )


def detection_section(result: DetectionResult) -> CheckResult:
    """AUROC (bootstrap 95% interval) and max-F1 of each detector metric, with ROC curves."""
    figure = MatplotlibFigure(figsize=(9.5, 3.8))
    subsets = ["all"] + (["hard"] if any(r["hard"] for r in result.records) else [])
    for column, subset in enumerate(subsets):
        axes = figure.add_subplot(1, len(subsets), column + 1)
        labels, _ = result.arrays("jensen_shannon", subset)
        if 0 < labels.sum() < labels.size:
            for metric in ("jensen_shannon", "hellinger", "occupancy"):
                fpr, tpr = result.roc(metric, subset)
                axes.plot(fpr, tpr, label=metric)
        axes.plot([0, 1], [0, 1], color="grey", linestyle=":")
        axes.set_xlabel("false-positive rate")
        axes.set_ylabel("true-positive rate")
        axes.set_title(f"ROC, {subset} candidates ({labels.size}, {int(labels.sum())} gamed)", fontsize=9)
        axes.legend(fontsize=7)
    figure.tight_layout()
    columns = ["metric", "subset", "environment", "n", "n gamed", "AUROC", "95% low", "95% high", "max F1"]
    rows = [[r["metric"], r["subset"], r["group"], r["n"], r["n_gamed"], r["auroc"], r["auroc_low"],
             r["auroc_high"], r["max_f1"]] for r in result.summary]
    overall = {r["metric"]: r for r in result.summary if r["subset"] == "all" and r["group"] == "all"}
    best = max(overall.values(), key=lambda r: -1 if np.isnan(r["auroc"]) else r["auroc"])
    summary = (f"Over {best['n']} candidate policies ({best['n_gamed']} gamed), the best detector metric is "
               f"{best['metric']} with AUROC {best['auroc']:.3f} [{best['auroc_low']:.3f}, {best['auroc_high']:.3f}].")
    metrics = {f"auroc.{m}": r["auroc"] for m, r in overall.items()}
    metrics.update({f"max_f1.{m}": r["max_f1"] for m, r in overall.items()})
    for r in result.summary:
        if r["subset"] == "hard":
            metrics[f"auroc_hard.{r['metric']}"] = r["auroc"]
    return CheckResult(
        name="detection", title="Detecting gamed policies (Polynaut-style)", verdict="info", summary=summary,
        hazard=HAZARD, metrics=metrics, tables=[Table("Detector AUROC and max-F1", columns, rows)],
        figures=[Figure.from_matplotlib(figure, "ROC curves", "Gamed = true return below the trusted policy's by "
                                        "the margin; scores never see the true reward.")],
        notes=["Hard candidates: the two power levels on each side of every flagged phase transition."],
        details={"summary": result.summary, "settings": result.settings}, config=dict(result.settings),
    )


def plot_overoptimization(result: OveroptimizationResult) -> MatplotlibFigure:
    """Gold and proxy reward against d = sqrt(KL) for best-of-n and the softmax policy, with fits."""
    figure = MatplotlibFigure(figsize=(9.5, 3.8))
    for column, (name, d, gold, proxy, fit) in enumerate((
            ("best-of-n", result.bon_d, result.bon_gold, result.bon_proxy, result.bon_fit),
            ("softmax ('RL') policy", result.rl_d, result.rl_gold, result.rl_proxy, result.rl_fit))):
        axes = figure.add_subplot(1, 2, column + 1)
        grid = np.linspace(0, d.max(), 200)
        axes.plot(d, gold, "o", color="tab:red", markersize=3, label="gold")
        axes.plot(grid, fit(grid), color="tab:red", label=f"fit: alpha={fit.alpha:.2f}, beta={fit.beta:.2f}")
        axes.plot(d, proxy, "s", color="tab:blue", markersize=3, label="proxy")
        if column == 0:
            for label, curve in result.ensembles.items():
                if label != "single":
                    axes.plot(d, curve["gold"], linewidth=1, linestyle="--", label=f"gold, {label}")
        axes.set_xlabel("d = sqrt(KL) (nats^0.5)")
        axes.set_ylabel("reward relative to the initial policy")
        axes.set_title(name, fontsize=9)
        axes.legend(fontsize=6)
    figure.tight_layout()
    return figure


def overoptimization_section(result: OveroptimizationResult,
                             sweeps: dict[str, list[dict[str, Any]]] | None = None) -> CheckResult:
    """The overoptimisation curves, their fits, and (optionally) sweeps of the fitted beta."""
    peak = result.bon_peak_n
    falls = float(result.bon_gold.max() - result.bon_gold[-1])
    summary = (f"Best-of-n gold reward peaks at n = {peak} and then falls by {falls:.3g} by n = {result.bon_n[-1]} "
               f"while the proxy keeps rising; fits: best-of-n alpha {result.bon_fit.alpha:.3g}, beta "
               f"{result.bon_fit.beta:.3g}; RL alpha {result.rl_fit.alpha:.3g}, beta {result.rl_fit.beta:.3g}.")
    fits = Table("Functional-form fits (Gao et al. 2022)", ["optimiser", "form", "alpha", "beta", "R^2"], [
        ["best-of-n", "d (alpha - beta d)", result.bon_fit.alpha, result.bon_fit.beta, result.bon_fit.r_squared],
        ["softmax policy", "d (alpha - beta log d)", result.rl_fit.alpha, result.rl_fit.beta, result.rl_fit.r_squared],
    ])
    tables = [fits, Table("Best-of-n", ["n", "d", "gold", "proxy"],
                          [[int(n), float(d), float(g), float(p)] for n, d, g, p in
                           zip(result.bon_n, result.bon_d, result.bon_gold, result.bon_proxy)])]
    if result.ensembles:
        tables.append(Table("Best-of-n gold with conservative ensembles", ["scores", "peak gold", "gold at max n"],
                            [[name, max(c["gold"]), c["gold"][-1]] for name, c in result.ensembles.items()]))
    for parameter, rows in (sweeps or {}).items():
        tables.append(Table(f"Sweep over {parameter} (mean ± std over seeds)",
                            [parameter, "bon alpha", "bon beta", "bon beta std", "rl alpha", "rl beta",
                             "bon peak n", "peak gold", "gold at max n"],
                            [[r["value"], r["bon_alpha"], r["bon_beta"], r["bon_beta_std"], r["rl_alpha"],
                              r["rl_beta"], r["bon_peak_n"], r["bon_peak_gold"], r["bon_final_gold"]] for r in rows]))
    return CheckResult(
        name="overoptimization", title="Reward-model overoptimisation (Gao et al.)",
        verdict="warn" if falls > 0 else "info", summary=summary, hazard=HAZARD,
        metrics={"bon_alpha": result.bon_fit.alpha, "bon_beta": result.bon_fit.beta, "rl_alpha": result.rl_fit.alpha,
                 "rl_beta": result.rl_fit.beta, "bon_peak_n": float(peak), "bon_gold_drop_after_peak": falls},
        tables=tables, figures=[Figure.from_matplotlib(plot_overoptimization(result), "Gold and proxy vs sqrt(KL)")],
        details={"result": result.to_dict(), "sweeps": sweeps or {}}, config=dict(result.settings),
    )


def mitigation_section(result: SweepResult, strengths: list[float] | None = None,
                       early_stop_threshold: float = 0.1, sweep_strength: float = 0.3) -> CheckResult:
    """KL and occupancy regularisation toward the trusted policy, and detector early stopping, on one environment.

    Early stopping walks up the sweep and keeps the last level before the Jensen-Shannon score
    rises more than ``early_stop_threshold`` above the weakest optimiser's score. For horizon
    and discount sweeps the regularised optimisers (strength ``sweep_strength`` in units of the
    proxy's std) are also drawn on the same true-return curve.
    """
    env = make_environment(result.environment)
    mdp = _as_mdp(env)
    trusted = trusted_policy(mdp)
    strengths = strengths or [10.0, 3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003]
    curves = {method: regularization_curve(mdp, trusted, strengths, method) for method in ("kl", "occupancy")}
    detector = PolicyDivergenceDetector("jensen_shannon").fit(mdp, trusted)
    n_seeds, n_values = result.true_returns.shape
    flat = result.policies.reshape(-1, mdp.n_states, mdp.n_actions)
    scores = detector.score_policies(flat).reshape(n_seeds, n_values)
    # alarm on the rise above the weakest optimiser's score: near-ties between equivalent actions
    # give every deterministic policy a constant offset from a stochastic trusted policy
    chosen = early_stop(scores - scores[:, :1], early_stop_threshold)
    stopped_true = result.true_returns[np.arange(n_seeds), chosen]
    stopped_proxy = result.proxy_returns[np.arange(n_seeds), chosen]
    trusted_true = evaluate_policy(mdp, trusted, "true")
    figure = MatplotlibFigure(figsize=(9.5, 3.6))
    axes = figure.add_subplot(1, 2, 1)
    for method, curve in curves.items():
        power = 1 / np.asarray(curve["strength"])
        axes.plot(power, curve["true"], marker="o", markersize=3, label=f"{method}: true")
        axes.plot(power, curve["proxy"], marker="s", markersize=3, linestyle="--", label=f"{method}: proxy")
    axes.axhline(trusted_true, color="grey", linestyle=":", label="trusted: true")
    axes.set_xscale("log")
    axes.set_xlabel("1 / regularisation strength (more optimisation)")
    axes.set_ylabel("return")
    axes.set_title(f"{result.environment}: regularised toward the trusted policy", fontsize=9)
    axes.legend(fontsize=6)
    axes = figure.add_subplot(1, 2, 2)
    positions = _power_axis(axes, result)
    for row in result.true_returns:
        axes.plot(positions, row, color="tab:red", alpha=0.3, linewidth=0.9)
    axes.plot(positions, result.true_returns.mean(0), color="tab:red", linewidth=2, label="true return (mean)")
    axes.scatter(chosen, stopped_true, color="black", zorder=3, label="early-stopped (per seed)")
    same_curve = []
    methods = {"horizon": ("kl",), "discount": ("kl", "occupancy")}.get(result.knob, ())
    for method in methods:
        regularised = regularized_sweep(result, method, sweep_strength, trusted)
        same_curve.append(regularised)
        axes.plot(positions, regularised["true"].mean(0), linewidth=1.6, linestyle="--",
                  label=f"{method}-regularised (strength {sweep_strength:g}): true")
    axes.set_ylabel("true return")
    axes.set_title(f"early stopping when the JS score rises by > {early_stop_threshold:g}", fontsize=9)
    axes.legend(fontsize=6)
    figure.tight_layout()
    rows = [[method, s, p, t] for method, curve in curves.items()
            for s, p, t in zip(curve["strength"], curve["proxy"], curve["true"])]
    summary = (f"Early stopping by the detector keeps mean true return {stopped_true.mean():.3g} (proxy "
               f"{stopped_proxy.mean():.3g}) versus {result.true_returns[:, -1].mean():.3g} at full power; "
               f"strong KL / occupancy regularisation holds true return near the trusted {trusted_true:.3g}.")
    metrics = {"early_stop_true_return": float(stopped_true.mean()),
               "full_power_true_return": float(result.true_returns[:, -1].mean()),
               "trusted_true_return": trusted_true}
    tables = [Table("Regularised policies", ["method", "strength", "proxy return", "true return"], rows),
              Table("Early stopping", ["seed", f"chosen {result.knob}", "proxy return", "true return"],
                    [[int(s), float(result.values[c]), float(p), float(t)]
                     for s, c, p, t in zip(result.seeds, chosen, stopped_proxy, stopped_true)])]
    for regularised in same_curve:
        method = regularised["method"]
        metrics[f"{method}_regularised_true_return_at_max_power"] = float(regularised["true"][:, -1].mean())
        summary += (f" {method.upper()}-regularised at every {result.knob} (strength {sweep_strength:g}): true return "
                    f"{regularised['true'][:, -1].mean():.3g} at full power.")
        tables.append(Table(f"{method}-regularised sweep (mean over seeds)", [result.knob, "proxy", "true"],
                            [[float(v), float(p), float(t)] for v, p, t in
                             zip(result.values, regularised["proxy"].mean(0), regularised["true"].mean(0))]))
    return CheckResult(
        name=f"mitigations.{result.environment}", title=f"Mitigations: {result.environment}", verdict="info",
        summary=summary, hazard=HAZARD,
        metrics=metrics, tables=tables, figures=[Figure.from_matplotlib(figure, "Mitigations")],
        details={"curves": curves, "early_stop_index": chosen.tolist(),
                 "same_curve": [{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in r.items()}
                                for r in same_curve]},
    )


def write_report(out_dir: str | Path, sections: list[CheckResult], metadata: dict[str, Any] | None = None,
                 title: str = "mlsafety proxy gaming") -> tuple[Path, Path]:
    """Render ``sections`` to ``out_dir/report.json`` and ``out_dir/report.html``."""
    return render_report(out_dir, sections, dict(metadata or {}), title=title)
