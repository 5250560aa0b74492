"""Small arithmetic: "7 + 5 = 12." (true) and the same with a result off by 1 to 3 (false)."""

from __future__ import annotations

import numpy as np

from mlsafety.monitoring.honesty.datasets.base import STATEMENT_SETS, Statements, pairs_to_statements


@STATEMENT_SETS.register("arithmetic", topic="arithmetic")
def arithmetic(seed: int = 0) -> Statements:
    """Sums, differences and products of numbers up to 20; entity = the operands and operator."""
    rng = np.random.default_rng(seed)
    rows = []
    seen: set[tuple[int, str, int]] = set()
    while len(rows) < 700:
        a, b = (int(v) for v in rng.integers(1, 21, size=2))
        op = ["+", "-", "*"][int(rng.integers(3))]
        if op == "-" and b > a:
            a, b = b, a
        if (op == "*" and (a > 12 or b > 12)) or (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        result = a + b if op == "+" else a - b if op == "-" else a * b
        wrong = result + int(rng.choice([-3, -2, -1, 1, 2, 3]))
        shown = "x" if op == "*" else op
        rows.append((f"{a} {shown} {b} = {result}.", f"{a} {shown} {b} = {wrong}.", f"{a}{op}{b}"))
    return pairs_to_statements(rows, name="arithmetic", topic="arithmetic")
