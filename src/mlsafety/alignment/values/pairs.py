"""Preference pairs: the training signal of a utility model.

A :class:`Pairs` holds a list of unique texts and, for each pair, the index of the
preferred ("better", more pleasant) text and of the other one, so that each text is
encoded once however many pairs it appears in. :func:`build_pairs` turns human ratings
into pairs; its "hard" pairs are those whose two mean ratings are close.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlsafety._io import not_text_table_error
from mlsafety._validation import check_positive
from mlsafety.alignment.values.vader import RatedTexts
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, parameter_error


@dataclass
class Pairs:
    """Preference pairs over a pool of texts.

    Attributes
    ----------
    texts : list of str
        The pool of texts.
    better, worse : ndarray (P,), int64
        Indices into ``texts``: ``texts[better[i]]`` is preferred to ``texts[worse[i]]``.
    gap : ndarray (P,), float64
        Rating difference (better minus worse), NaN when unknown (ETHICS, pair files).
    domain : ndarray (P,) of str
        Domain of the pair (``"all"`` when unknown).
    hard : ndarray (P,), bool
        Marks the hard pairs.
    """

    texts: list[str]
    better: np.ndarray
    worse: np.ndarray
    gap: np.ndarray = field(default_factory=lambda: np.zeros(0))
    domain: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    hard: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        self.better = np.asarray(self.better, dtype=np.int64)
        self.worse = np.asarray(self.worse, dtype=np.int64)
        n = len(self.better)
        if len(self.worse) != n:
            raise InvalidInputError(f"`better` and `worse` must have the same length; got {n} and {len(self.worse)}.")
        if n == 0:
            raise InvalidInputError("no preference pairs; give at least one (better, worse) pair.")
        if self.better.min() < 0 or max(self.better.max(), self.worse.max()) >= len(self.texts):
            raise InvalidInputError("pair indices must lie in [0, len(texts)).")
        same = np.flatnonzero(self.better == self.worse)
        if same.size == 0:
            texts = np.asarray(self.texts, dtype=object)
            same = np.flatnonzero(texts[self.better] == texts[self.worse])
        if same.size:
            i = int(same[0])
            raise InvalidInputError(
                f"pair {i} has the same text on both sides ({self.texts[self.better[i]][:50]!r}); "
                f"{same.size} such pair(s) in all. Remove them: a pair must compare two different texts."
            )
        self.gap = np.full(n, np.nan) if len(self.gap) == 0 else np.asarray(self.gap, dtype=np.float64)
        self.domain = np.full(n, "all") if len(self.domain) == 0 else np.asarray(self.domain)
        self.hard = np.zeros(n, dtype=bool) if len(self.hard) == 0 else np.asarray(self.hard, dtype=bool)

    def __len__(self) -> int:
        return len(self.better)

    def subset(self, index: np.ndarray | list[int]) -> Pairs:
        """The pairs at ``index`` (boolean mask or integer positions), same text pool."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return Pairs(self.texts, self.better[index], self.worse[index], self.gap[index], self.domain[index],
                     self.hard[index])

    def head(self, n: int, seed: int = 0) -> Pairs:
        """A seeded random subset of ``n`` pairs (all of them when ``n >= len(self)``)."""
        if n >= len(self):
            return self
        return self.subset(np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False)))

    @property
    def better_texts(self) -> list[str]:
        return [self.texts[i] for i in self.better]

    @property
    def worse_texts(self) -> list[str]:
        return [self.texts[i] for i in self.worse]

    @classmethod
    def from_texts(cls, better: list[str], worse: list[str], **kwargs: np.ndarray) -> Pairs:
        """Pairs from two aligned lists of texts (``better[i]`` preferred to ``worse[i]``)."""
        if len(better) != len(worse):
            raise InvalidInputError(f"`better` and `worse` must have the same length; got {len(better)} and "
                                    f"{len(worse)}.")
        pool: dict[str, int] = {}
        for text in [*better, *worse]:
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError("a pair holds an empty text; remove empty rows.")
            pool.setdefault(text, len(pool))
        return cls(list(pool), np.array([pool[t] for t in better]), np.array([pool[t] for t in worse]), **kwargs)


def build_pairs(rated: RatedTexts, n_pairs: int = 20000, min_gap: float = 0.05, hard_gap: float = 0.5,
                within_domain: bool = True, seed: int = 0) -> Pairs:
    """Sample preference pairs from rated texts.

    Two distinct texts are drawn at random (from the same domain when ``within_domain``);
    the one with the higher mean rating is "better". Pairs whose ratings differ by less
    than ``min_gap`` are dropped as ties; pairs whose gap is at most ``hard_gap`` are marked
    hard (on VADER's -4..+4 scale the standard error of a 20-rater mean is about 0.2, so a
    gap of 0.5 is a close call for humans too).

    Parameters
    ----------
    rated : RatedTexts
    n_pairs : int
        Number of pairs wanted (fewer when the texts cannot supply them).
    min_gap, hard_gap : float
    within_domain : bool
    seed : int

    Returns
    -------
    Pairs
    """
    check_positive(n_pairs, "n_pairs", "build_pairs", integer=True)
    if not 0 <= min_gap <= hard_gap:
        raise parameter_error("min_gap", "build_pairs", f"in [0, hard_gap={hard_gap}]", min_gap)
    if len(rated) < 2:
        raise InvalidInputError(f"need at least two rated texts to build pairs; got {len(rated)}.")
    rng = np.random.default_rng(seed)
    groups = ([np.flatnonzero(rated.domains == d) for d in sorted(set(rated.domains.tolist()))]
              if within_domain else [np.arange(len(rated))])
    groups = [g for g in groups if len(g) >= 2]
    sizes = np.array([len(g) for g in groups], dtype=np.float64)
    chosen_a, chosen_b = [], []
    seen: set[tuple[int, int]] = set()
    for _ in range(20):
        need = n_pairs - len(chosen_a)
        if need <= 0:
            break
        draw = int(need * 1.5) + 16
        group_of = rng.choice(len(groups), size=draw, p=sizes / sizes.sum())
        for g in range(len(groups)):
            members = groups[g]
            m = int((group_of == g).sum())
            if m == 0:
                continue
            a = members[rng.integers(0, len(members), m)]
            b = members[rng.integers(0, len(members), m)]
            keep = (a != b) & (np.abs(rated.ratings[a] - rated.ratings[b]) >= max(min_gap, 1e-12))
            for x, y in zip(a[keep].tolist(), b[keep].tolist()):
                key = (min(x, y), max(x, y))
                if key not in seen and rated.texts[x] != rated.texts[y]:
                    seen.add(key)
                    chosen_a.append(x)
                    chosen_b.append(y)
    # keep a random subset (not the first ones drawn, which would favour the first domains)
    keep = np.sort(rng.permutation(len(chosen_a))[:n_pairs])
    a = np.asarray(chosen_a, dtype=np.int64)[keep]
    b = np.asarray(chosen_b, dtype=np.int64)[keep]
    if a.size == 0:
        raise InvalidInputError("no pair of texts has different ratings; check the ratings or lower `min_gap`.")
    first_better = rated.ratings[a] > rated.ratings[b]
    better = np.where(first_better, a, b)
    worse = np.where(first_better, b, a)
    gap = rated.ratings[better] - rated.ratings[worse]
    return Pairs(rated.texts, better, worse, gap, rated.domains[better], gap <= hard_gap)


def load_pair_file(path: str | Path) -> Pairs:
    """Read preference pairs from a CSV file.

    Accepted layouts: a header with ``better`` and ``worse`` columns (also ``chosen`` /
    ``rejected``), or no header and two columns, the first being the preferred text.

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    InvalidInputError
        If the file has the wrong columns, is empty, or a pair has the same text twice.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"pair file {str(path)!r} not found.")
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            rows = [r for r in csv.reader(stream) if r]
    except (UnicodeDecodeError, csv.Error) as error:
        raise not_text_table_error(f"pair file {str(path)!r}", error) from error
    if not rows:
        raise InvalidInputError(f"pair file {str(path)!r} is empty; it needs rows of (better, worse) texts.")
    header = [c.strip().lower() for c in rows[0]]
    names = [("better", "worse"), ("chosen", "rejected"), ("preferred", "other")]
    for first, second in names:
        if first in header and second in header:
            i, j = header.index(first), header.index(second)
            rows = rows[1:]
            break
    else:
        if len(rows[0]) != 2:
            raise InvalidInputError(
                f"pair file {str(path)!r} must have a header with columns better,worse (or chosen,rejected) or "
                f"exactly two columns without a header; got columns {rows[0][:5]}."
            )
        i, j = 0, 1
    bad = next((n for n, r in enumerate(rows) if len(r) <= max(i, j)), None)
    if bad is not None:
        raise InvalidInputError(f"pair file {str(path)!r}: row {bad + 1} has {len(rows[bad])} column(s); expected 2.")
    return Pairs.from_texts([r[i] for r in rows], [r[j] for r in rows])
