"""CE, mCE and relative mCE against hand-computed values; the shipped AlexNet table."""

from __future__ import annotations

import numpy as np
import pytest

from mlsafety.exceptions import InvalidInputError, InvalidParameterError
from mlsafety.metrics.corruption import (
    alexnet_errors,
    corruption_error,
    corruption_errors,
    mean_corruption_error,
    relative_corruption_error,
    relative_mean_corruption_error,
)


def test_hand_computed_ce_and_mce() -> None:
    model = {"fog": [0.1, 0.2, 0.3], "snow": [0.2, 0.2, 0.2]}
    base = {"fog": [0.3, 0.3, 0.6], "snow": [0.4, 0.4, 0.4], "frost": [0.5, 0.5, 0.5]}
    assert corruption_error(model["fog"], base["fog"]) == pytest.approx(0.6 / 1.2)
    assert corruption_errors(model, base) == pytest.approx({"fog": 0.5, "snow": 0.5})
    assert mean_corruption_error(model, base) == pytest.approx(0.5)
    # relative: sum(E - E_clean) / sum(E_base - E_base_clean)
    rel = relative_corruption_error(model["fog"], 0.05, base["fog"], 0.1)
    assert rel == pytest.approx((0.05 + 0.15 + 0.25) / (0.2 + 0.2 + 0.5))
    rel_m = relative_mean_corruption_error(model, 0.05, base, 0.1)
    assert rel_m == pytest.approx(np.mean([rel, (0.15 * 3) / (0.3 * 3)]))
    # a model equal to the baseline has mCE 1
    assert mean_corruption_error(base, base) == pytest.approx(1.0)


def test_alexnet_table() -> None:
    table = alexnet_errors()
    assert len(table["mean_error"]) == 15
    assert table["mean_error"]["gaussian_noise"] == pytest.approx(0.886428)
    assert 0.4 < table["clean_error"] < 0.45
    # a model exactly as bad as AlexNet on every severity has mCE 100%
    as_bad = {k: [v] * 5 for k, v in table["mean_error"].items()}
    assert mean_corruption_error(as_bad, "alexnet") == pytest.approx(1.0)
    assert relative_mean_corruption_error(as_bad, table["clean_error"]) == pytest.approx(1.0)
    halved = {k: [v / 2] * 5 for k, v in table["mean_error"].items()}
    assert mean_corruption_error(halved) == pytest.approx(0.5)


def test_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="percentages"):
        mean_corruption_error({"fog": [20.0, 30.0]}, {"fog": [0.4, 0.5]})
    with pytest.raises(InvalidInputError, match="same severities"):
        corruption_error([0.1, 0.2], [0.1, 0.2, 0.3], "fog")
    with pytest.raises(InvalidInputError, match="no errors for"):
        mean_corruption_error({"spatter": [0.1]}, "alexnet")
    with pytest.raises(InvalidInputError, match="empty"):
        mean_corruption_error({}, "alexnet")
    with pytest.raises(InvalidParameterError, match="baseline"):
        mean_corruption_error({"fog": [0.1]}, "resnet")
    with pytest.raises(InvalidParameterError, match="baseline_clean_error"):
        relative_mean_corruption_error({"fog": [0.1]}, 0.05, {"fog": [0.2]})
