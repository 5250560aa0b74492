"""Input normalisation given on the command line: a preset name, numbers, or ``none``."""

from __future__ import annotations

import math

from mlsafety.exceptions import InvalidInputError

NORMALIZATION_PRESETS: dict[str, tuple[list[float], list[float]]] = {
    # per-channel statistics of each data set's training split, the usual published values
    "fashion-mnist": ([0.2860], [0.3530]),
    "mnist": ([0.1307], [0.3081]),
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
    "imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


def parse_normalization(spec: str) -> tuple[list[float] | None, list[float] | None]:
    """Parse ``"none"``, a preset name, or ``"MEAN_1,...,MEAN_C,STD_1,...,STD_C"``.

    Returns ``(mean, std)``; ``(None, None)`` for ``"none"`` (the network takes raw [0, 1]
    pixels).

    Raises
    ------
    InvalidInputError
        If ``spec`` is none of these, or a standard deviation is not positive.

    Examples
    --------
    >>> parse_normalization("0.286,0.353")
    ([0.286], [0.353])
    """
    text = spec.strip().lower()
    if text == "none":
        return None, None
    if text in NORMALIZATION_PRESETS:
        mean, std = NORMALIZATION_PRESETS[text]
        return list(mean), list(std)
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    usage = (f"--normalization must be none, a preset ({', '.join(sorted(NORMALIZATION_PRESETS))}) or the "
             f"per-channel means then standard deviations (e.g. 0.286,0.353 or six numbers for RGB); got {spec!r}.")
    if len(values) not in (2, 6) or not all(math.isfinite(v) for v in values):
        raise InvalidInputError(usage)
    half = len(values) // 2
    mean, std = values[:half], values[half:]
    if any(s <= 0 for s in std):
        raise InvalidInputError(f"--normalization standard deviations must be positive; got {std}.")
    return mean, std
