"""The VADER ground-truth sentences: 23,703 texts, each with the mean of about 20 human
valence ratings on -4 (extremely negative) .. +4 (extremely positive).

Hutto & Gilbert (2014), "VADER: A Parsimonious Rule-based Model for Sentiment Analysis of
Social Media Text", ICWSM. Four domains: tweets (4,200), movie-review snippets (10,605),
New York Times editorial snippets (5,190) and Amazon review snippets (3,708). MIT licence.

The files sit inside the ``vaderSentiment==3.3.2`` *source* distribution on PyPI
(``additional_resources/hutto_ICWSM_2014.tar.gz``; they are not in the wheel).
:func:`fetch_vader` fetches it once at set-up time (``make install`` calls it) with
``pip download`` (``mlsafety values fetch``); :func:`load_vader` then only reads local files and never touches the
network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlsafety.exceptions import DataNotFoundError, InvalidInputError

VADER_VERSION = "3.3.2"
DOMAINS: dict[str, str] = {
    "tweets": "tweets_GroundTruth.txt",
    "movie_reviews": "movieReviewSnippets_GroundTruth.txt",
    "nyt_editorials": "nytEditorialSnippets_GroundTruth.txt",
    "amazon_reviews": "amazonReviewSnippets_GroundTruth.txt",
}
EXPECTED_SIZES = {"tweets": 4200, "movie_reviews": 10605, "nyt_editorials": 5190, "amazon_reviews": 3708}
LEXICON_FILE = "vader_sentiment_lexicon.txt"
FETCH_HINT = (
    "Fetch it once with `mlsafety values fetch` (runs `pip download vaderSentiment==3.3.2` from PyPI), or set "
    "MLSAFETY_VADER to a folder holding the hutto_ICWSM_2014 files."
)


def vader_dir() -> Path:
    """Where the VADER files live: ``$MLSAFETY_VADER`` or ``cache_dir()/vader/hutto_ICWSM_2014``."""
    from mlsafety.models.default import cache_dir

    env = os.environ.get("MLSAFETY_VADER")
    return Path(env) if env else cache_dir() / "vader" / "hutto_ICWSM_2014"


def fetch_vader(target: str | Path | None = None, timeout: float = 300.0) -> Path:
    """Download the vaderSentiment source distribution with pip and extract the data.

    Runs ``pip download --no-deps --no-binary :all: vaderSentiment==3.3.2`` into a
    temporary folder, then extracts ``additional_resources/hutto_ICWSM_2014.tar.gz`` into
    ``target`` (default :func:`vader_dir`). Does nothing when the files are already there.

    Returns
    -------
    Path
        The folder holding the four ``*_GroundTruth.txt`` files and the lexicon.
    """
    target = Path(target) if target is not None else vader_dir()
    if all((target / name).is_file() for name in DOMAINS.values()):
        return target
    with tempfile.TemporaryDirectory() as workdir:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   f"vaderSentiment=={VADER_VERSION}", "-d", workdir]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        archives = sorted(Path(workdir).glob("vaderSentiment-*.tar.gz"))
        if done.returncode != 0 or not archives:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no archive"]
            raise DataNotFoundError(f"could not download vaderSentiment=={VADER_VERSION} from PyPI: {last[0]}")
        with tarfile.open(archives[0]) as sdist:
            member = next((m for m in sdist.getmembers()
                           if m.name.endswith("additional_resources/hutto_ICWSM_2014.tar.gz")), None)
            if member is None:
                raise DataNotFoundError("the vaderSentiment source distribution has no hutto_ICWSM_2014.tar.gz.")
            inner = sdist.extractfile(member)
            assert inner is not None  # a regular file member always has a stream
            staging = Path(workdir) / "staging"
            with tarfile.open(fileobj=inner, mode="r:gz") as data:
                for item in data.getmembers():
                    name = Path(item.name).name
                    if item.isfile() and (name in DOMAINS.values() or name == LEXICON_FILE
                                          or name.endswith("_anonDataRatings.txt") or name == "_README_.txt"):
                        stream = data.extractfile(item)
                        assert stream is not None
                        staging.mkdir(parents=True, exist_ok=True)
                        (staging / name).write_bytes(stream.read())
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), str(target))
    return target


@dataclass
class RatedTexts:
    """Texts with a human rating each (higher = more pleasant / more positive).

    Attributes
    ----------
    texts : list of str
    ratings : ndarray (N,), float64
    domains : ndarray (N,) of str
    ids : list of str
    """

    texts: list[str]
    ratings: np.ndarray
    domains: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: np.ndarray | list[int]) -> RatedTexts:
        index = np.asarray(index, dtype=np.int64)
        return RatedTexts([self.texts[i] for i in index], self.ratings[index], self.domains[index],
                          [self.ids[i] for i in index])

    def domain(self, name: str) -> RatedTexts:
        return self.subset(np.flatnonzero(self.domains == name))

    def split(self, fractions: tuple[float, ...] = (0.7, 0.1, 0.2), seed: int = 0) -> list[RatedTexts]:
        """Disjoint random splits of the *texts* (so no text appears in two splits' pairs),
        stratified by domain."""
        rng = np.random.default_rng(seed)
        parts: list[list[int]] = [[] for _ in fractions]
        total = float(sum(fractions))
        for name in sorted(set(self.domains.tolist())):
            index = rng.permutation(np.flatnonzero(self.domains == name))
            bounds = np.round(np.cumsum(fractions) / total * len(index)).astype(int)
            start = 0
            for part, stop in zip(parts, bounds):
                part.extend(index[start:stop].tolist())
                start = stop
        return [self.subset(np.sort(np.asarray(p, dtype=np.int64))) for p in parts]


def _read_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.splitlines()


def load_vader(path: str | Path | None = None, domains: list[str] | None = None) -> RatedTexts:
    """Load the VADER ground-truth sentences from local files (never from the network).

    Parameters
    ----------
    path : path, optional
        Folder holding the ``*_GroundTruth.txt`` files (default :func:`vader_dir`).
    domains : list of str, optional
        Subset of ``tweets``, ``movie_reviews``, ``nyt_editorials``, ``amazon_reviews``.

    Raises
    ------
    DataNotFoundError
        If the files are not there (the message says how to fetch them).
    """
    folder = Path(path) if path is not None else vader_dir()
    wanted = list(DOMAINS) if domains is None else domains
    unknown = [d for d in wanted if d not in DOMAINS]
    if unknown:
        raise InvalidInputError(f"unknown VADER domain(s) {unknown}; choose from {list(DOMAINS)}.")
    texts: list[str] = []
    ratings: list[float] = []
    names: list[str] = []
    ids: list[str] = []
    for domain in wanted:
        file = folder / DOMAINS[domain]
        if not file.is_file():
            raise DataNotFoundError(f"VADER ground-truth file {str(file)!r} not found. {FETCH_HINT}")
        for number, line in enumerate(_read_lines(file), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 3:
                raise InvalidInputError(f"{file}:{number}: expected id<TAB>rating<TAB>text; got {line[:60]!r}.")
            text = "\t".join(fields[2:]).strip()
            if not text:
                continue
            ids.append(f"{domain}/{fields[0].strip()}")
            ratings.append(float(fields[1]))
            texts.append(text)
            names.append(domain)
    return RatedTexts(texts, np.asarray(ratings, dtype=np.float64), np.asarray(names), ids)


def load_lexicon(path: str | Path | None = None) -> dict[str, float]:
    """The VADER lexicon: token -> mean human valence of ten raters on -4..+4."""
    folder = Path(path) if path is not None else vader_dir()
    file = folder / LEXICON_FILE
    if not file.is_file():
        raise DataNotFoundError(f"VADER lexicon {str(file)!r} not found. {FETCH_HINT}")
    lexicon: dict[str, float] = {}
    for line in _read_lines(file):
        fields = line.split("\t")
        if len(fields) >= 2:
            try:
                lexicon[fields[0].strip()] = float(fields[1])
            except ValueError:
                continue
    return lexicon
