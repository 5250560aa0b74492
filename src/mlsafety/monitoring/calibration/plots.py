"""Reliability diagrams with gap bars and a confidence histogram (Guo et al., 2017, fig. 1).

Figures are built with ``matplotlib.figure.Figure`` (never pyplot), so they are safe in
threads and servers; embed them with :meth:`mlsafety.report.Figure.from_matplotlib`
or save them with ``figure.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mlsafety.exceptions import InvalidInputError
from mlsafety.metrics.calibration import ReliabilityBins, Strategy, calibration_bins, to_probabilities


def _draw(top: Axes, bottom: Axes, bins: ReliabilityBins, name: str) -> None:
    left = bins.edges[:-1]
    width = np.diff(bins.edges)
    filled = bins.counts > 0
    accuracy = np.nan_to_num(bins.accuracy)
    confidence = np.where(filled, bins.confidence, (bins.edges[:-1] + bins.edges[1:]) / 2)
    weights = bins.weights
    ece = float((weights * bins.gaps).sum())
    top.bar(left[filled], accuracy[filled], width=width[filled], align="edge", color="#3b75af",
            edgecolor="#1f3f63", linewidth=0.6, label="accuracy")
    # a gap bar spans accuracy..confidence: above the blue bar = over-confident, inside = under-confident
    top.bar(left[filled], (confidence - accuracy)[filled], bottom=accuracy[filled], width=width[filled],
            align="edge", color="#d62728", alpha=0.35, edgecolor="#d62728", hatch="//", linewidth=0.6,
            label="gap to confidence")
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"{name}\nECE = {ece:.2%}", fontsize=10)
    top.legend(loc="upper left", fontsize=7)
    top.tick_params(labelbottom=False)
    bottom.bar(left, weights, width=width, align="edge", color="#7f7f7f", edgecolor="#404040", linewidth=0.6)
    n = max(int(bins.counts.sum()), 1)
    mean_accuracy = float(np.nansum(bins.accuracy * bins.counts) / n)
    mean_confidence = float(np.nansum(bins.confidence * bins.counts) / n)
    bottom.axvline(mean_accuracy, color="#3b75af", linestyle="--", linewidth=1.2,
                   label=f"accuracy {mean_accuracy:.1%}")
    bottom.axvline(mean_confidence, color="#d62728", linestyle=":", linewidth=1.5,
                   label=f"mean confidence {mean_confidence:.1%}")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence (top-label probability)")
    bottom.set_ylabel("fraction of samples")
    bottom.legend(loc="upper left", fontsize=7)


def reliability_diagram(scores: Any, labels: Any, *, n_bins: int = 15, from_logits: bool = True,
                        strategy: Strategy = "uniform", title: str = "Reliability diagram") -> Figure:
    """A reliability diagram with gap bars above a confidence histogram.

    Guo, Pleiss, Sun & Weinberger (2017), "On calibration of modern neural networks",
    figure 1: per confidence bin, the blue bar is the accuracy and the red hatched bar spans
    from the accuracy to the mean confidence (the bin's calibration gap); the diagonal is
    perfect calibration. Below, the share of samples per bin, with the overall accuracy and
    mean confidence marked.

    Parameters
    ----------
    scores : Tensor (N, K)
        Logits (default) or probabilities with ``from_logits=False``.
    labels : Tensor (N,)
    n_bins : int
    from_logits : bool
    strategy : {"uniform", "quantile"}
        Equal-width or equal-mass bins.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    return compare_reliability({title: scores}, labels, n_bins=n_bins, from_logits=from_logits,
                               strategy=strategy)


def compare_reliability(scores: Mapping[str, Any], labels: Any, *, n_bins: int = 15,
                        from_logits: bool | Mapping[str, bool] = True,
                        strategy: Strategy = "uniform") -> Figure:
    """Reliability diagrams side by side, one column per entry of ``scores`` (e.g. before and
    after recalibration). ``from_logits`` may be one flag or one per entry."""
    if not scores:
        raise InvalidInputError("`scores` must name at least one set of logits or probabilities to plot.")
    figure = Figure(figsize=(4.2 * len(scores), 5.6), layout="constrained")
    grid = figure.add_gridspec(2, len(scores), height_ratios=[3, 1.3])
    for column, (name, values) in enumerate(scores.items()):
        flag = from_logits[name] if isinstance(from_logits, Mapping) else from_logits
        probabilities = to_probabilities(values, from_logits=flag)
        bins = calibration_bins(probabilities, labels, n_bins=n_bins, strategy=strategy, from_logits=False)
        top = figure.add_subplot(grid[0, column])
        bottom = figure.add_subplot(grid[1, column], sharex=top)
        _draw(top, bottom, bins, name)
    return figure
