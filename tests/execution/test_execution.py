"""Shards, the shard store and the local executor (no Ray needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlsafety.exceptions import InvalidParameterError
from mlsafety.execution import EXECUTORS, LocalExecutor, Shard, ShardError, ShardStore, Task, shard_seed

CALLS: list[str] = []


def _square(shard: Shard, shared: int) -> dict[str, int]:
    CALLS.append(shard.key)
    if shard.params.get("fail"):
        raise ValueError(f"shard {shard.key} refuses")
    return {"value": shard.params["x"] ** 2 + shared, "seed": shard.seed}


def test_shard_seed_comes_from_the_identity_only() -> None:
    assert shard_seed(0, "fog-3") == shard_seed(0, "fog-3")
    assert len({shard_seed(0, "fog-3"), shard_seed(1, "fog-3"), shard_seed(0, "fog-4")}) == 3
    assert 0 <= shard_seed(2**32 - 1, "x" * 120) < 2**31
    assert Shard.create("a", 7, x=1).seed == shard_seed(7, "a")
    with pytest.raises(InvalidParameterError, match="shard key"):
        Shard.create("../escape")


def test_local_map_keeps_order_and_shares_data_once() -> None:
    CALLS.clear()
    shards = [Shard.create(f"x{i}", 0, x=i) for i in (3, 1, 2)]
    results = LocalExecutor().map(_square, shards, shared=10)
    assert [r["value"] for r in results] == [19, 11, 14]
    assert CALLS == ["x3", "x1", "x2"]
    assert "local" in EXECUTORS.names() and "ray" in EXECUTORS.names()


def test_store_saves_each_result_and_a_rerun_computes_only_the_missing(tmp_path) -> None:
    store = ShardStore(tmp_path / "shards")
    shards = [Shard.create(f"x{i}", 0, x=i, fail=(i == 2)) for i in range(4)]
    CALLS.clear()
    with pytest.raises(ValueError, match="x2 refuses"):  # a killed driver leaves the same state
        LocalExecutor().map(_square, shards, shared=0, store=store)
    assert store.finished() == ["x0", "x1", "x3"], "the failing shard must not stop the others or be stored"
    assert not [p for p in (tmp_path / "shards").iterdir() if p.suffix != ".json"]
    record = json.loads((tmp_path / "shards" / "x3.json").read_text())
    assert record == {"key": "x3", "seed": shards[3].seed, "value": {"value": 9, "seed": shards[3].seed}}

    (tmp_path / "shards" / "x1.json").write_text("{half")  # an unreadable result is recomputed
    CALLS.clear()
    fixed = [Shard.create(f"x{i}", 0, x=i) for i in range(4)]
    seen = []
    results = LocalExecutor().map(_square, fixed, shared=0, store=store,
                                  on_result=lambda task, value, resumed: seen.append((task.shard.key, resumed)))
    assert CALLS == ["x1", "x2"]
    assert [r["value"] for r in results] == [0, 1, 4, 9]
    assert sorted(seen) == [("x0", True), ("x1", False), ("x2", False), ("x3", True)]


def test_run_returns_shard_errors_in_place() -> None:
    shards = [Shard.create("ok", 0, x=2), Shard.create("bad", 0, x=1, fail=True)]
    results = LocalExecutor().run([Task(_square, s, LocalExecutor().share(1)) for s in shards])
    assert results[0]["value"] == 5
    assert isinstance(results[1], ShardError) and isinstance(results[1].error, ValueError)
    assert "bad" in str(results[1])


def test_mlsafety_and_the_local_executor_do_not_import_ray() -> None:
    code = ("import sys, mlsafety, mlsafety.execution, mlsafety.audit, mlsafety.cli\n"
            "from mlsafety.execution import LocalExecutor, Shard\n"
            "LocalExecutor().map(lambda s, x: x, [Shard('a')], shared=1)\n"
            "print('ray' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"
