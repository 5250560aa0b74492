"""An atomic, resumable store of shard results: one JSON file per finished shard.

It extends the audit's ``results/<check>.json`` design to shards: a result is written
(through a temporary file and a rename) the moment it arrives, so a killed worker costs
only the shard it was running and a killed driver resumes from every finished shard.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mlsafety._io import atomic_write_text
from mlsafety.execution.shard import Shard

logger = logging.getLogger(__name__)


class ShardStore:
    """Finished shard results of one job in ``folder`` (``<key>.json`` each).

    The folder name should carry a hash of everything that changes the results (the
    caller's configuration), so a store is never reused for other settings. Values must be
    JSON-serialisable (numbers, strings, lists, dicts; NaN and infinities are kept).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, shard: Shard) -> Path:
        return self.folder / f"{shard.key}.json"

    def load(self, shard: Shard) -> tuple[bool, Any]:
        """``(True, value)`` for a finished shard, ``(False, None)`` otherwise (also for an
        unreadable file, which is then recomputed)."""
        path = self.path(shard)
        if not path.is_file():
            return False, None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            logger.warning("ignoring unreadable shard result %s", path)
            return False, None
        if not isinstance(record, dict) or record.get("key") != shard.key or "value" not in record:
            return False, None
        return True, record["value"]

    def save(self, shard: Shard, value: Any) -> None:
        atomic_write_text(self.path(shard), json.dumps({"key": shard.key, "seed": shard.seed, "value": value}))

    def finished(self) -> list[str]:
        """Keys of the shards stored so far."""
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.is_dir() else []
