"""Fixtures: the tiny planted-truth GPT-2 (see ``honesty_tiny_lm.py``), trained once per session."""

from __future__ import annotations

import pytest
from honesty_tiny_lm import planted_statements, train_tiny_lm

from mlsafety.monitoring.honesty.datasets.base import Statements
from mlsafety.monitoring.honesty.lm import LanguageModel


@pytest.fixture(scope="session")
def tiny_lm() -> LanguageModel:
    return train_tiny_lm()

@pytest.fixture(scope="session")
def planted() -> Statements:
    return planted_statements(24, seed=3, name="planted")
