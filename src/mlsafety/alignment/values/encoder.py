"""The text-encoder protocol shared by every encoder in :data:`mlsafety.registry.ENCODERS`.

An encoder maps a list of texts to a float32 tensor of shape (N, D). Subclasses implement
:meth:`TextEncoder._encode` on a batch of validated texts; :meth:`TextEncoder.encode`
adds input validation and the disk cache (:class:`EmbeddingCache`), keyed by a hash of
the text and the encoder's :attr:`fingerprint`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from mlsafety.alignment.values.cache import EmbeddingCache, text_hash
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError


def check_texts(texts: object, name: str = "texts", *, allow_blank: bool = False) -> list[str]:
    """Validate a non-empty sequence of strings (a single string is refused, not split)."""
    if isinstance(texts, str):
        raise InvalidInputError(f"`{name}` must be a list of strings; got one string. Wrap it: [{texts[:30]!r}].")
    try:
        items = list(texts)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidInputError(f"`{name}` must be a list of strings; got {type(texts).__name__}.") from None
    if not items:
        raise InvalidInputError(f"`{name}` is empty; pass at least one text.")
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidInputError(
                f"`{name}[{index}]` must be a string; got {type(item).__name__}. Convert with str() or drop it."
            )
        if not allow_blank and not item.strip():
            raise InvalidInputError(f"`{name}[{index}]` is an empty text; remove empty texts before encoding.")
    return items


class TextEncoder(ParamsMixin, ABC):
    """Maps texts to fixed-size embeddings: ``encode(texts) -> Tensor (N, D)``.

    Subclasses set :attr:`fingerprint` (what makes two encoders produce the same vectors)
    and implement :meth:`_encode`. ``cache`` (a constructor argument of every subclass)
    turns the disk cache on or off.
    """

    registry_name: ClassVar[str] = ""
    cache: bool = False
    cache_root: str | Path | None = None
    batch_size: int = 64

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """A string identifying the encoder and its settings (the cache namespace)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """The embedding size D."""

    @abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` (float32, shape (len(texts), D))."""

    def _cache(self) -> EmbeddingCache:
        store = getattr(self, "_cache_store", None)
        if store is None or store.fingerprint != self.fingerprint:
            from mlsafety.models.default import cache_dir

            root = Path(self.cache_root) if self.cache_root is not None else cache_dir() / "embeddings"
            store = EmbeddingCache(root, self.fingerprint)
            self._cache_store = store
        return store

    def encode(self, texts: Sequence[str], *, cache: bool | None = None) -> torch.Tensor:
        """Embed ``texts``.

        Parameters
        ----------
        texts : list of str
            Non-empty texts.
        cache : bool, optional
            Override the encoder's ``cache`` setting for this call (the Goodhart optimiser
            turns it off for its throw-away candidate edits).

        Returns
        -------
        Tensor, shape (N, D), float32 on the CPU.

        Raises
        ------
        InvalidInputError
            If ``texts`` is empty, not a list of strings, or holds an empty text.
        """
        items = check_texts(texts)
        use_cache = self.cache if cache is None else cache
        if not use_cache:
            return torch.from_numpy(self._encode_batched(items))
        store = self._cache()
        # deduplicate so a text repeated in one call is encoded once
        unique = list(dict.fromkeys(items))
        keys = [text_hash(t) for t in unique]
        found, missing = store.get(keys)
        chunk = max(1, int(self.batch_size)) * 16
        for start in range(0, len(missing), chunk):
            # one shard per chunk, so an interrupted long run keeps what it has computed
            indices = missing[start : start + chunk]
            new = self._encode([unique[i] for i in indices]).astype(np.float32, copy=False)
            store.put([keys[i] for i in indices], new)
            for position, index in enumerate(indices):
                found[index] = new[position]
        row_of = {text: found[i] for i, text in enumerate(unique)}
        return torch.from_numpy(np.stack([row_of[t] for t in items]).astype(np.float32, copy=False))

    def _encode_batched(self, texts: list[str]) -> np.ndarray:
        chunk = max(1, int(self.batch_size)) * 16
        parts = [self._encode(texts[i : i + chunk]) for i in range(0, len(texts), chunk)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return self.encode(texts)
