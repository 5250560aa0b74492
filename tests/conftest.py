"""Shared fixtures: tiny CPU models and small real data, built once per session."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mlsafety.alignment.values.vader import DOMAINS
from mlsafety.data import ImageDataset, default_splits, load_digits
from mlsafety.models import Classifier, build_architecture, load_default_classifier, train_classifier

# .ci/run repeats the trained-model tests with 1 thread: thresholds must not hinge on reduction order
torch.set_num_threads(int(os.environ.get("MLSAFETY_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def digits() -> ImageDataset:
    """scikit-learn's 1,797 handwritten digits as 1x16x16 images (real, tiny, offline)."""
    return load_digits(size=16)


@pytest.fixture(scope="session")
def digits_splits(digits: ImageDataset) -> dict[str, ImageDataset]:
    train, validation, test = digits.split([0.6, 0.2, 0.2], seed=0)
    return {"train": train, "validation": validation, "test": test}


@pytest.fixture(scope="session")
def tiny_classifier(digits_splits: dict[str, ImageDataset]) -> Classifier:
    """A width-8 SmallCNN trained for a few seconds on digits (about 90% test accuracy)."""
    torch.manual_seed(0)
    module = build_architecture("small_cnn", in_channels=1, n_classes=10, width=8).eval()
    classifier = Classifier(module, mean=[0.3], std=[0.4], class_names=digits_splits["train"].class_names,
                            input_shape=(1, 16, 16), name="tiny_cnn")
    train_classifier(classifier, digits_splits["train"], epochs=8, batch_size=64, learning_rate=1e-2,
                     progress=False, seed=0)
    return classifier


@pytest.fixture(scope="session")
def default_classifier() -> Classifier:
    """The shipped Fashion-MNIST model."""
    return load_default_classifier()


@pytest.fixture(scope="session")
def fashion_small() -> dict[str, ImageDataset]:
    """500 test and 500 validation images of Fashion-MNIST (needs the Debian package)."""
    splits = default_splits()
    return {"test": splits["test"].head(500, seed=0), "validation": splits["validation"].head(500, seed=0)}


WORDS = {"wonderful": 3.0, "great": 2.5, "lovely": 2.4, "good": 1.8, "awful": -3.0, "terrible": -2.7, "bad": -1.9,
         "sad": -2.0}
FILLER = ["the", "a", "day", "movie", "phone", "was", "this", "trip", "meal", "really"]


@pytest.fixture()
def vader_env(tmp_path, monkeypatch):
    """VADER-layout rated sentences (60 per domain) and a lexicon, generated from 8 rated words;
    ``MLSAFETY_VADER`` points at them and ``MLSAFETY_CACHE`` at a fresh folder."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "vader"
    folder.mkdir()
    seen = set()
    for name in DOMAINS.values():
        lines = []
        while len(lines) < 60:
            chosen = list(rng.choice(list(WORDS), rng.integers(1, 3), replace=False))
            text = " ".join([*rng.choice(FILLER, 4), *chosen])
            if text in seen:
                continue
            seen.add(text)
            lines.append(f"{len(lines) + 1}\t{sum(WORDS[w] for w in chosen) + rng.normal(0, 0.1):.3f}\t{text}")
        (folder / name).write_text("\r\n".join(lines), encoding="utf-8")
    (folder / "vader_sentiment_lexicon.txt").write_text("\n".join(f"{w}\t{v}\t0.5\t[]" for w, v in WORDS.items()))
    monkeypatch.setenv("MLSAFETY_VADER", str(folder))
    monkeypatch.setenv("MLSAFETY_CACHE", str(tmp_path / "cache"))
    return tmp_path
