"""Executors: run independent, deterministic shards in this process or on a Ray cluster.

Work that splits (corruption cells, audit checks, sweep seeds) is described as
:class:`Shard` s and a module-level function ``function(shard, shared)``; an executor runs
them and returns the results in order, saving each to a :class:`ShardStore` as it arrives.

>>> from mlsafety.execution import LocalExecutor, Shard
>>> def square(shard, shared):
...     return shard.params["x"] ** 2 + shared
>>> LocalExecutor().map(square, [Shard.create(f"x{i}", x=i) for i in range(3)], shared=1)
[1, 2, 5]

``RayExecutor`` (``pip install 'mlsafety[ray]'``) imports Ray only when it starts.
"""

from mlsafety.execution.base import (
    EXECUTORS,
    Executor,
    ExecutorUnavailableError,
    ShardError,
    Shared,
    Task,
)
from mlsafety.execution.local import LocalExecutor
from mlsafety.execution.ray_executor import RayExecutor
from mlsafety.execution.shard import Shard, shard_seed
from mlsafety.execution.store import ShardStore

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorUnavailableError",
    "LocalExecutor",
    "RayExecutor",
    "Shard",
    "ShardError",
    "ShardStore",
    "Shared",
    "Task",
    "make_executor",
    "shard_seed",
]


def make_executor(name: str = "local", address: str | None = None, workers: int | None = None,
                  device: str | None = None) -> Executor:
    """The executor a command line asks for: ``local`` or ``ray`` (requesting one GPU per
    shard when ``device`` is CUDA)."""
    if name == "local":
        return LocalExecutor()
    cls = EXECUTORS.get(name)
    if cls is RayExecutor:
        executor = RayExecutor(address, workers)
        if device is not None:
            executor.use_device(device)
        return executor
    return cls()
