from __future__ import annotations

import dataclasses

from mlsafety.audit.base import AuditContext
from mlsafety.audit.checks.backdoor import BackdoorCheck
from mlsafety.registry import CHECKS


def test_backdoor_check_runs_and_reports_triggers(backdoored, digits_splits) -> None:
    classifier, poisoned, _ = backdoored
    assert CHECKS.get("backdoor") is BackdoorCheck
    context = AuditContext(classifier=classifier, data=digits_splits["test"], validation=digits_splits["validation"],
                           train=poisoned, quick=True)
    result = BackdoorCheck().run(context)
    assert result.verdict in ("pass", "info")
    assert result.figures and result.figures[0].png_base64
    assert len(result.tables[0].rows) == 10
    assert 0 <= result.metrics["strip_flagged_fraction"] <= 1
    assert result.metrics["anomaly_index"] == max(row[2] for row in result.tables[0].rows)
    # quick mode: the target's trigger is already the smallest
    assert min(range(10), key=lambda k: result.tables[0].rows[k][1]) == 0
    assert any("quick mode" in note for note in result.notes)
    # full mode adds the Spectral Signatures table on the training data
    full = BackdoorCheck().run(dataclasses.replace(
        context, quick=False, options={"backdoor": {"neural_cleanse": {"steps": 5, "n_samples": 100}}}))
    assert any(table.title.startswith("Spectral") for table in full.tables)
    assert result.verdict != "warn"


def test_backdoor_check_not_applicable_to_two_classes(tiny_classifier, digits_splits) -> None:
    data = digits_splits["test"]
    two = data.subset((data.labels < 2).nonzero().flatten())
    two.class_names = ["0", "1"]
    context = AuditContext(classifier=tiny_classifier, data=two)
    assert "at least 3 classes" in BackdoorCheck().not_applicable(context)
