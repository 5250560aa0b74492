"""How numbers and values read in a report: integer counts as integers with thousands
separators, other numbers to four significant digits, never in exponent notation for
everyday magnitudes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def format_number(value: float) -> str:
    """A float as a person would write it: ``10,000`` (not ``1e+04``), ``0.286``, ``12.5``."""
    if not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if float(value).is_integer() or magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude < 1e-4:
        return f"{value:.2e}"
    return f"{value:.4g}"


def format_value(value: Any) -> str:
    """Render any JSON-friendly value for an HTML cell or a line of text.

    Lists of numbers (a normalisation mean) are rounded element-wise, dictionaries read as
    ``key: value`` pairs, and None reads as a dash.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if hasattr(value, "tolist"):
        return format_value(value.tolist())
    return str(value)


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dictionaries as ``(dotted.key, leaf)`` rows, for a readable configuration table."""
    if isinstance(value, Mapping) and value:
        rows: list[tuple[str, Any]] = []
        for key, item in value.items():
            rows.extend(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix, value)]
