"""Calibrated model-level backdoor decisions: empirical p-values against clean shadow models.

A model-level statistic ``s`` (Neural Cleanse's anomaly index, a meta-detector's score;
higher = more suspicious) is only interpretable against its distribution over models
known to be clean. With ``n`` clean shadow models of the same architecture and data
(:mod:`mlsafety.monitoring.backdoor.zoo`) giving ``s_1..s_n``, the empirical p-value is

    p(s) = (1 + #{i : s_i >= s}) / (n + 1),

which is exactly valid (``P(p <= a) <= a`` for a clean model exchangeable with the shadows;
e.g. Davison & Hinkley 1997, *Bootstrap Methods and their Application*, eq. 4.11). Several
statistics are combined by the largest robustly standardised statistic (median / MAD of the
pool of clean shadows plus the model under test), ranked within that pool, so the combined
decision keeps its level without a Bonferroni factor (:func:`combined_p_values`). The
false-positive rate of the threshold is *measured* on the clean shadows (each tested against
the others), not assumed.

A statistic can also be a vector with one value per class (the reversed-trigger norms of
Neural Cleanse, the reachability of each class by a universal perturbation). Shadow models
share the data, so they share its naturally easy classes (Fashion-MNIST's Shirt and Bag): a
class is then compared with *the same class* of the other models
(:func:`class_conditional_scores`), and the model's score is its most deviant class. Scores
are computed within the pool {shadows + model under test} by one symmetric rule, so the pool
stays exchangeable for a clean model and the rank p-value keeps its level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsafety._validation import check_fraction
from mlsafety.exceptions import InvalidInputError


def empirical_p_value(statistic: float, null: Sequence[float] | np.ndarray) -> float:
    """``(1 + #{null >= statistic}) / (len(null) + 1)``; higher statistics are more suspicious."""
    values = np.asarray(null, dtype=float)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise InvalidInputError("the null statistics must be a non-empty 1-D list of finite numbers "
                                "(one per clean shadow model); build a zoo first.")
    return float((1 + np.sum(values >= statistic)) / (values.size + 1))


def combined_p_values(table: np.ndarray) -> np.ndarray:
    """Rank p-value of each model's largest standardised statistic within the pool, (S, m) -> (m,).

    Each statistic is standardised by the pool's median and scaled MAD (the same for every
    member, so the pool stays exchangeable); a model's combined statistic is its largest
    standardised value, and its p-value the share of the pool at least as large. For a model
    exchangeable with the others it is (super-)uniform on {1/m, ..., 1}, whatever the
    dependence between the statistics, and unlike ranks it keeps how far beyond the clean
    models a statistic lies.
    """
    median = np.median(table, axis=1, keepdims=True)
    scale = 1.4826 * np.median(np.abs(table - median), axis=1, keepdims=True)
    scale = np.where(scale > 0, scale, np.std(table, axis=1, keepdims=True) + 1e-12)
    largest = ((table - median) / scale).max(axis=0)
    return np.array([np.mean(largest >= value) for value in largest])


def class_conditional_scores(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each model's most deviant class against the same class of the other models, (m, K) -> (m,), (m,).

    ``z_ik = (v_ik - median_{j != i} v_jk) / (1.4826 * MAD_{j != i} v_jk)``; returns
    ``max_k z_ik`` (higher = class ``k`` of model ``i`` is more extreme than in any clean model)
    and the arg-max class. A class whose MAD is 0 falls back to the standard deviation.
    """
    values = np.asarray(vectors, dtype=float)
    if values.ndim != 2 or values.shape[0] < 3 or not np.isfinite(values).all():
        raise InvalidInputError(f"class-conditional scores need a finite (models >= 3, classes) table; got shape "
                                f"{values.shape}.")
    m = values.shape[0]
    # row i of `others` holds every model but i: (m, m - 1, K)
    others = values[np.array([[j for j in range(m) if j != i] for i in range(m)])]
    median = np.median(others, axis=1)
    scale = 1.4826 * np.median(np.abs(others - median[:, None]), axis=1)
    scale = np.where(scale > 0, scale, others.std(axis=1) + 1e-12)
    z = (values - median) / scale
    classes = z.argmax(axis=1)
    return z[np.arange(m), classes], classes


def leave_one_out_p_values(null: Sequence[float] | np.ndarray) -> np.ndarray:
    """The p-value of each clean shadow against the others."""
    values = np.asarray(null, dtype=float)
    return np.array([empirical_p_value(values[i], np.delete(values, i)) for i in range(values.size)])


@dataclass
class CalibratedDecision:
    """The verdict on one model from several calibrated statistics.

    Attributes
    ----------
    statistics : ``{name: value}`` of the model under test.
    p_values : ``{name: p}`` against the clean shadows.
    combined_p_value : rank p-value of the largest standardised statistic (:func:`combined_p_values`).
    classes : ``{name: class}`` for per-class statistics, the model's most deviant class.
    alpha : the threshold on ``combined_p_value``.
    is_backdoored : ``combined_p_value <= alpha``.
    measured_fpr : share of clean shadows the same rule flags, each tested against the others.
    n_clean : number of clean shadows; ``zoo`` : the zoo's identity.
    """

    statistics: dict[str, float]
    p_values: dict[str, float]
    combined_p_value: float
    alpha: float
    is_backdoored: bool
    measured_fpr: float
    n_clean: int
    zoo: str
    notes: list[str] = field(default_factory=list)
    classes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"statistics": self.statistics, "p_values": self.p_values, "classes": self.classes,
                "combined_p_value": self.combined_p_value,
                "alpha": self.alpha, "is_backdoored": self.is_backdoored, "measured_fpr": self.measured_fpr,
                "n_clean_shadows": self.n_clean, "zoo": self.zoo}


def calibrated_decision(statistics: Mapping[str, Any], null: Mapping[str, Any], alpha: float = 0.05,
                        zoo: str = "") -> CalibratedDecision:
    """Combine model-level statistics into one calibrated verdict.

    Parameters
    ----------
    statistics : ``{name: value}`` for the model under test (higher = more suspicious); a value
        is a number, or a vector with one entry per class (scored by
        :func:`class_conditional_scores` within the pool of shadows and this model).
    null : ``{name: values on the clean shadows}``, the same shadows in the same order for
        every name: a list of numbers, or an (n, K) table for a per-class statistic.
    alpha : float in (0, 1)
        Target false-positive rate.
    zoo : identity of the zoo the shadows came from (reported).

    Returns
    -------
    CalibratedDecision
    """
    check_fraction(alpha, "alpha", "calibrated_decision")
    names = [name for name in statistics if name in null]
    if not names:
        raise InvalidInputError("no statistic has clean-shadow values to calibrate against; build a zoo first.")
    n = len(null[names[0]])
    if n < 2 or any(len(null[name]) != n for name in names):
        raise InvalidInputError(f"the clean-shadow statistics need the same number (>= 2) of models; got "
                                f"{[len(null[name]) for name in names]}.")
    pool_rows, shadow_rows, classes = [], [], {}
    for name in names:
        observed = np.asarray(statistics[name], dtype=float)
        if observed.ndim == 0:
            values = np.asarray(null[name], dtype=float)
            pool_rows.append(np.append(values, float(observed)))
            shadow_rows.append(values)
            continue
        table = np.asarray(null[name], dtype=float)
        if table.ndim != 2 or table.shape[1] != observed.size:
            raise InvalidInputError(f"the clean-shadow values of {name!r} must be an (n, {observed.size}) table; got "
                                    f"shape {table.shape}.")
        scores, arg = class_conditional_scores(np.vstack([table, observed[None]]))
        pool_rows.append(scores)
        classes[name] = int(arg[-1])
        shadow_rows.append(class_conditional_scores(table)[0])
    pool = np.array(pool_rows)  # (S, n + 1), the model under test last
    p_values = {name: empirical_p_value(float(pool[k, -1]), pool[k, :-1]) for k, name in enumerate(names)}
    # the combined statistic is ranked within the pool {shadows + this model}, which is exchangeable
    # for a clean model, so the rule keeps its level whatever the dependence between statistics
    combined = float(combined_p_values(pool)[-1])
    # measured FPR: the same rule applied to each clean shadow within the pool of shadows
    measured_fpr = float(np.mean(combined_p_values(np.array(shadow_rows)) <= alpha))
    notes = []
    if 1 / (n + 1) > alpha:
        notes.append(f"only {n} clean shadows: the smallest possible p-value, 1/{n + 1}, is above alpha={alpha:g}, so "
                     f"no model can be flagged; build at least {int(np.ceil(1 / alpha))} clean shadow models.")
    return CalibratedDecision(statistics={name: float(pool[k, -1]) for k, name in enumerate(names)},
                              p_values=p_values, combined_p_value=combined, alpha=float(alpha),
                              is_backdoored=combined <= alpha, measured_fpr=measured_fpr, n_clean=n, zoo=zoo,
                              notes=notes, classes=classes)
