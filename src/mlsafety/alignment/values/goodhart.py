"""Optimising text against a learned utility, measured with a gold judge (proxy gaming).

Goodhart's law, in the taxonomy of Manheim & Garrabrant (2018), "Categorizing Variants of
Goodhart's Law": a proxy that correlates with the goal stops doing so under optimisation
pressure. Gao, Schulman & Hilton (2023), "Scaling Laws for Reward Model Overoptimization",
measure it by optimising against a proxy reward model and scoring the result with a gold
one that the optimiser never sees. :class:`GreedyTextOptimizer` does this with text edits:
at each step it proposes ``n_candidates`` random edits of every text (insert a vocabulary
word at a random position, or substitute a word), scores them all with the proxy, and
keeps the best edit when it raises the proxy. The gold judges are evaluated only on the
accepted texts, for the record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mlsafety._validation import check_positive
from mlsafety.alignment.values.encoder import check_texts
from mlsafety.alignment.values.hashing import tokenize
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError, parameter_error

Scorer = Callable[[list[str]], torch.Tensor]


def vocabulary_from_texts(texts: Sequence[str], size: int = 300, min_length: int = 2) -> list[str]:
    """The ``size`` most frequent word tokens of ``texts`` (ties broken alphabetically)."""
    counts = Counter(t for text in texts for t in tokenize(text) if len(t) >= min_length and t.isalpha())
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]


def lexicon_judge(lexicon: Mapping[str, float], alpha: float = 15.0) -> Scorer:
    """A gold judge from human word ratings: ``s / sqrt(s^2 + alpha)`` with ``s`` the sum of
    the lexicon valences of a text's tokens (the normalisation of VADER's compound score,
    Hutto & Gilbert 2014, without VADER's negation and intensifier rules)."""

    def judge(texts: list[str]) -> torch.Tensor:
        s = np.array([sum(lexicon.get(t, 0.0) for t in text.lower().split()) for text in texts])
        return torch.as_tensor(s / np.sqrt(s * s + alpha), dtype=torch.float32)

    return judge


@dataclass
class GoodhartTrace:
    """What happened along the optimisation.

    Attributes
    ----------
    proxy : ndarray (n_steps + 1, n_texts)
        Proxy utility of the current texts after each step (row 0: the start).
    gold : dict of name -> ndarray (n_steps + 1, n_texts)
    texts : list of list of str
        The texts after each step.
    accepted : ndarray (n_steps, n_texts), bool
    """

    proxy: np.ndarray
    gold: dict[str, np.ndarray] = field(default_factory=dict)
    texts: list[list[str]] = field(default_factory=list)
    accepted: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))

    def standardized(self, scales: Mapping[str, float]) -> dict[str, np.ndarray]:
        """Mean gain over the start, per step, in units of ``scales[name]`` (e.g. the standard
        deviation of that judge over natural texts), for ``proxy`` and each gold judge."""
        series = {"proxy": self.proxy, **self.gold}
        return {k: (v - v[0]).mean(1) / scales.get(k, 1.0) for k, v in series.items()}


class GreedyTextOptimizer(ParamsMixin):
    """Greedy word insertion / substitution that maximises a proxy utility.

    Parameters
    ----------
    vocabulary : list of str, optional
        Words the optimiser may insert (required at :meth:`optimize` if not given here).
    n_steps : int
    n_candidates : int
        Random edits proposed per text per step.
    operations : tuple of {"insert", "substitute"}
    max_words : int
        Texts never grow beyond this many words.
    seed : int
    """

    def __init__(self, vocabulary: list[str] | None = None, n_steps: int = 10, n_candidates: int = 48,
                 operations: tuple[str, ...] = ("insert", "substitute"), max_words: int = 60, seed: int = 0) -> None:
        self.vocabulary = vocabulary
        self.n_steps = n_steps
        self.n_candidates = n_candidates
        self.operations = operations
        self.max_words = max_words
        self.seed = seed

    def _propose(self, words: list[str], vocabulary: list[str], rng: np.random.Generator) -> list[str]:
        out = []
        for _ in range(self.n_candidates):
            op = self.operations[rng.integers(len(self.operations))]
            if len(words) >= self.max_words:
                op = "substitute"
            word = vocabulary[rng.integers(len(vocabulary))]
            if op == "insert" or not words:
                position = int(rng.integers(0, len(words) + 1))
                edited = [*words[:position], word, *words[position:]]
            else:
                position = int(rng.integers(0, len(words)))
                edited = [*words[:position], word, *words[position + 1:]]
            out.append(" ".join(edited))
        return out

    def optimize(self, texts: Sequence[str], proxy: Scorer, gold: Mapping[str, Scorer] | None = None,
                 vocabulary: list[str] | None = None) -> GoodhartTrace:
        """Run the greedy optimisation from ``texts``.

        Parameters
        ----------
        texts : list of str
            Start texts.
        proxy : callable list[str] -> Tensor (N,)
            The learned utility being maximised.
        gold : dict of name -> callable, optional
            Held-out judges, evaluated on accepted texts only.
        vocabulary : list of str, optional
            Overrides the constructor's vocabulary.

        Returns
        -------
        GoodhartTrace
        """
        current = check_texts(texts)
        vocab = vocabulary if vocabulary is not None else self.vocabulary
        if not vocab:
            raise InvalidInputError("GreedyTextOptimizer needs a non-empty `vocabulary` of words to insert; build "
                                    "one with vocabulary_from_texts(training_texts).")
        check_positive(self.n_steps, "n_steps", "GreedyTextOptimizer", integer=True, allow_zero=True)
        check_positive(self.n_candidates, "n_candidates", "GreedyTextOptimizer", integer=True)
        if not self.operations or any(op not in ("insert", "substitute") for op in self.operations):
            raise parameter_error("operations", "GreedyTextOptimizer", "a tuple of 'insert'/'substitute'",
                                  self.operations)
        gold = dict(gold or {})
        rng = np.random.default_rng(self.seed)
        score = [float(v) for v in proxy(current)]
        proxies = [score]
        golds = {k: [judge(current).numpy()] for k, judge in gold.items()}
        history, accepted = [list(current)], []
        for _ in range(self.n_steps):
            candidates = [self._propose(t.split(), vocab, rng) for t in current]
            flat = [c for group in candidates for c in group]
            values = proxy(flat).numpy().reshape(len(current), self.n_candidates)
            best = values.argmax(1)
            take = values[np.arange(len(current)), best] > np.asarray(score)
            current = [candidates[i][best[i]] if take[i] else current[i] for i in range(len(current))]
            score = [float(values[i, best[i]]) if take[i] else score[i] for i in range(len(current))]
            proxies.append(score)
            for k, judge in gold.items():
                golds[k].append(judge(current).numpy())
            history.append(list(current))
            accepted.append(take)
        return GoodhartTrace(np.asarray(proxies), {k: np.stack(v) for k, v in golds.items()}, history,
                             np.asarray(accepted, dtype=bool).reshape(self.n_steps, len(current)))
