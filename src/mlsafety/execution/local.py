"""The default executor: every shard in this process, one after the other, in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mlsafety.execution.base import EXECUTORS, Executor, ShardError, Task


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """Runs shards in-process, in the order given (the behaviour before executors existed).

    An exception of a shard function is recorded as a :class:`ShardError` and the other
    shards still run, as under a distributed executor.
    """

    name = "local"

    def __init__(self) -> None:
        self.workers = 1

    @property
    def is_local(self) -> bool:
        return True

    def _execute(self, tasks: Sequence[Task], deliver: Callable[[int, Any], None]) -> None:
        for index, task in enumerate(tasks):
            try:
                value = task.function(task.shard, task.shared.ref if task.shared is not None else None)
            except Exception as error:  # recorded per shard, like a failed remote task
                value = ShardError(task.shard, error)
            deliver(index, value)
