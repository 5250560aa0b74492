"""Reward-model overoptimisation with a synthetic gold reward (Gao, Schulman & Hilton 2022).

Gao, Schulman & Hilton (2022), *Scaling Laws for Reward Model Overoptimization*: a proxy
reward model trained on comparisons labelled by a gold reward is optimised by best-of-n
sampling or RL; as the optimisation moves the policy away from the initial one
(``d = sqrt(KL(pi || pi_0))``) the gold reward first rises and then falls, while the proxy
keeps rising. They fit

* best-of-n: ``R_bon(d) = d (alpha - beta d)``;
* RL:        ``R_RL(d)  = d (alpha - beta log d)``,

with R the gold reward relative to the initial policy, and find that beta shrinks as the
reward model grows.

Here everything is exact and CPU-fast. Candidates ("responses") are feature vectors
``x ~ N(0, I_D)``; the initial policy is uniform over a pool of them. The gold reward is
``g(x) = w . x - curvature * |x|^2`` with ``w`` supported on ``n_relevant`` features
(too much of a good direction, and any extreme feature, is bad). The proxy is a
Bradley-Terry model (Bradley & Terry 1952) fitted on ``n_comparisons`` pairs labelled by the
gold reward through a logistic link with label flips (``label_noise``); its capacity is
the number of squared features it may use on top of the linear ones (0: linear,
``D``: well specified). Best-of-n uses the unbiased estimator of Nakano et al. (2021) /
Gao et al. over the pool, whose KL is ``log n - (n - 1) / n``; the "RL" policy is the
KL-regularised optimum ``pi_beta ∝ pi_0 exp(beta r_proxy)`` over the pool, whose KL and
gold reward are exact sums.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit, gammaln, logsumexp

from mlsafety._validation import check_fraction, check_is_fitted, check_positive
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError, ShapeError, parameter_error


class GoldReward(ParamsMixin):
    """The synthetic gold reward ``g(x) = w . x - curvature * |x|^2``.

    ``w`` has unit norm and is supported on the first ``n_relevant`` features (random
    positive weights drawn with ``seed``). Along ``w`` the gold reward peaks at
    ``|x| = 1 / (2 curvature)``.
    """

    def __init__(self, n_features: int = 20, n_relevant: int = 3, curvature: float = 0.25, seed: int = 0) -> None:
        self.n_features = n_features
        self.n_relevant = n_relevant
        self.curvature = curvature
        self.seed = seed
        check_positive(n_features, "n_features", "GoldReward", integer=True)
        check_positive(n_relevant, "n_relevant", "GoldReward", integer=True)
        if n_relevant > n_features:
            raise parameter_error("n_relevant", "GoldReward", f"<= n_features ({n_features})", n_relevant)
        check_positive(curvature, "curvature", "GoldReward", allow_zero=True)
        rng = np.random.default_rng(seed)
        weights = np.zeros(n_features)
        weights[:n_relevant] = rng.uniform(0.5, 1.5, n_relevant)
        self.weights_ = weights / np.linalg.norm(weights)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_features(x, self.n_features)
        return x @ self.weights_ - self.curvature * (x**2).sum(-1)


def _check_features(x: Any, n_features: int, name: str = "x") -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ShapeError(f"`{name}` must have shape (N, {n_features}); got {x.shape}.")
    if not np.isfinite(x).all():
        raise InvalidInputError(f"`{name}` contains NaN or infinite values.")
    return x


def sample_comparisons(gold: GoldReward, n_comparisons: int, label_noise: float = 0.1, temperature: float = 0.5,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of fresh candidates and gold-derived labels.

    ``P(first preferred) = sigmoid((g(a) - g(b)) / temperature)``, then each label is
    flipped with probability ``label_noise``.

    Returns
    -------
    (a, b, first_preferred) : (n, D), (n, D), (n,) bool
    """
    check_positive(n_comparisons, "n_comparisons", "sample_comparisons", integer=True)
    check_fraction(label_noise, "label_noise", "sample_comparisons", low_inclusive=True)
    check_positive(temperature, "temperature", "sample_comparisons")
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n_comparisons, gold.n_features))
    b = rng.standard_normal((n_comparisons, gold.n_features))
    preferred = rng.random(n_comparisons) < expit((gold(a) - gold(b)) / temperature)
    flip = rng.random(n_comparisons) < label_noise
    return a, b, preferred ^ flip


class BradleyTerryRewardModel(ParamsMixin):
    """A Bradley-Terry reward model ``r(x) = theta . phi(x)`` fitted by L2-penalised maximum likelihood.

    Bradley & Terry (1952): ``P(a preferred to b) = sigmoid(r(a) - r(b))``. Features
    ``phi(x) = [x, x_1^2, ..., x_c^2]`` with ``c = capacity`` (None: all D squares). The
    negative log-likelihood plus ``regularization / 2 * |theta|^2`` is minimised by Newton's
    method (convex, so it converges to the unique optimum; it matches scikit-learn's
    ``LogisticRegression(fit_intercept=False, C=1/regularization)`` on difference features).

    Parameters
    ----------
    capacity : int or None, default None
    regularization : float, default 1.0
    """

    def __init__(self, capacity: int | None = None, regularization: float = 1.0) -> None:
        self.capacity = capacity
        self.regularization = regularization

    def features(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        squares = x.shape[1] if self.capacity is None else min(self.capacity, x.shape[1])
        return np.concatenate([x, x[:, :squares] ** 2], axis=1)

    def fit(self, a: np.ndarray, b: np.ndarray, first_preferred: np.ndarray) -> BradleyTerryRewardModel:
        if self.capacity is not None:
            check_positive(self.capacity, "capacity", type(self).__name__, integer=True, allow_zero=True)
        check_positive(self.regularization, "regularization", type(self).__name__)
        a = np.asarray(a, dtype=float)
        b = _check_features(b, a.shape[1] if a.ndim == 2 else -1, "b")
        a = _check_features(a, b.shape[1], "a")
        labels = np.asarray(first_preferred).astype(float)
        if labels.shape != (a.shape[0],):
            raise ShapeError(f"`first_preferred` must have shape ({a.shape[0]},); got {labels.shape}.")
        z = self.features(a) - self.features(b)
        theta = np.zeros(z.shape[1])
        for _ in range(50):
            p = expit(z @ theta)
            gradient = z.T @ (p - labels) + self.regularization * theta
            hessian = (z * (p * (1 - p))[:, None]).T @ z + self.regularization * np.eye(z.shape[1])
            step = np.linalg.solve(hessian, gradient)
            theta -= step
            if np.abs(step).max() < 1e-10:
                break
        self.n_features_in_ = a.shape[1]
        self.coef_ = theta
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Proxy rewards r(x), shape (N,)."""
        check_is_fitted(self, "coef_")
        x = _check_features(x, self.n_features_in_)
        return self.features(x) @ self.coef_


def _check_n(n: Any, owner: str) -> int:
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise parameter_error("n", owner, "an integer >= 1", n, "Best-of-n needs at least one sample.")
    return int(n)


def best_of_n_kl(n: int) -> float:
    """Analytic KL of best-of-n from its base policy, ``log n - (n - 1) / n`` (Stiennon et al. 2020)."""
    n = _check_n(n, "best_of_n_kl")
    return float(np.log(n) - (n - 1) / n)


def best_of_n_weights(scores: np.ndarray, n: int, method: str = "unbiased") -> np.ndarray:
    """Probability that each pool element is the best-of-n pick, shape (N,).

    ``method="unbiased"``: the unbiased estimator of best-of-n under a continuous base
    policy from N >= n samples (n drawn without replacement): the element of ascending rank
    k is the maximum with probability ``C(k-1, n-1) / C(N, n)``.
    ``method="pool"``: exact best-of-n when the base policy *is* uniform over the pool
    (draws with replacement): ``(k/N)^n - ((k-1)/N)^n``.
    """
    n = _check_n(n, "best_of_n_weights")
    scores = np.asarray(scores, dtype=float)
    size = scores.shape[0]
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(size, dtype=float)
    ranks[order] = np.arange(1, size + 1)
    if method == "unbiased":
        if n > size:
            raise parameter_error("n", "best_of_n_weights", f"<= the pool size ({size}) for the unbiased estimator",
                                  n, "Use a larger pool or method='pool'.")
        log_weights = np.full(size, -np.inf)
        ok = ranks >= n
        k = ranks[ok]
        log_weights[ok] = (gammaln(k) - gammaln(n) - gammaln(k - n + 1)) - (
            gammaln(size + 1) - gammaln(n + 1) - gammaln(size - n + 1))
        weights = np.exp(log_weights)
    elif method == "pool":
        weights = (ranks / size) ** n - ((ranks - 1) / size) ** n
    else:
        raise parameter_error("method", "best_of_n_weights", "'unbiased' or 'pool'", method)
    return weights / weights.sum()


def best_of_n(scores: np.ndarray, values: np.ndarray, n: int, method: str = "unbiased") -> float:
    """Expected ``values`` of the candidate with the highest ``scores`` among n draws."""
    return float(best_of_n_weights(scores, n, method) @ np.asarray(values, dtype=float))


def softmax_policy(scores: np.ndarray, beta: float) -> tuple[np.ndarray, float]:
    """``pi_beta ∝ exp(beta * scores)`` over a uniform pool, and its exact KL from uniform (nats).

    This is the optimum of ``E_pi[r] - KL(pi || pi_0) / beta`` (the policy that KL-regularised
    RL converges to; Korbak, Perez & Buckley 2022).
    """
    check_positive(beta, "beta", "softmax_policy", allow_zero=True)
    logits = beta * np.asarray(scores, dtype=float)
    log_policy = logits - logsumexp(logits)
    policy = np.exp(log_policy)
    kl = float(policy @ (log_policy + np.log(len(policy))))
    return policy, max(kl, 0.0)


@dataclass
class FunctionalFit:
    """A least-squares fit of ``R(d) = alpha d - beta f(d)`` with its R^2."""

    form: str
    alpha: float
    beta: float
    r_squared: float

    def __call__(self, d: np.ndarray) -> np.ndarray:
        d = np.asarray(d, dtype=float)
        return d * (self.alpha - self.beta * _second_term(self.form, d))


def _second_term(form: str, d: np.ndarray) -> np.ndarray:
    if form == "bon":
        return d
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, np.log(np.where(d > 0, d, 1.0)), 0.0)


def fit_functional_form(d: np.ndarray, gold: np.ndarray, form: str = "bon") -> FunctionalFit:
    """Fit Gao et al.'s ``d (alpha - beta d)`` (``form="bon"``) or ``d (alpha - beta log d)`` (``"rl"``).

    Linear least squares in (alpha, beta) on points ``(d_i, gold_i)`` with gold measured
    relative to the initial policy.
    """
    if form not in ("bon", "rl"):
        raise parameter_error("form", "fit_functional_form", "'bon' or 'rl'", form)
    d, gold = np.asarray(d, dtype=float), np.asarray(gold, dtype=float)
    if d.shape != gold.shape or d.ndim != 1 or d.size < 2:
        raise ShapeError(f"`d` and `gold` must be 1-D of the same length >= 2; got {d.shape} and {gold.shape}.")
    design = np.stack([d, -d * _second_term(form, d)], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(design, gold, rcond=None)
    residual = gold - design @ np.array([alpha, beta])
    total = ((gold - gold.mean()) ** 2).sum()
    r_squared = float(1 - (residual**2).sum() / total) if total > 0 else float("nan")
    return FunctionalFit(form, float(alpha), float(beta), r_squared)


DEFAULT_N = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1000)
DEFAULT_BETAS = tuple(float(b) for b in np.geomspace(0.05, 40, 24))


@dataclass
class OveroptimizationResult:
    """Gold and proxy reward (relative to the initial policy) against d = sqrt(KL)."""

    settings: dict[str, Any]
    bon_n: np.ndarray
    bon_d: np.ndarray
    bon_gold: np.ndarray
    bon_proxy: np.ndarray
    rl_beta: np.ndarray
    rl_d: np.ndarray
    rl_gold: np.ndarray
    rl_proxy: np.ndarray
    bon_fit: FunctionalFit
    rl_fit: FunctionalFit
    ensembles: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def bon_peak_n(self) -> int:
        return int(self.bon_n[int(np.argmax(self.bon_gold))])

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": dict(self.settings), "bon_n": self.bon_n.tolist(), "bon_d": self.bon_d.tolist(),
            "bon_gold": self.bon_gold.tolist(), "bon_proxy": self.bon_proxy.tolist(),
            "rl_beta": self.rl_beta.tolist(), "rl_d": self.rl_d.tolist(), "rl_gold": self.rl_gold.tolist(),
            "rl_proxy": self.rl_proxy.tolist(), "bon_fit": self.bon_fit.__dict__, "rl_fit": self.rl_fit.__dict__,
            "bon_peak_n": self.bon_peak_n, "ensembles": self.ensembles,
        }


def _ensemble_scores(models: list[BradleyTerryRewardModel], pool: np.ndarray, uncertainty_weight: float
                     ) -> dict[str, np.ndarray]:
    """Conservative combinations of an ensemble (Coste, Anwar, Kirk & Krueger 2023)."""
    predictions = np.stack([m.predict(pool) for m in models])
    # put members on a common scale so that min/std compare like with like
    predictions = (predictions - predictions.mean(1, keepdims=True)) / predictions.std(1, keepdims=True)
    mean = predictions.mean(0)
    return {"ensemble_mean": mean, "ensemble_worst_case": predictions.min(0),
            "ensemble_uncertainty_weighted": mean - uncertainty_weight * predictions.std(0)}


def overoptimization_experiment(n_comparisons: int = 50, capacity: int | None = None, label_noise: float = 0.1,
                                n_features: int = 20, n_relevant: int = 3, curvature: float = 0.25,
                                n_pool: int = 4000, n_values: Sequence[int] = DEFAULT_N,
                                betas: Sequence[float] = DEFAULT_BETAS, regularization: float = 1.0,
                                n_ensemble: int = 0, uncertainty_weight: float = 1.0,
                                seed: int = 0) -> OveroptimizationResult:
    """Fit a proxy on gold-labelled comparisons, optimise it by best-of-n and by a softmax
    policy, and fit both functional forms.

    Parameters
    ----------
    n_comparisons : int
        Training comparisons for the proxy (more: a better proxy, smaller beta).
    capacity : int or None
        Squared features the proxy may use (None: all, well specified; 0: linear).
    label_noise : float in [0, 1)
        Probability that a comparison label is flipped.
    n_pool : int
        Size of the candidate pool (the initial policy is uniform over it).
    n_values : sequence of int
        Values of n for best-of-n (each must be in [1, n_pool]).
    betas : sequence of float
        Inverse temperatures of the softmax ("RL") policy.
    n_ensemble : int
        If > 0, also fit an ensemble of this many proxies on bootstrap resamples of the
        comparisons and report best-of-n gold for its mean, worst-case and
        uncertainty-weighted (mean - ``uncertainty_weight`` * std) scores.
    seed : int
        Seeds the gold reward's weights, the comparisons and the pool.
    """
    check_positive(n_pool, "n_pool", "overoptimization_experiment", integer=True)
    check_positive(n_ensemble, "n_ensemble", "overoptimization_experiment", integer=True, allow_zero=True)
    n_values = [_check_n(n, "overoptimization_experiment") for n in n_values]
    if max(n_values) > n_pool:
        raise parameter_error("n_values", "overoptimization_experiment", f"<= n_pool ({n_pool})", max(n_values))
    gold = GoldReward(n_features, n_relevant, curvature, seed=seed)
    a, b, preferred = sample_comparisons(gold, n_comparisons, label_noise, seed=seed + 1)
    model = BradleyTerryRewardModel(capacity, regularization).fit(a, b, preferred)
    rng = np.random.default_rng(seed + 2)
    pool = rng.standard_normal((n_pool, n_features))
    gold_pool = gold(pool)
    proxy_pool = model.predict(pool)
    gold_base, proxy_base = gold_pool.mean(), proxy_pool.mean()
    bon_gold, bon_proxy = [], []
    for n in n_values:
        weights = best_of_n_weights(proxy_pool, n)
        bon_gold.append(weights @ gold_pool - gold_base)
        bon_proxy.append(weights @ proxy_pool - proxy_base)
    bon_d = np.sqrt([best_of_n_kl(n) for n in n_values])
    rl_d, rl_gold, rl_proxy = [], [], []
    for beta in betas:
        policy, kl = softmax_policy(proxy_pool, beta)
        rl_d.append(np.sqrt(kl))
        rl_gold.append(policy @ gold_pool - gold_base)
        rl_proxy.append(policy @ proxy_pool - proxy_base)
    ensembles: dict[str, dict[str, list[float]]] = {}
    if n_ensemble:
        members = []
        for member in range(n_ensemble):
            index = np.random.default_rng(seed + 100 + member).integers(0, n_comparisons, n_comparisons)
            members.append(BradleyTerryRewardModel(capacity, regularization).fit(a[index], b[index], preferred[index]))
        combined = {"single": proxy_pool, **_ensemble_scores(members, pool, uncertainty_weight)}
        for name, scores in combined.items():
            ensembles[name] = {"gold": [float(best_of_n_weights(scores, n) @ gold_pool - gold_base)
                                        for n in n_values]}
    settings = {"n_comparisons": n_comparisons, "capacity": capacity, "label_noise": label_noise,
                "n_features": n_features, "n_relevant": n_relevant, "curvature": curvature, "n_pool": n_pool,
                "regularization": regularization, "n_ensemble": n_ensemble,
                "uncertainty_weight": uncertainty_weight, "seed": seed}
    bon_gold_array, rl_gold_array = np.array(bon_gold), np.array(rl_gold)
    return OveroptimizationResult(
        settings, np.array(n_values), bon_d, bon_gold_array, np.array(bon_proxy), np.array(list(betas), dtype=float),
        np.array(rl_d), rl_gold_array, np.array(rl_proxy), fit_functional_form(bon_d, bon_gold_array, "bon"),
        fit_functional_form(np.array(rl_d), rl_gold_array, "rl"), ensembles,
    )


def overoptimization_sweep(parameter: str, values: Sequence[Any], seeds: int = 3,
                           **settings: Any) -> list[dict[str, Any]]:
    """Repeat :func:`overoptimization_experiment` over ``values`` of one ``parameter``
    (``n_comparisons``, ``capacity`` or ``label_noise``) and seeds; mean and std of the fits."""
    allowed = ("n_comparisons", "capacity", "label_noise")
    if parameter not in allowed:
        raise parameter_error("parameter", "overoptimization_sweep", f"one of {allowed}", parameter)
    check_positive(seeds, "seeds", "overoptimization_sweep", integer=True)
    rows = []
    for value in values:
        results = [overoptimization_experiment(**{**settings, parameter: value, "seed": seed}) for seed in range(seeds)]
        row: dict[str, Any] = {"parameter": parameter, "value": value}
        for name, getter in (("bon_alpha", lambda r: r.bon_fit.alpha), ("bon_beta", lambda r: r.bon_fit.beta),
                             ("rl_alpha", lambda r: r.rl_fit.alpha), ("rl_beta", lambda r: r.rl_fit.beta),
                             ("bon_peak_gold", lambda r: float(r.bon_gold.max())),
                             ("bon_final_gold", lambda r: float(r.bon_gold[-1])),
                             ("bon_peak_n", lambda r: float(r.bon_peak_n))):
            numbers_ = np.array([getter(r) for r in results])
            row[name] = float(numbers_.mean())
            row[name + "_std"] = float(numbers_.std(ddof=1)) if seeds > 1 else 0.0
        rows.append(row)
    return rows
