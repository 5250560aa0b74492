"""The whole analysis: the mirage reproduced on synthetic outputs, and a jump that persists."""

from __future__ import annotations

import numpy as np
import pytest

from mlsafety.monitoring.emergence import analyze, table_from_records
from mlsafety.monitoring.emergence.report import analysis_sections, write_report


def _records(per_token: np.ndarray, length: int = 12, n: int = 200) -> list[dict]:
    """Outputs whose digits are right with rate per_token[i] at scale i.

    Errors are placed with a low-discrepancy sequence, so each curve sits on its expectation and
    the test does not depend on a random draw; the log-likelihood is length * log(per-token rate).
    """
    rng = np.random.default_rng(0)
    records = []
    for scale, q in zip(np.logspace(6, 9, per_token.size), per_token, strict=True):
        for example in range(n):
            target = "".join(rng.choice(list("0123456789"), length))
            wrong = [((example * 0.6180339887 + t * 0.7548776662) % 1.0) < 1 - q for t in range(length)]
            output = "".join(str((int(c) + 1) % 10) if w else c for c, w in zip(target, wrong, strict=True))
            records.append({"scale": scale, "task": "digits", "example": example, "output": output,
                            "target": target, "target_logprob": float(length * np.log(q))})
    return records


@pytest.fixture(scope="module")
def mirage():
    # Schaeffer et al.'s model: per-token cross-entropy falls as a power law of scale, so per-token
    # accuracy and log-likelihood improve smoothly while exact match over 12 digits looks like a jump
    q = np.exp(-(0.02 ** (np.arange(6) / 5)))
    return analyze(table_from_records(_records(q)))


def test_mirage_is_reproduced(mirage) -> None:
    exact = mirage.curve("digits", "exact_match")
    assert exact.flagged is not None and exact.flagged.interval[0] > 0
    for metric in ("per_token_accuracy", "token_edit_distance", "target_log_likelihood"):
        assert mirage.curve("digits", metric).flagged is None
    (comparison,) = mirage.comparisons
    assert comparison.verdict == "mirage" and len(comparison.checks) == 3


def test_a_real_jump_persists() -> None:
    q = np.where(np.arange(7) >= 4, 0.98, 0.3)
    analysis = analyze(table_from_records(_records(q)))
    (comparison,) = analysis.comparisons
    assert comparison.verdict == "persists"
    assert all(check.flagged and abs(check.index - 4) <= 1 for check in comparison.checks)


def test_report_is_written(mirage, tmp_path) -> None:
    json_path, html_path = write_report(tmp_path, analysis_sections(mirage, "parameters"))
    text = html_path.read_text()
    assert "mirage" in text and "data:image/png;base64" in text
    assert '"verdict": "mirage"' in json_path.read_text()
