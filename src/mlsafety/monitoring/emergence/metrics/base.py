"""The per-example metric base class, tokenisation and re-scoring of a task's outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlsafety.exceptions import InvalidInputError, ShapeError, parameter_error

if TYPE_CHECKING:
    from mlsafety.monitoring.emergence.schema import Curve


def tokenize(text: str, tokenizer: str = "char") -> list[str]:
    """Split ``text`` into tokens: ``"char"`` (characters, for digits and symbols) or ``"whitespace"``."""
    text = str(text).strip()
    return text.split() if tokenizer == "whitespace" else list(text)


def levenshtein(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Edit distance (insertions, deletions, substitutions, unit costs) between two token sequences."""
    previous = list(range(len(b) + 1))
    for i, token in enumerate(a, start=1):
        current = [i]
        for j, other in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token != other)))
        previous = current
    return previous[-1]


class Metric:
    """A per-example score computed from outputs and targets (and optional probabilities).

    Subclasses set ``requires`` (extra record columns) and implement :meth:`_score`; direction,
    continuity and bounds are registry metadata, so the analysis never needs a name chain.

    Parameters
    ----------
    tokenizer : str
        ``"auto"`` (whitespace when any target contains whitespace, else characters), ``"char"``
        or ``"whitespace"``.
    """

    requires: tuple[str, ...] = ()

    def __init__(self, tokenizer: str = "auto") -> None:
        self.tokenizer = tokenizer

    def get_params(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tokenizer={self.tokenizer!r})"

    def _mode(self, targets: Sequence[str]) -> str:
        if self.tokenizer not in ("auto", "char", "whitespace"):
            raise parameter_error("tokenizer", type(self).__name__, "'auto', 'char' or 'whitespace'", self.tokenizer)
        if self.tokenizer != "auto":
            return self.tokenizer
        return "whitespace" if any(any(ch.isspace() for ch in str(t).strip()) for t in targets) else "char"

    def score(self, outputs: Sequence[str], targets: Sequence[str], **extras: Sequence[float] | None) -> np.ndarray:
        """Per-example scores, shape (N,).

        Raises
        ------
        ShapeError
            If ``outputs`` and ``targets`` (or an extra column) differ in length.
        """
        if len(outputs) != len(targets):
            raise ShapeError(f"{type(self).__name__} got {len(outputs)} outputs but {len(targets)} targets; "
                             "pass one output per target.")
        for name in self.requires:
            column = extras.get(name)
            if column is None:
                raise InvalidInputError(f"{type(self).__name__} needs the `{name}` column; add it or drop the metric.")
            if len(column) != len(targets):
                raise ShapeError(f"`{name}` has {len(column)} values but there are {len(targets)} targets.")
        return np.asarray(self._score(list(outputs), list(targets), self._mode(targets), **extras), dtype=float)

    def _score(self, outputs: list[str], targets: list[str], tokenizer: str, **extras: Any) -> np.ndarray:
        raise NotImplementedError


def _column(records: list[dict[str, Any]], name: str) -> list[float] | None:
    values = [r.get(name) for r in records]
    if any(v in (None, "") for v in values):
        return None
    try:
        numbers = [float(v) for v in values]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInputError(f"column `{name}` must hold numbers.") from None
    if not np.all(np.isfinite(numbers)):
        raise InvalidInputError(f"column `{name}` holds NaN or infinite values; fix or drop those examples.")
    return numbers


def rescore(task: str, scales: np.ndarray, records: list[list[dict[str, Any]]],
            metrics: Sequence[str] | None = None, tokenizer: str = "auto") -> list[Curve]:
    """Per-example curves for every applicable metric from per-scale output records.

    ``records[i]`` holds the examples (dicts with ``output``, ``target`` and optionally
    ``target_logprob`` / ``target_prob``) at ``scales[i]``, in the same example order at every scale.
    Metrics whose columns are missing are skipped.
    """
    from mlsafety.monitoring.emergence.metrics import METRICS
    from mlsafety.monitoring.emergence.schema import Curve

    curves = []
    for name in metrics or METRICS.names():
        metric = METRICS.create(name, tokenizer=tokenizer)
        rows = []
        for block in records:
            extras = {column: _column(block, column) for column in ("target_logprob", "target_prob")}
            if any(extras.get(column) is None for column in metric.requires):
                break
            rows.append(metric.score([str(r["output"]) for r in block], [str(r["target"]) for r in block], **extras))
        else:
            info = METRICS.metadata(name)
            curves.append(Curve.from_examples(task, name, scales, rows, higher_is_better=info["higher_is_better"],
                                              continuous=info["continuous"], bounds=info["bounds"]))
    return curves
