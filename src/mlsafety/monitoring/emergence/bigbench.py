"""BIG-bench's linearity and breakthroughness scores.

Srivastava et al. (2022), "Beyond the Imitation Game: Quantifying and extrapolating the
capabilities of language models" (TMLR 2023), Appendix B. With the scores :math:`y_i` sorted by
model scale and the overall improvement

.. math:: I(y) = \\operatorname{sign}(\\arg\\max_i y_i - \\arg\\min_i y_i)\\,(\\max_i y_i - \\min_i y_i),

linearity divides it by the root of the *sum* of squared steps and breakthroughness by the root of
their *median*:

.. math:: L = \\frac{I(y)}{\\sqrt{\\sum_i (y_{i+1} - y_i)^2}}, \\qquad
          B = \\frac{I(y)}{\\sqrt{\\operatorname{median}_i (y_{i+1} - y_i)^2}}.

A curve that rises in equal steps has high linearity (:math:`L = \\sqrt{n-1}`) and
:math:`B = n - 1`; one that rises in a single step has :math:`L = 1` and a breakthroughness
limited only by the noise in its flat parts. Both are unitless, so they compare across metrics.
"""

from __future__ import annotations

import numpy as np


def overall_improvement(values: np.ndarray) -> float:
    """:math:`I(y)`: the range, signed by whether the maximum comes after the minimum."""
    y = np.asarray(values, dtype=float)
    sign = 1.0 if int(np.argmax(y)) > int(np.argmin(y)) else -1.0
    return float(sign * (y.max() - y.min()))


def linearity(values: np.ndarray) -> float:
    """BIG-bench linearity :math:`L` (0 for a constant curve)."""
    y = np.asarray(values, dtype=float)
    denominator = float(np.sqrt(np.square(np.diff(y)).sum()))
    return overall_improvement(y) / denominator if denominator > 0 else 0.0


def breakthroughness(values: np.ndarray, cap: float = 1e6) -> float:
    """BIG-bench breakthroughness :math:`B` (0 for a constant curve; capped at ``cap`` when the
    median step is exactly 0, e.g. a noise-free step function)."""
    y = np.asarray(values, dtype=float)
    improvement = overall_improvement(y)
    denominator = float(np.sqrt(np.median(np.square(np.diff(y)))))
    if improvement == 0:
        return 0.0
    if denominator == 0:
        return float(np.sign(improvement) * cap)
    return float(np.clip(improvement / denominator, -cap, cap))
