"""Session fixtures for the calibration tests: over-confident synthetic validation/test logits."""

from __future__ import annotations

import pytest
import torch
from calibration_synthetic import synthetic


@pytest.fixture(scope="session")
def overconfident() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {"validation": synthetic(4000, 5, seed=0), "test": synthetic(4000, 5, seed=1)}
