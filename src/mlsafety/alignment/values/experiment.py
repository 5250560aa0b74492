"""The default value-learning experiment on the VADER human ratings, step by step.

Every step takes precomputed embeddings of a pool of texts (each text is encoded once and
cached on disk), so fitting and evaluating many utility models is cheap:

1. :func:`vader_splits` -- disjoint train / validation / test *texts* (70 / 10 / 20 %,
   stratified by domain) and pairs built inside each split;
2. :func:`fit_utility` -- a linear or MLP head with Bradley–Terry on pairs or regression
   on ratings;
3. :func:`evaluate_utility` -- pairwise accuracy (all, hard, per domain), Spearman /
   Kendall against the human means, pair calibration;
4. :func:`learning_curve`, :func:`domain_transfer`, :func:`goodhart_experiment`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mlsafety.alignment.values.encoder import TextEncoder
from mlsafety.alignment.values.ensemble import UtilityEnsemble
from mlsafety.alignment.values.goodhart import GoodhartTrace, GreedyTextOptimizer, lexicon_judge, vocabulary_from_texts
from mlsafety.alignment.values.metrics import evaluate_pairs, pair_calibration, rank_correlations
from mlsafety.alignment.values.pairs import Pairs, build_pairs
from mlsafety.alignment.values.utility import UtilityModel
from mlsafety.alignment.values.vader import RatedTexts, load_vader
from mlsafety.exceptions import InvalidInputError
from mlsafety.execution import Executor


@dataclass
class ValueSplits:
    """Rated texts and preference pairs of each split (pairs index into their split's texts)."""

    train: RatedTexts
    validation: RatedTexts
    test: RatedTexts
    train_pairs: Pairs
    test_pairs: Pairs


def vader_splits(rated: RatedTexts | None = None, n_train_pairs: int = 20000, n_test_pairs: int = 5000,
                 hard_gap: float = 0.5, seed: int = 0) -> ValueSplits:
    """Split VADER (or any rated texts) by text and build the train and test pairs."""
    rated = load_vader() if rated is None else rated
    train, validation, test = rated.split((0.7, 0.1, 0.2), seed=seed)
    return ValueSplits(train, validation, test,
                       build_pairs(train, n_train_pairs, hard_gap=hard_gap, seed=seed),
                       build_pairs(test, n_test_pairs, hard_gap=hard_gap, seed=seed + 1))


def fit_utility(embeddings: torch.Tensor, pairs: Pairs | None = None, ratings: np.ndarray | None = None,
                loss: str = "bradley_terry", encoder: TextEncoder | None = None, **params: Any) -> UtilityModel:
    """Fit a :class:`UtilityModel` on a pool's embeddings with pairs (Bradley–Terry) or ratings."""
    model = UtilityModel(encoder=encoder, **params)
    if loss == "regression":
        if ratings is None:
            raise InvalidInputError("loss='regression' needs `ratings`; pass one rating per text of the pool.")
        return model.fit_ratings(embeddings, ratings)
    if pairs is None:
        raise InvalidInputError("loss='bradley_terry' needs `pairs`; build them with build_pairs(rated_texts).")
    return model.fit_pairs(embeddings[pairs.better], embeddings[pairs.worse])


def evaluate_utility(utilities: torch.Tensor | np.ndarray, rated: RatedTexts, pairs: Pairs) -> dict[str, Any]:
    """Metrics of utilities of ``rated.texts`` against the humans, overall and per domain."""
    u = np.asarray(utilities, dtype=np.float64)
    out: dict[str, Any] = evaluate_pairs(u, pairs.better, pairs.worse, pairs.hard)
    out.update(rank_correlations(u, rated.ratings))
    per_domain = {}
    for name in sorted(set(pairs.domain.tolist())):
        mask = pairs.domain == name
        row = evaluate_pairs(u, pairs.better[mask], pairs.worse[mask], pairs.hard[mask])
        in_domain = rated.domains == name
        if in_domain.sum() > 2:
            row.update(rank_correlations(u[in_domain], rated.ratings[in_domain]))
        per_domain[name] = row
    out["per_domain"] = per_domain
    out["calibration"] = pair_calibration(u[pairs.better], u[pairs.worse])
    return out


def learning_curve(train_embeddings: torch.Tensor, train_pairs: Pairs, test_embeddings: torch.Tensor,
                   test_pairs: Pairs, sizes: list[int], n_repeats: int = 1, **params: Any) -> list[dict[str, float]]:
    """Pairwise test accuracy (all / hard) against the number of training pairs."""
    rows = []
    for size in sizes:
        for repeat in range(n_repeats):
            subset = train_pairs.head(size, seed=repeat)
            model = fit_utility(train_embeddings, subset, seed=repeat, **params)
            metrics = evaluate_pairs(model.utility(test_embeddings).numpy(), test_pairs.better, test_pairs.worse,
                                     test_pairs.hard)
            rows.append({**metrics, "n_test_pairs": metrics["n_pairs"], "n_pairs": float(len(subset)),
                         "repeat": float(repeat)})
    return rows


def domain_transfer(splits: ValueSplits, train_embeddings: torch.Tensor, test_embeddings: torch.Tensor,
                    n_pairs: int = 3000, **params: Any) -> dict[str, dict[str, float]]:
    """Pairwise accuracy of a model trained on one domain's pairs, tested on every domain."""
    domains = sorted(set(splits.train.domains.tolist()))
    out: dict[str, dict[str, float]] = {}
    for source in domains:
        train_pairs = splits.train_pairs.subset(splits.train_pairs.domain == source).head(n_pairs, seed=0)
        model = fit_utility(train_embeddings, train_pairs, **params)
        u = model.utility(test_embeddings).numpy()
        out[source] = {}
        for target in domains:
            mask = splits.test_pairs.domain == target
            out[source][target] = evaluate_pairs(u, splits.test_pairs.better[mask],
                                                 splits.test_pairs.worse[mask])["pairwise_accuracy"]
    return out


def goodhart_experiment(splits: ValueSplits, encoder: TextEncoder, train_embeddings: torch.Tensor,
                        proxies: dict[str, Any] | None = None, lexicon: dict[str, float] | None = None,
                        n_texts: int = 8, n_steps: int = 8, n_candidates: int = 24, n_proxy_pairs: int = 500,
                        n_members: int = 5, vocabulary_size: int = 300, seed: int = 0,
                        head: str = "linear", on_proxy_done: Callable[[str], None] | None = None,
                        executor: Executor | None = None) -> dict[str, Any]:
    """Optimise texts against learned utilities and score them with held-out gold judges.

    Proxies (each optimised separately, from the same start texts): the models in
    ``proxies`` plus a ``small`` model fitted on ``n_proxy_pairs`` pairs and a
    conservative ``min_ensemble`` of ``n_members`` bootstrap models on the same pairs.
    Gold judges, never seen by the optimiser: ``reference`` -- an MLP regression on every
    training text's human rating -- and ``lexicon`` (the VADER word ratings), when given.

    ``on_proxy_done(name)`` is called after each proxy's optimisation (for progress bars).
    ``executor`` fits the ensemble's members (e.g. on a Ray cluster); the result is the same.

    Returns a dict with the traces (``traces``), the standardisation scales, and per-proxy
    summary numbers (gains in standard deviations of natural test texts).
    """
    proxies = dict(proxies or {})
    small_pairs = splits.train_pairs.head(n_proxy_pairs, seed=seed)
    proxies["small"] = fit_utility(train_embeddings, small_pairs, encoder=encoder, head=head, seed=seed)
    proxies["min_ensemble"] = UtilityEnsemble(n_members=n_members, aggregate="min", seed=seed, encoder=encoder,
                                              head=head).fit_pairs(train_embeddings[small_pairs.better],
                                                                   train_embeddings[small_pairs.worse], executor)
    reference = UtilityModel(encoder=encoder, head="mlp", hidden_size=128, n_steps=600, weight_decay=1e-2,
                             seed=seed + 7).fit_ratings(train_embeddings, splits.train.ratings)
    gold: dict[str, Any] = {"reference": lambda texts: reference.score_texts(texts, cache=False)}
    if lexicon:
        gold["lexicon"] = lexicon_judge(lexicon)
    # start from short, near-neutral test texts so that both directions are possible
    rng = np.random.default_rng(seed)
    lengths = np.array([len(t.split()) for t in splits.test.texts])
    candidates = np.flatnonzero((np.abs(splits.test.ratings) < 1.0) & (lengths >= 5) & (lengths <= 25))
    starts = [splits.test.texts[i] for i in rng.choice(candidates, min(n_texts, len(candidates)), replace=False)]
    # scales: the spread of each judge over natural test texts
    test_texts = splits.test.texts[:2000]
    scales = {name: float(judge(test_texts).std()) for name, judge in gold.items()}
    vocabulary = vocabulary_from_texts(splits.train.texts, vocabulary_size)
    optimizer = GreedyTextOptimizer(vocabulary, n_steps=n_steps, n_candidates=n_candidates, seed=seed)
    traces: dict[str, GoodhartTrace] = {}
    summary: dict[str, dict[str, float]] = {}
    for name, proxy in proxies.items():
        scales_here = {**scales, "proxy": float(proxy.score_texts(test_texts).std())}
        trace = optimizer.optimize(starts, lambda texts, p=proxy: p.score_texts(texts, cache=False), gold)
        traces[name] = trace
        curves = trace.standardized(scales_here)
        summary[name] = {"proxy_gain": float(curves["proxy"][-1]),
                         **{f"{g}_gain": float(curves[g][-1]) for g in gold},
                         **{f"{g}_peak_gain": float(curves[g].max()) for g in gold}}
        summary[name]["scales"] = scales_here  # type: ignore[assignment]
        if on_proxy_done is not None:
            on_proxy_done(name)
    return {"traces": traces, "summary": summary, "starts": starts, "vocabulary": vocabulary,
            "n_proxy_pairs": len(small_pairs)}
