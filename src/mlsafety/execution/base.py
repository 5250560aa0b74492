"""The executor abstraction: run independent shards somewhere, collect their results.

An :class:`Executor` runs :class:`Task` s (a module-level function, a :class:`Shard` and a
handle to data shared by many shards) and hands each result back as it arrives. The
shared data (a model, images) is registered once with :meth:`Executor.share`; a
distributed executor puts it in its object store once instead of shipping it per shard.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from mlsafety.exceptions import MLSafetyError
from mlsafety.execution.shard import Shard
from mlsafety.execution.store import ShardStore
from mlsafety.registry import Registry

#: shard function: ``function(shard, shared) -> result``; module-level, so workers can import it
ShardFunction = Callable[[Shard, Any], Any]

EXECUTORS: Registry[type[Executor]] = Registry("executor", "mlsafety.execution")


class ExecutorUnavailableError(MLSafetyError):
    """The executor cannot run here: its engine is not installed, or the cluster is unreachable."""


@dataclass(frozen=True)
class Shared:
    """A handle to data shared by many shards (the value itself, or a reference to it in an
    object store)."""

    ref: Any


@dataclass(frozen=True)
class Task:
    """``function(shard, shared)``, with its result kept in ``store`` when one is given."""

    function: ShardFunction
    shard: Shard
    shared: Shared | None = None
    store: ShardStore | None = None


@dataclass(frozen=True)
class ShardError:
    """A shard whose function raised (after the executor's retries); ``error`` is the
    original exception."""

    shard: Shard
    error: BaseException

    def __str__(self) -> str:
        return f"shard {self.shard.key!r}: {type(self.error).__name__}: {self.error}"


#: ``on_result(task, value, resumed)``: called once per task, in arrival order
ResultCallback = Callable[[Task, Any, bool], None]


def current_threads() -> int | None:
    """The driver's torch thread count (None when torch is not imported)."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


class Executor(ABC):
    """Runs tasks and returns their results in the order given.

    Subclasses implement :meth:`_execute` (and :meth:`share` when shared data must be
    placed somewhere). Register with ``@EXECUTORS.register("<name>")``.
    """

    name: ClassVar[str]
    #: how many shards run at once
    workers: int = 1

    def share(self, value: Any) -> Shared:
        """Register ``value`` (model, data) for many shards; returns the handle tasks carry."""
        return Shared(value)

    @abstractmethod
    def _execute(self, tasks: Sequence[Task], deliver: Callable[[int, Any], None]) -> None:
        """Run ``tasks``; call ``deliver(index, value)`` as each finishes, with a
        :class:`ShardError` as the value of a task that raised."""

    def run(self, tasks: Sequence[Task], on_result: ResultCallback | None = None) -> list[Any]:
        """Results of ``tasks`` in their order; a task that raised gives a :class:`ShardError`.

        Tasks whose ``store`` already holds their shard are not run again (``resumed``);
        every other result is saved to its store the moment it arrives, before
        ``on_result`` sees it.
        """
        results: list[Any] = [None] * len(tasks)
        pending: list[int] = []
        for index, task in enumerate(tasks):
            found, value = task.store.load(task.shard) if task.store is not None else (False, None)
            if found:
                results[index] = value
                if on_result is not None:
                    on_result(task, value, True)
            else:
                pending.append(index)

        def deliver(position: int, value: Any) -> None:
            index = pending[position]
            task = tasks[index]
            if task.store is not None and not isinstance(value, ShardError):
                task.store.save(task.shard, value)
            results[index] = value
            if on_result is not None:
                on_result(task, value, False)

        if pending:
            self._execute([tasks[i] for i in pending], deliver)
        return results

    def map(self, function: ShardFunction, shards: Sequence[Shard], *, shared: Any = None,
            store: ShardStore | None = None, on_result: ResultCallback | None = None) -> list[Any]:
        """``[function(shard, shared) for shard in shards]``, run by this executor.

        ``shared`` is registered once for all shards. The first shard that raised has its
        exception re-raised (after every other shard finished, so their results are stored).
        """
        handle = self.share(shared)
        results = self.run([Task(function, shard, handle, store) for shard in shards], on_result)
        for value in results:
            if isinstance(value, ShardError):
                raise value.error
        return results

    @property
    def is_local(self) -> bool:
        """True when shards run in this process, one after the other."""
        return False

    def use_device(self, device: str) -> None:
        """Told where the shards' model runs (``cpu``, ``cuda:0``), before any shard is sent;
        a distributed executor reserves GPUs for CUDA work."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": self.workers}

    def close(self) -> None:
        """Release what the executor started (a local cluster)."""
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
