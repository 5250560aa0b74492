"""The zero-shot baseline: the model's own answer, calibrated by the prompt's prior.

The model is asked whether a statement is true (:mod:`~mlsafety.monitoring.honesty.prompts`); its
answer is the sign of the log-odds of the next token being "True" rather than "False". Small
models lean heavily towards one answer whatever the statement, so the log-odds are shifted by
the prompt's prior: their value for content-free statements ("N/A", "", "[MASK]"), as in
contextual calibration (Zhao, Wallace, Feng, Klein & Singh 2021, "Calibrate Before Use:
Improving Few-Shot Performance of Language Models", ICML):

.. math:: s(x) = [\\log p(\\text{True} \\mid x) - \\log p(\\text{False} \\mid x)]
          - \\frac{1}{|C|}\\sum_{c \\in C} [\\log p(\\text{True} \\mid c) - \\log p(\\text{False} \\mid c)]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mlsafety.monitoring.honesty.datasets.base import Statements
from mlsafety.monitoring.honesty.lm import LanguageModel

CONTENT_FREE = ("N/A", "", "[MASK]")


def zero_shot_scores(logprobs: torch.Tensor, prior: float = 0.0) -> torch.Tensor:
    """Calibrated log-odds of "True", shape (N,), from ``(N, 2)`` log-probabilities of True / False."""
    logprobs = torch.as_tensor(logprobs, dtype=torch.float32)
    return logprobs[:, 0] - logprobs[:, 1] - float(prior)


def content_free_prior(lm: LanguageModel, condition: str = "honest", cache: Any = True) -> float:
    """Mean log-odds of "True" for the content-free statements under ``condition``'s prompt."""
    from mlsafety.monitoring.honesty.activations import extract_activations

    statements = Statements(list(CONTENT_FREE), np.array([1, 0, 1]), list(CONTENT_FREE), name="content_free")
    result = extract_activations(lm, statements, condition, cache=cache)
    return float(zero_shot_scores(result.logprobs).mean())  # type: ignore[arg-type]
