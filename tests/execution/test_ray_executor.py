"""The Ray executor on a 2-CPU local instance: same results as the local executor, shared data
in the object store once, shard errors in place, retries after a killed worker."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mlsafety.execution import LocalExecutor, RayExecutor, Shard, ShardError, ShardStore

pytest.importorskip("ray")


def _work(shard: Shard, shared: dict) -> dict:
    import numpy as np

    if shard.params.get("fail"):
        raise KeyError(f"no entry {shard.key}")
    rng = np.random.default_rng(shard.seed)  # seeded by the shard's identity, not the worker
    return {"value": float(rng.standard_normal() + shared["offset"]), "pid": os.getpid()}


def _slow_once(shard: Shard, marker: str) -> dict:
    """Shard 'k2' records its worker's pid and waits to be killed; its retry finds the record and runs."""
    path = Path(marker)
    if shard.key == "k2" and not path.exists():
        path.write_text(str(os.getpid()))
        time.sleep(60)
    return {"key": shard.key, "seed": shard.seed}


def test_ray_map_equals_local_map_and_uses_two_workers(ray_session) -> None:
    shards = [Shard.create(f"s{i}", 5, i=i) for i in range(8)]
    executor = RayExecutor(workers=2)
    remote = executor.map(_work, shards, shared={"offset": 1.0})
    local = LocalExecutor().map(_work, shards, shared={"offset": 1.0})
    assert [r["value"] for r in remote] == [r["value"] for r in local]
    assert len({r["pid"] for r in remote}) >= 1 and all(r["pid"] != os.getpid() for r in remote)
    assert executor.workers == 2
    executor.close()
    assert ray_session.is_initialized(), "an executor must not shut down a Ray session it did not start"


def test_shared_data_goes_to_the_object_store_once(ray_session) -> None:
    handle = RayExecutor(workers=2).share({"offset": 0.0})
    assert isinstance(handle.ref, ray_session.ObjectRef)


def test_shard_errors_come_back_in_place_and_the_rest_is_stored(ray_session, tmp_path) -> None:
    store = ShardStore(tmp_path)
    shards = [Shard.create(f"s{i}", 0, fail=(i == 1)) for i in range(4)]
    executor = RayExecutor(workers=2)
    from mlsafety.execution import Task

    results = executor.run([Task(_work, s, executor.share({"offset": 0.0}), store) for s in shards])
    assert isinstance(results[1], ShardError) and isinstance(results[1].error, KeyError)
    assert store.finished() == ["s0", "s2", "s3"]
    with pytest.raises(KeyError):
        executor.map(_work, shards, shared={"offset": 0.0})


def test_a_killed_worker_costs_only_its_shard(ray_session, tmp_path) -> None:
    marker = tmp_path / "pid"
    store = ShardStore(tmp_path / "shards")
    shards = [Shard.create(f"k{i}", 3) for i in range(6)]
    executor = RayExecutor(workers=2, max_retries=2)
    import threading

    def kill_when_ready() -> None:
        for _ in range(600):
            if marker.exists() and marker.read_text():
                os.kill(int(marker.read_text()), 9)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_ready)
    killer.start()
    started = time.perf_counter()
    results = executor.map(_slow_once, shards, shared=str(marker), store=store)
    killer.join()
    assert time.perf_counter() - started < 50, "the killed shard must be retried, not waited for"
    assert results == [{"key": s.key, "seed": s.seed} for s in shards]
    assert store.finished() == [s.key for s in shards]


def test_bad_settings_are_refused() -> None:
    from mlsafety.exceptions import InvalidParameterError
    from mlsafety.execution import ExecutorUnavailableError
    from mlsafety.execution.ray_executor import check_reachable

    with pytest.raises(InvalidParameterError, match="workers"):
        RayExecutor(workers=0)
    with pytest.raises(InvalidParameterError, match="HOST:PORT"):
        RayExecutor(address="no-port")
    with pytest.raises(ExecutorUnavailableError, match=r"no Ray cluster answers at 127\.0\.0\.1:1"):
        check_reachable("127.0.0.1:1")


def test_cuda_work_reserves_one_gpu_per_shard_unless_told_otherwise() -> None:
    executor = RayExecutor()
    executor.use_device("cpu")
    assert executor.describe()["num_gpus_per_shard"] == 0
    executor.use_device("cuda:0")
    assert executor.describe()["num_gpus_per_shard"] == 1
    shared_gpu = RayExecutor(num_gpus=0.5)
    shared_gpu.use_device("cuda")
    assert shared_gpu.describe()["num_gpus_per_shard"] == 0.5
