"""Labelled true/false statements, split by entity, and the registry of statement generators."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlsafety._io import not_text_table_error
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, parameter_error
from mlsafety.registry import Registry

STATEMENT_SETS: Registry = Registry("statement set", "mlsafety.monitoring.honesty.datasets")
"""Generators ``(n, seed) -> Statements``, one file per topic."""


@dataclass
class Statements:
    """True/false statements with the entity each is about.

    Attributes
    ----------
    texts : list of str
        One statement each ("The city of Lyon is in France.").
    labels : numpy.ndarray of int, shape (N,)
        1 for true, 0 for false.
    entities : list of str
        The entity each statement is about (a city, a number pair); splits never put one
        entity on both sides.
    name : str
        Name of the set ("cities").
    topic : str
        Topic for leave-one-topic-out evaluation (``cities`` and ``neg_cities`` share one).
    attribution : str
        Source and licence of the underlying facts, if any.
    """

    texts: list[str]
    labels: np.ndarray
    entities: list[str]
    name: str = "statements"
    topic: str = ""
    attribution: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if not self.topic:
            self.topic = self.name
        if not (len(self.texts) == len(self.labels) == len(self.entities)):
            raise InvalidInputError(
                f"statement set {self.name!r} has {len(self.texts)} texts, {len(self.labels)} labels and "
                f"{len(self.entities)} entities; they must be equal in number."
            )

    def __len__(self) -> int:
        return len(self.texts)

    def fingerprint(self) -> str:
        """Hash of the texts and labels (keys the activation cache together with the model)."""
        digest = hashlib.sha256()
        for text, label in zip(self.texts, self.labels.tolist(), strict=True):
            digest.update(f"{label}\t{text}\n".encode())
        return digest.hexdigest()[:16]

    def subset(self, index: Sequence[int] | np.ndarray, name: str | None = None) -> Statements:
        index = np.asarray(index, dtype=np.int64)
        return Statements(
            texts=[self.texts[i] for i in index],
            labels=self.labels[index],
            entities=[self.entities[i] for i in index],
            name=name or self.name,
            topic=self.topic,
            attribution=self.attribution,
            meta=dict(self.meta),
        )

    def check_two_classes(self, what: str = "statements") -> None:
        counts = np.bincount(self.labels, minlength=2)
        if len(counts) > 2 or counts[0] == 0 or counts[1] == 0:
            raise InvalidInputError(
                f"{what} {self.name!r} must hold both true (1) and false (0) statements; got "
                f"{int(counts[1])} true and {int(counts[0])} false. Add statements of the missing class."
            )

    def split(self, test_fraction: float = 0.3, seed: int = 0) -> tuple[Statements, Statements]:
        """Split by entity: every entity's statements go to train or to test, never both.

        Raises
        ------
        InvalidInputError
            If there are fewer than 4 entities, or a side would lack one class.
        """
        if not 0.0 < test_fraction < 1.0:
            raise parameter_error("test_fraction", "Statements.split", "in (0, 1)", test_fraction)
        self.check_two_classes()
        unique = sorted(set(self.entities))
        if len(unique) < 4 or len(self) < 8:
            raise InvalidInputError(
                f"statement set {self.name!r} is too small to split by entity: {len(self)} statements about "
                f"{len(unique)} entities; need at least 8 statements about 4 entities. Add more statements."
            )
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(unique))
        n_test = min(len(unique) - 2, max(2, round(test_fraction * len(unique))))
        test_entities = {unique[i] for i in order[:n_test]}
        is_test = np.array([entity in test_entities for entity in self.entities])
        train = self.subset(np.flatnonzero(~is_test))
        test = self.subset(np.flatnonzero(is_test))
        for part, side in ((train, "training"), (test, "test")):
            if len(np.unique(part.labels)) < 2:
                raise InvalidInputError(
                    f"the {side} split of {self.name!r} holds one class only; the set is too small or too "
                    "unbalanced to split by entity. Add statements of both classes for more entities."
                )
        return train, test


def balanced_sample(statements: Statements, n: int | None, seed: int) -> Statements:
    """At most ``n`` statements, whole entities at a time, true and false kept balanced."""
    if n is None or n >= len(statements):
        return statements
    rng = np.random.default_rng(seed)
    unique = sorted(set(statements.entities))
    keep: set[str] = set()
    count: dict[str, int] = {}
    for entity in statements.entities:
        count[entity] = count.get(entity, 0) + 1
    total = 0
    for i in rng.permutation(len(unique)):
        if total >= n:
            break
        keep.add(unique[i])
        total += count[unique[i]]
    index = [i for i, entity in enumerate(statements.entities) if entity in keep]
    return statements.subset(index)


def load_statements_csv(path: str | Path, name: str | None = None) -> Statements:
    """Read a user CSV with columns ``statement,label`` (and optionally ``entity``, ``topic``).

    Labels may be 1/0, true/false or yes/no. Without an ``entity`` column each statement is its
    own entity.

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    InvalidInputError
        If a column is missing, a label is not boolean, or only one class is present.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"statement CSV {str(path)!r} does not exist; pass a CSV with columns statement,label.")
    truthy = {"1", "true", "yes", "t", "y"}
    falsy = {"0", "false", "no", "f", "n"}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise not_text_table_error(f"statement CSV {str(path)!r}", error) from None
    columns = [c.strip().lower() for c in header]
    missing = [c for c in ("statement", "label") if c not in columns]
    if missing:
        raise InvalidInputError(
            f"statement CSV {str(path)!r} lacks the column(s) {', '.join(missing)}; got columns "
            f"{columns or 'none'}. Write a header line 'statement,label' (label 1 = true, 0 = false)."
        )
    texts: list[str] = []
    labels: list[int] = []
    entities: list[str] = []
    topics: set[str] = set()
    for line, raw_row in enumerate(rows, start=2):
        if None in raw_row:  # DictReader files surplus cells under the key None
            raise InvalidInputError(
                f"line {line} of {str(path)!r} has more cells than the header; quote statements that hold commas."
            )
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw_row.items()}
        text, raw = row["statement"], row["label"].lower()
        if not text:
            continue
        if raw in truthy:
            labels.append(1)
        elif raw in falsy:
            labels.append(0)
        else:
            raise InvalidInputError(
                f"label {row['label']!r} on line {line} of {str(path)!r} is not boolean; use 1/0 or true/false."
            )
        texts.append(text)
        entities.append(row.get("entity") or text)
        if row.get("topic"):
            topics.add(row["topic"])
    statements = Statements(texts, np.array(labels, dtype=np.int64), entities, name=name or path.stem,
                            topic=topics.pop() if len(topics) == 1 else "")
    statements.check_two_classes(f"statement CSV {str(path)!r}:")
    return statements


def write_statements_csv(statements: Statements, path: str | Path) -> None:
    """Write ``statement,label,entity,topic`` (readable by :func:`load_statements_csv`)."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["statement", "label", "entity", "topic"])
        for text, label, entity in zip(statements.texts, statements.labels.tolist(), statements.entities, strict=True):
            writer.writerow([text, label, entity, statements.topic])


def make_statements(name: str, n: int | None = None, seed: int = 0) -> Statements:
    """Generate the statement set registered as ``name`` (at most ``n`` statements, balanced)."""
    generator = STATEMENT_SETS.get(name)
    return balanced_sample(generator(seed=seed), n, seed)


def pairs_to_statements(
    rows: list[tuple[str, str, str]], *, name: str, topic: str = "", attribution: str = ""
) -> Statements:
    """Build a set from ``(true text, false text, entity)`` rows: one true and one false per entity."""
    texts: list[str] = []
    labels: list[int] = []
    entities: list[str] = []
    for true_text, false_text, entity in rows:
        texts += [true_text, false_text]
        labels += [1, 0]
        entities += [entity, entity]
    return Statements(texts, np.array(labels), entities, name=name, topic=topic, attribution=attribution)
