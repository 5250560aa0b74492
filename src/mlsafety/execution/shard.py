"""Shards: independent, deterministic pieces of work, identified by a key.

A shard's randomness comes from its identity (the base seed and its key), never from the
worker that runs it or the order in which shards finish, so any executor, any number of
workers and any retry give the same result.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlsafety.exceptions import InvalidParameterError

_KEY = re.compile(r"^[A-Za-z0-9_.=+-]{1,120}$")


def shard_seed(base_seed: int, key: str) -> int:
    """A 31-bit seed derived from ``(base_seed, key)`` by SHA-256.

    The same key always gets the same seed, different keys get unrelated seeds, and the
    value fits numpy's and torch's seed ranges.

    Example
    -------
    >>> shard_seed(0, "fog-3") == shard_seed(0, "fog-3") != shard_seed(1, "fog-3")
    True
    """
    digest = hashlib.sha256(f"{int(base_seed)}/{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Shard:
    """One independent piece of work.

    Attributes
    ----------
    key : its identity, unique within one job; also its file name in a
        :class:`~mlsafety.execution.store.ShardStore` (letters, digits, ``_.=+-``).
    params : what the shard works on (a corruption and a severity, a seed of a sweep, ...).
    seed : derived from the base seed and ``key`` with :func:`shard_seed`.
    """

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not _KEY.match(self.key):
            raise InvalidParameterError(
                f"a shard key must be 1-120 letters, digits or _.=+-; got {self.key!r}. "
                "Build keys from names and numbers, e.g. 'fog-3'.")

    @classmethod
    def create(cls, key: str, base_seed: int = 0, **params: Any) -> Shard:
        """A shard whose seed is :func:`shard_seed` ``(base_seed, key)``."""
        return cls(key, dict(params), shard_seed(base_seed, key))
