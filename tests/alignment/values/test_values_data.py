"""Pairs, the VADER loader and the ETHICS loaders, on small generated files."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest

from mlsafety.alignment.values import (
    Pairs,
    build_pairs,
    group_exact_match,
    load_ethics,
    load_ethics_utilitarianism,
    load_lexicon,
    load_pair_file,
    load_vader,
)
from mlsafety.alignment.values.vader import EXPECTED_SIZES, fetch_vader
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, MLSafetyWarning

pytestmark = pytest.mark.filterwarnings("ignore:.*the paper's split has:mlsafety.exceptions.MLSafetyWarning")

UTIL = [("I ate a delicious cake.", "I ate a stale cake."), ("I won the lottery.", "I lost my wallet."),
        ("My friend visited me.", "My friend cancelled on me.")]


def _write_csv(path, rows, header=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------- pairs
def test_build_pairs_orients_by_rating_and_marks_hard_pairs(corpus) -> None:
    pairs = build_pairs(corpus, n_pairs=500, min_gap=0.1, hard_gap=0.5, seed=0)
    assert len(pairs) == 500
    r = corpus.ratings
    assert np.all(r[pairs.better] - r[pairs.worse] >= 0.1)
    np.testing.assert_allclose(pairs.gap, r[pairs.better] - r[pairs.worse])
    np.testing.assert_array_equal(pairs.hard, pairs.gap <= 0.5)
    assert 0 < pairs.hard.mean() < 1
    # within-domain pairs by default, and no pair twice
    assert np.all(corpus.domains[pairs.better] == corpus.domains[pairs.worse])
    keys = {tuple(sorted(p)) for p in zip(pairs.better.tolist(), pairs.worse.tolist())}
    assert len(keys) == len(pairs)
    again = build_pairs(corpus, n_pairs=500, min_gap=0.1, hard_gap=0.5, seed=0)
    np.testing.assert_array_equal(again.better, pairs.better)


def test_pairs_refuse_identical_sides_and_empty_texts() -> None:
    with pytest.raises(InvalidInputError, match="same text on both sides"):
        Pairs.from_texts(["good", "same"], ["bad", "same"])
    with pytest.raises(InvalidInputError, match="empty"):
        Pairs.from_texts(["good", ""], ["bad", "x"])
    with pytest.raises(InvalidInputError, match="at least one"):
        Pairs([], np.array([]), np.array([]))


def test_pair_file_layouts_and_errors(tmp_path) -> None:
    headerless = load_pair_file(_write_csv(tmp_path / "a.csv", UTIL))
    named = load_pair_file(_write_csv(tmp_path / "b.csv", [(w, b) for b, w in UTIL], header=["worse", "better"]))
    assert headerless.better_texts == named.better_texts == [b for b, _ in UTIL]
    with pytest.raises(InvalidInputError, match="columns"):
        load_pair_file(_write_csv(tmp_path / "c.csv", [("a", "b", "c")], header=["x", "y", "z"]))
    with pytest.raises(InvalidInputError, match="same text"):
        load_pair_file(_write_csv(tmp_path / "d.csv", [("same", "same")]))
    with pytest.raises(DataNotFoundError):
        load_pair_file(tmp_path / "missing.csv")


# ---------------------------------------------------------------- VADER
def test_load_vader_reads_the_ground_truth_layout(vader_folder, corpus) -> None:
    data = load_vader(vader_folder)
    assert len(data) == len(corpus)
    by_text = dict(zip(corpus.texts, corpus.ratings))
    assert all(by_text[t] == pytest.approx(r) for t, r in zip(data.texts, data.ratings))
    assert set(data.domains.tolist()) == set(EXPECTED_SIZES)
    tweets = load_vader(vader_folder, domains=["tweets"])
    assert set(tweets.domains.tolist()) == {"tweets"}
    lexicon = load_lexicon(vader_folder)
    assert lexicon["wonderful"] == 3.0 and lexicon["awful"] == -3.0
    with pytest.raises(InvalidInputError, match="domain"):
        load_vader(vader_folder, domains=["reddit"])


def test_split_is_disjoint_and_stratified(corpus) -> None:
    train, validation, test = corpus.split((0.7, 0.1, 0.2), seed=0)
    assert len(train) + len(validation) + len(test) == len(corpus)
    assert not set(train.texts) & set(test.texts) and not set(validation.texts) & set(test.texts)
    for name in set(corpus.domains.tolist()):
        share = (test.domains == name).sum() / (corpus.domains == name).sum()
        assert share == pytest.approx(0.2, abs=0.02)


def test_missing_vader_says_how_to_fetch(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLSAFETY_VADER", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="mlsafety values fetch"):
        load_vader()


def test_fetch_is_a_no_op_when_the_files_are_there(vader_folder) -> None:
    assert fetch_vader(vader_folder) == vader_folder  # no network: returns before calling pip


# ---------------------------------------------------------------- ETHICS
def test_ethics_utilitarianism_in_all_three_layouts_gives_the_same_pairs(tmp_path) -> None:
    original = _write_csv(tmp_path / "tar" / "ethics" / "utilitarianism" / "util_train.csv", UTIL)
    _write_csv(tmp_path / "hf1" / "utilitarianism" / "train.csv", UTIL,
               header=["baseline", "less_pleasant"])
    eleuther = tmp_path / "hf2" / "utilitarianism" / "train.jsonl"
    eleuther.parent.mkdir(parents=True)
    eleuther.write_text("\n".join(json.dumps({"activity": b, "baseline": w, "rating": ""}) for b, w in UTIL))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = [load_ethics_utilitarianism(tmp_path / "tar" / "ethics", "train"),
                  load_ethics_utilitarianism(tmp_path / "hf1", "train"),
                  load_ethics_utilitarianism(eleuther.parent.parent, "train"),
                  load_ethics_utilitarianism(original)]
    for pairs in loaded:
        assert pairs.better_texts == [b for b, _ in UTIL]
        assert pairs.worse_texts == [w for _, w in UTIL]
    assert any(issubclass(w.category, MLSafetyWarning) and "13738" in str(w.message) for w in caught)


def test_ethics_bad_files_get_one_line_errors(tmp_path) -> None:
    bad = _write_csv(tmp_path / "util_train.csv", [("a", "b", "c")], header=["x", "y", "z"])
    with pytest.raises(InvalidInputError, match="baseline,less_pleasant"):
        load_ethics_utilitarianism(bad)
    same = _write_csv(tmp_path / "same.csv", [("a", "a")])
    with pytest.raises(InvalidInputError, match="same text"):
        load_ethics_utilitarianism(same)
    with pytest.raises(DataNotFoundError, match="never downloaded"):
        load_ethics_utilitarianism(tmp_path / "missing")
    with pytest.raises(DataNotFoundError, match="util_test"):
        load_ethics_utilitarianism(tmp_path, "test")
    cm = _write_csv(tmp_path / "commonsense" / "cm_train.csv", [("1", "text")], header=["label", "scenario"])
    with pytest.raises(InvalidInputError, match="input"):
        load_ethics(cm.parent.parent, "commonsense")


def test_ethics_classification_subsets_and_groups(tmp_path) -> None:
    rows = [(str(i % 2), f"I did thing {i}.", f"because reason {i}.") for i in range(8)]
    _write_csv(tmp_path / "deontology" / "deontology_train.csv", rows, header=["label", "scenario", "excuse"])
    deontology = load_ethics(tmp_path, "deontology")
    assert deontology.texts[0] == "I did thing 0. because reason 0."
    np.testing.assert_array_equal(deontology.groups, [0, 0, 0, 0, 1, 1, 1, 1])
    virtue = [{"label": i % 2, "scenario": f"She helped {i}.", "trait": "kind", "group_id": 10 + i // 5}
              for i in range(10)]
    (tmp_path / "virtue").mkdir()
    (tmp_path / "virtue" / "train.jsonl").write_text("\n".join(json.dumps(r) for r in virtue))
    loaded = load_ethics(tmp_path, "virtue")
    assert loaded.texts[0] == "She helped 0. [SEP] kind"
    np.testing.assert_array_equal(loaded.groups, [0] * 5 + [1] * 5)
    with pytest.raises(InvalidInputError, match="utilitarianism"):
        load_ethics(tmp_path, "utilitarianism")


def test_group_exact_match_hand_computed() -> None:
    correct = [True, True, True, True, True, False, True, True]
    assert group_exact_match(correct, [0, 0, 0, 0, 1, 1, 1, 1]) == 0.5
    assert group_exact_match(correct, np.arange(8)) == pytest.approx(7 / 8)
