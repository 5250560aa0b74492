"""Small generated data for the value-learning tests (no network, no real encoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlsafety.alignment.values.vader import DOMAINS, RatedTexts

POSITIVE = {"wonderful": 3.0, "great": 2.5, "lovely": 2.5, "happy": 2.2, "good": 1.8, "nice": 1.6, "fun": 1.5}
NEGATIVE = {"awful": -3.0, "terrible": -2.8, "sad": -2.0, "bad": -1.9, "boring": -1.4, "ugly": -2.0, "hate": -2.7}
NEUTRAL = ["the", "a", "day", "movie", "phone", "city", "it", "was", "this", "meeting", "train", "book", "really"]
LEXICON = {**POSITIVE, **NEGATIVE}


def make_corpus(n: int = 400, seed: int = 0, domains: tuple[str, ...] = ("tweets", "movie_reviews")) -> RatedTexts:
    """Sentences of neutral words plus 0-2 sentiment words; rating = clipped sum of the
    sentiment words' valences + small noise (a hidden utility that a bag of words can learn)."""
    rng = np.random.default_rng(seed)
    words = list(LEXICON)
    texts, ratings = [], []
    seen = set()
    while len(texts) < n:
        body = list(rng.choice(NEUTRAL, rng.integers(3, 7)))
        chosen = list(rng.choice(words, rng.integers(0, 3), replace=False))
        for w in chosen:
            body.insert(int(rng.integers(0, len(body) + 1)), w)
        text = " ".join(body)
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        ratings.append(float(np.clip(sum(LEXICON[w] for w in chosen) + rng.normal(0, 0.2), -4, 4)))
    doms = np.asarray([domains[i % len(domains)] for i in range(n)])
    return RatedTexts(texts, np.asarray(ratings), doms, [f"{d}/{i}" for i, d in enumerate(doms)])


def write_vader_files(folder: Path, corpus: RatedTexts) -> Path:
    """Write ``corpus`` in the VADER ground-truth layout (id<TAB>rating<TAB>text, CRLF), plus a lexicon."""
    folder.mkdir(parents=True, exist_ok=True)
    for domain, name in DOMAINS.items():
        part = corpus.domain(domain)
        lines = [f"{i + 1}\t{r}\t{t}" for i, (r, t) in enumerate(zip(part.ratings, part.texts))]
        (folder / name).write_bytes("\r\n".join(lines).encode("utf-8"))
    lexicon = [f"{w}\t{v}\t0.5\t[{int(v)}, {int(v)}]" for w, v in LEXICON.items()]
    (folder / "vader_sentiment_lexicon.txt").write_text("\n".join(lexicon) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def corpus() -> RatedTexts:
    return make_corpus(400, seed=0, domains=tuple(DOMAINS))


@pytest.fixture(scope="session")
def vader_folder(tmp_path_factory: pytest.TempPathFactory, corpus: RatedTexts) -> Path:
    return write_vader_files(tmp_path_factory.mktemp("vader"), corpus)


@pytest.fixture(scope="session")
def corpus_factory():
    """``make_corpus`` as a fixture (test modules cannot import conftest)."""
    return make_corpus


@pytest.fixture(scope="session")
def vader_writer():
    return write_vader_files
