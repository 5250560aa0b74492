"""The values report end to end on a small generated corpus with the hashing encoder."""

from __future__ import annotations

import json

from mlsafety.alignment.values import HashingEncoder, load_lexicon
from mlsafety.alignment.values.experiment import fit_utility, vader_splits
from mlsafety.alignment.values.report import build_values_report


def test_values_report_has_every_section_and_a_goodhart_curve(tmp_path, corpus, vader_folder) -> None:
    splits = vader_splits(corpus, n_train_pairs=600, n_test_pairs=200, seed=0)
    encoder = HashingEncoder(n_features=256)
    model = fit_utility(encoder.encode(splits.train.texts), splits.train_pairs, encoder=encoder)
    json_path, html_path, sections = build_values_report(
        model, splits, tmp_path, lexicon=load_lexicon(vader_folder), quick=True, seed=0,
        thresholds={"pairwise_accuracy": 0.99})
    names = [s.name for s in sections]
    assert names == ["fit", "calibration", "learning_curve", "transfer", "goodhart"]
    fit = sections[0]
    assert fit.verdict == "fail" and "pairwise_accuracy" in fit.warnings[0]  # 0.99 is out of reach
    assert 0.6 < fit.metrics["pairwise_accuracy"] < 1.0
    goodhart = sections[-1]
    assert goodhart.figures and goodhart.metrics["proxy_gain"] > 0
    assert {"reference_gain", "lexicon_gain", "min_ensemble_reference_gain"} <= set(goodhart.metrics)
    report = json.loads(json_path.read_text())
    assert report["title"] == "mlsafety values report" and len(report["checks"]) == 5
    html = html_path.read_text()
    assert "Goodhart curve" in html and "data:image/png;base64" in html
