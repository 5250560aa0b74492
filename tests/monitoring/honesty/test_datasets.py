"""Statement sets: generated topics are large, balanced and split by entity; users' CSVs are checked."""

from __future__ import annotations

import numpy as np
import pytest

from mlsafety.exceptions import DataNotFoundError, InvalidInputError
from mlsafety.monitoring.honesty.datasets import STATEMENT_SETS, load_statements_csv, make_statements


@pytest.mark.parametrize("name", STATEMENT_SETS.names())
def test_generated_sets_are_large_balanced_and_split_by_entity(name):
    statements = make_statements(name)
    assert len(statements) >= 1000
    assert statements.labels.mean() == 0.5
    assert len(set(statements.texts)) == len(statements)
    train, test = statements.split(0.3, seed=0)
    assert not set(train.entities) & set(test.entities)
    assert 0.2 < len(test) / len(statements) < 0.4
    again = make_statements(name)
    assert again.texts == statements.texts


def test_sample_keeps_whole_entities_and_balance():
    statements = make_statements("cities", n=200, seed=1)
    assert 200 <= len(statements) <= 202
    assert statements.labels.mean() == 0.5
    assert statements.fingerprint() != make_statements("cities", n=200, seed=2).fingerprint()


def test_negation_flips_the_truth():
    plain, negated = make_statements("cities"), make_statements("neg_cities")
    assert plain.texts[0].replace(" is in ", " is not in ") == negated.texts[1]
    assert plain.labels[0] == 1 and negated.labels[1] == 0
    assert "GeoNames" in plain.attribution and "CC BY 4.0" in plain.attribution


def test_csv_round_trip(tmp_path):
    path = tmp_path / "facts.csv"
    path.write_text("statement,label\nParis is in France.,1\nParis is in Peru.,0\nRome is in Italy.,true\n"
                    "Rome is in Chad.,false\n")
    statements = load_statements_csv(path)
    assert statements.texts[0] == "Paris is in France."
    assert statements.labels.tolist() == [1, 0, 1, 0]
    assert statements.name == "facts"


@pytest.mark.parametrize(
    ("content", "message"),
    [("text,truth\na,1\n", "lacks the column"), ("statement,label\na,1\nb,1\n", "both true"),
     ("statement,label\na,maybe\n", "not boolean")],
)
def test_bad_csv_gives_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=message) as error:
        load_statements_csv(path)
    assert "\n" not in str(error.value)


def test_missing_csv(tmp_path):
    with pytest.raises(DataNotFoundError):
        load_statements_csv(tmp_path / "none.csv")


def test_too_small_to_split(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("statement,label\na,1\nb,0\nc,1\n")
    with pytest.raises(InvalidInputError, match="too small to split"):
        load_statements_csv(path).split()


def test_split_never_shares_an_entity_even_with_many_statements_each(planted):
    train, test = planted.split(0.5, seed=4)
    assert not set(train.entities) & set(test.entities)
    assert set(np.unique(train.labels)) == set(np.unique(test.labels)) == {0, 1}
