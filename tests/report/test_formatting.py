"""Numbers read as a person writes them: integer counts, rounded floats, no exponents."""

from __future__ import annotations

import pytest

from mlsafety.report import format_number, format_value
from mlsafety.report.formatting import flatten


@pytest.mark.parametrize(("value", "text"), [
    (10000.0, "10,000"), (1e4, "10,000"), (500.0, "500"), (0.28600001335144043, "0.286"),
    (0.0123456, "0.01235"), (12.5, "12.5"), (123456.7, "123,457"), (0.0, "0"), (float("nan"), "n/a"),
])
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text
    assert "e+" not in format_number(value)


def test_format_value_rounds_inside_containers() -> None:
    normalisation = {"mean": [0.28600001335144043], "std": [0.35299998521804810]}
    assert format_value(normalisation) == "mean: [0.286], std: [0.353]"
    assert format_value(None) == "-" and format_value(True) == "yes" and format_value(25000) == "25,000"


def test_flatten_gives_dotted_rows() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == [("a.b", 1), ("a.c.d", [1, 2]), ("e", {})]
