"""A fast deterministic bag-of-n-grams encoder (the feature-hashing baseline).

Weinberger, Dasgupta, Langford, Smola & Attenberg (2009), "Feature Hashing for Large Scale
Multitask Learning": token ``t`` adds ``s(t)`` to coordinate ``h(t) mod D``, with a sign
``s(t) in {-1, +1}`` from a second hash so that collisions cancel in expectation; the
vector is then L2-normalised. Hashes come from BLAKE2b, so embeddings are identical across
processes and machines (Python's own ``hash`` is salted per process).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from mlsafety._validation import check_positive
from mlsafety.alignment.values.encoder import TextEncoder
from mlsafety.registry import ENCODERS

_TOKEN = re.compile(r"[a-z0-9']+|[!?]|[:;=][-']?[()dpDP]")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens, plus ``!``, ``?`` and simple emoticons."""
    return _TOKEN.findall(text.lower())


@ENCODERS.register("hashing")
class HashingEncoder(TextEncoder):
    """Signed feature hashing of word unigrams and bigrams, L2-normalised.

    Parameters
    ----------
    n_features : int
        Embedding size D.
    ngram_range : tuple of int
        Smallest and largest n-gram length.
    seed : int
        Salt of the hash; different seeds give different (equally good) embeddings.
    cache : bool
        Use the disk cache (off by default: hashing is faster than reading a cache).
    cache_root : path, optional
        Cache folder (default ``cache_dir()/embeddings``).

    Example
    -------
    >>> HashingEncoder(n_features=64).encode(["a good day", "a bad day"]).shape
    torch.Size([2, 64])
    """

    def __init__(self, n_features: int = 1024, ngram_range: tuple[int, int] = (1, 2), seed: int = 0,
                 cache: bool = False, cache_root: str | None = None) -> None:
        self.n_features = n_features
        self.ngram_range = ngram_range
        self.seed = seed
        self.cache = cache
        self.cache_root = cache_root

    @property
    def fingerprint(self) -> str:
        return f"hashing:d={self.n_features}:ngram={tuple(self.ngram_range)}:seed={self.seed}"

    @property
    def dim(self) -> int:
        return int(check_positive(self.n_features, "n_features", "HashingEncoder", integer=True))

    def _bucket(self, token: str) -> tuple[int, float]:
        digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8, salt=str(self.seed).encode()[:16]).digest()
        value = int.from_bytes(digest, "little")
        return (value >> 1) % self.dim, 1.0 if value & 1 else -1.0

    def _encode(self, texts: list[str]) -> np.ndarray:
        low, high = self.ngram_range
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
            from mlsafety.exceptions import parameter_error

            raise parameter_error("ngram_range", "HashingEncoder", "(low, high) with 1 <= low <= high",
                                  self.ngram_range)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        memo: dict[str, tuple[int, float]] = {}
        for row, text in enumerate(texts):
            tokens = tokenize(text)
            for n in range(low, high + 1):
                for start in range(len(tokens) - n + 1):
                    gram = " ".join(tokens[start : start + n])
                    if gram not in memo:
                        memo[gram] = self._bucket(gram)
                    column, sign = memo[gram]
                    out[row, column] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
