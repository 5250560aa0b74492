"""A disk cache of text embeddings keyed by a hash of the text.

Embeddings of the same text by the same encoder never change, so they are computed once
and kept under ``cache_dir()/embeddings/<encoder fingerprint>/``. The cache is a set of
shard files (``.npz`` with the text hashes and a float32 matrix); each call to
:meth:`EmbeddingCache.put` writes one new shard through a temporary file and an atomic
rename, so concurrent writers never corrupt each other and an interrupted run loses at
most its last shard. Small shards are merged once there are many of them.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def text_hash(text: str) -> str:
    """SHA-256 of the UTF-8 text (hex, 64 characters): the cache key of one text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _safe_name(fingerprint: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", fingerprint)[:60]
    return f"{readable}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}"


class EmbeddingCache:
    """Embeddings of one encoder on disk, keyed by :func:`text_hash`.

    Parameters
    ----------
    root : path
        The cache folder of all encoders (``cache_dir() / "embeddings"`` by default).
    fingerprint : str
        Identifies the encoder and its settings; different fingerprints never share rows.
    max_shards : int
        Merge the shards into one when there are more than this many.
    """

    def __init__(self, root: str | Path, fingerprint: str, max_shards: int = 32) -> None:
        self.root = Path(root)
        self.fingerprint = fingerprint
        self.max_shards = max_shards
        self.directory = self.root / _safe_name(fingerprint)
        self._rows: dict[str, np.ndarray] = {}
        self._seen: set[str] = set()

    def _shards(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.npz"))

    def _refresh(self) -> None:
        """Load the shards written since the last refresh (by this or another process)."""
        for shard in self._shards():
            if shard.name in self._seen:
                continue
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys, values = data["keys"], data["values"]
            except (OSError, ValueError, KeyError):
                continue  # a shard being merged away by another process; it will reappear
            self._seen.add(shard.name)
            for key, row in zip(keys.tolist(), values):
                self._rows[key] = row

    def __len__(self) -> int:
        self._refresh()
        return len(self._rows)

    def get(self, keys: Sequence[str]) -> tuple[dict[int, np.ndarray], list[int]]:
        """Cached rows by position in ``keys``, and the positions that are missing."""
        self._refresh()
        found, missing = {}, []
        for index, key in enumerate(keys):
            row = self._rows.get(key)
            if row is None:
                missing.append(index)
            else:
                found[index] = row
        return found, missing

    def put(self, keys: Sequence[str], values: np.ndarray) -> None:
        """Store rows (``values[i]`` is the embedding of the text with hash ``keys[i]``)."""
        if len(keys) == 0:
            return
        values = np.asarray(values, dtype=np.float32)
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.npz"
        self._write(self.directory / name, np.asarray(list(keys)), values)
        self._seen.add(name)
        for key, row in zip(keys, values):
            self._rows[key] = row
        if len(self._shards()) > self.max_shards:
            self._merge()

    @staticmethod
    def _write(path: Path, keys: np.ndarray, values: np.ndarray) -> None:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, keys=keys, values=values)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _merge(self) -> None:
        self._refresh()
        old = [shard for shard in self._shards() if shard.name in self._seen]
        keys = list(self._rows)
        name = f"merged-{uuid.uuid4().hex}.npz"
        self._write(self.directory / name, np.asarray(keys), np.stack([self._rows[k] for k in keys]))
        self._seen.add(name)
        for shard in old:
            shard.unlink(missing_ok=True)

    def clear(self) -> None:
        """Delete every shard of this encoder."""
        for shard in self._shards():
            shard.unlink(missing_ok=True)
        self._rows.clear()
        self._seen.clear()
