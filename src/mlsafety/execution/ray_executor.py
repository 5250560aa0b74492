"""Shards as Ray tasks, on a local Ray instance or an existing cluster (Moritz et al. 2018).

Moritz, Nishihara, Wang et al. (2018), "Ray: A Distributed Framework for Emerging AI
Applications", OSDI. Ray is an optional dependency (``pip install 'mlsafety[ray]'``): this
module imports it only when a :class:`RayExecutor` starts.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from mlsafety.exceptions import InvalidParameterError
from mlsafety.execution.base import (
    EXECUTORS,
    Executor,
    ExecutorUnavailableError,
    ShardError,
    ShardFunction,
    Shared,
    Task,
    current_threads,
)
from mlsafety.execution.shard import Shard

logger = logging.getLogger(__name__)

#: object store of a local instance: 20% of the memory, within these bounds (Ray's own default,
#: 30% of the memory, fails in small containers whose /dev/shm is smaller)
_STORE_MIN, _STORE_MAX = 100 * 1024**2, 8 * 1024**3


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`ExecutorUnavailableError` saying how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ExecutorUnavailableError(
            "the Ray executor needs Ray, which is not installed; install it with "
            "pip install 'mlsafety[ray]', or use the local executor.") from None


def parse_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``HOST:PORT`` address; None for ``auto``.

    Raises
    ------
    InvalidParameterError
        When the address is neither ``auto`` nor ``HOST:PORT`` with a port in 1..65535.
    """
    text = address.strip()
    if text == "auto":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidParameterError(f"a Ray address must be auto or HOST:PORT (e.g. 10.0.0.5:6379); got {address!r}.")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse a ``HOST:PORT`` that accepts no connection within ``timeout`` seconds (so a
    typo fails at once instead of after Ray's long connection retries)."""
    parsed = parse_address(address)
    if parsed is None:
        return
    try:
        with socket.create_connection(parsed, timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ExecutorUnavailableError(
            f"no Ray cluster answers at {address} ({reason}); start one with 'ray start --head' on that "
            "machine, check the address, or leave the address out to start a local Ray instance.") from None


def _local_resources(workers: int | None) -> dict[str, Any]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 8 * 1024**3
    store = int(min(max(0.2 * pages, _STORE_MIN), _STORE_MAX))
    return {"num_cpus": workers or os.cpu_count() or 1, "object_store_memory": store}


def _ray_entry(function: ShardFunction, shard: Shard, shared: Any, threads: int | None) -> Any:
    """What a Ray worker runs: the shard function with the driver's torch thread count, so
    reductions (and so results) match the local executor's."""
    if threads is not None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return function(shard, shared)


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Runs shards as Ray tasks, at most ``workers`` at a time.

    Shared data goes into Ray's object store once (:meth:`share`); each task receives a
    reference and Ray fetches the object once per node. A task whose worker process dies is
    rerun up to ``max_retries`` times (Ray's task retries); an exception raised by the shard
    function itself is not retried (it would raise again) and comes back as a
    :class:`~mlsafety.execution.base.ShardError`.

    Parameters
    ----------
    address : ``None`` starts a local Ray instance sized to this machine (or to ``workers``
        CPUs); ``"auto"`` joins the cluster this machine belongs to (``ray start``);
        ``"HOST:PORT"`` joins the cluster whose head listens there.
    workers : shards run at once (default: the cluster's CPUs, or its GPUs with ``num_gpus``).
    num_cpus : CPUs each task reserves.
    num_gpus : GPUs each task reserves (fractions share a GPU). Default: 1 when the work is on
        CUDA (:meth:`use_device`, which the audit calls with its model's device), else 0.
    max_retries : reruns of a task whose worker died.
    threads : torch threads in each task (default: the driver's, for identical results).
    init_options : further keyword arguments for ``ray.init`` (``object_store_memory``, ...).
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, *, num_cpus: float = 1,
                 num_gpus: float | None = None, max_retries: int = 3, threads: int | None = None,
                 init_options: dict[str, Any] | None = None) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise InvalidParameterError(f"`workers` of RayExecutor must be an integer >= 1; got {workers!r}.")
        if address is not None:
            parse_address(address)
        self.address = address
        self.requested_workers = workers
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.threads = threads
        self.init_options = dict(init_options or {})
        self.workers = workers or 1
        self._gpus_per_task = num_gpus or 0
        self._ray: Any = None
        self._started = False

    def start(self) -> RayExecutor:
        """Connect to (or start) Ray; idempotent. Runs on first use anyway."""
        if self._ray is not None:
            return self
        ray = import_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                                       "log_to_driver": False, **self.init_options}
            if self.address is None:
                for key, value in _local_resources(self.requested_workers).items():
                    options.setdefault(key, value)
            else:
                check_reachable(self.address)
                options["address"] = self.address
                for key in ("num_cpus", "num_gpus", "object_store_memory", "include_dashboard"):
                    options.pop(key, None)
            try:
                ray.init(**options)
            except ConnectionError as error:
                raise ExecutorUnavailableError(
                    f"cannot join the Ray cluster at {self.address}: {' '.join(str(error).split())[:200]}") from None
            self._started = True
        self._ray = ray
        resources = ray.cluster_resources()
        if self.requested_workers is None:
            per_task, kind = (self._gpus_per_task, "GPU") if self._gpus_per_task else (self.num_cpus, "CPU")
            self.workers = max(1, int(resources.get(kind, 1) // max(per_task, 1e-9)))
        return self

    def use_device(self, device: str) -> None:
        if self.num_gpus is None:
            if self._ray is not None and str(device).startswith("cuda") != bool(self._gpus_per_task):
                logger.warning("RayExecutor started before it was told the device; set num_gpus explicitly")
            self._gpus_per_task = 1 if str(device).startswith("cuda") else 0

    def share(self, value: Any) -> Shared:
        self.start()
        return Shared(self._ray.put(value))

    def _execute(self, tasks: Sequence[Task], deliver: Callable[[int, Any], None]) -> None:
        self.start()
        ray = self._ray
        remote = ray.remote(_ray_entry).options(num_cpus=self.num_cpus, num_gpus=self._gpus_per_task,
                                                max_retries=self.max_retries, retry_exceptions=False)
        threads = self.threads if self.threads is not None else current_threads()
        in_flight: dict[Any, int] = {}
        queue = iter(enumerate(tasks))

        def submit() -> bool:
            item = next(queue, None)
            if item is None:
                return False
            index, task = item
            shared = task.shared.ref if task.shared is not None else None
            in_flight[remote.remote(task.function, task.shard, shared, threads)] = index
            return True

        while len(in_flight) < self.workers and submit():
            pass
        try:
            while in_flight:
                done, _ = ray.wait(list(in_flight), num_returns=1)
                index = in_flight.pop(done[0])
                try:
                    value = ray.get(done[0])
                except ray.exceptions.RayTaskError as error:
                    value = ShardError(tasks[index].shard, _cause(error))
                except ray.exceptions.RayError as error:  # the worker died more often than max_retries
                    value = ShardError(tasks[index].shard, error)
                submit()
                deliver(index, value)
        finally:
            for ref in in_flight:
                ray.cancel(ref, force=True)

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": self.workers, "address": self.address or "local instance",
                "num_gpus_per_shard": self._gpus_per_task}

    def close(self) -> None:
        """Disconnect from Ray, shutting down the local instance if this executor started it
        (a cluster it joined keeps running; a Ray session the caller started is left alone)."""
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._ray = None
        self._started = False


def _cause(error: Exception) -> BaseException:
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error
