"""The audit under the Ray executor: the same metrics as the local executor for every check, a
killed worker mid-audit costs only its shard, and a rerun resumes from the finished shards."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlsafety.audit import AuditContext, available_checks, run_audit
from mlsafety.audit.base import ShardedCheck, ShardPlan
from mlsafety.execution import RayExecutor, Shard
from mlsafety.registry import CHECKS

pytest.importorskip("ray")

SMALL = {"corruptions": {"n_images": 60, "severities": [1, 5]}}
STATE = {"marker": "", "fail_once": ""}


def _probe_shard(shard: Shard, shared: dict) -> dict:
    """Deterministic per shard; 'p3' may wait to be killed (once) or fail (once), as set in ``shared``."""
    if shard.key == "p3" and shared["marker"] and not Path(shared["marker"]).exists():
        Path(shared["marker"]).write_text(str(os.getpid()))
        time.sleep(60)
    if shard.key == "p3" and shared["fail_once"] and not Path(shared["fail_once"]).exists():
        Path(shared["fail_once"]).write_text("failed")
        raise RuntimeError("the driver died here")
    with open(shared["log"], "a") as log:
        log.write(shard.key + "\n")
    return {"x": float(np.random.default_rng(shard.seed).random())}


class _ProbeSharded(ShardedCheck):
    name, title, hazard = "_probe_sharded", "Probe", "test"

    def plan(self, context):
        return ShardPlan(_probe_shard, [Shard.create(f"p{i}", context.seed) for i in range(8)], dict(STATE))

    def combine(self, context, plan, results):
        return self.result("pass", "probe", metrics={"total": sum(r["x"] for r in results)})


@pytest.fixture(autouse=True)
def _probe(tmp_path):
    CHECKS.register(_ProbeSharded.name)(_ProbeSharded)
    STATE.update(marker="", fail_once="", log=str(tmp_path / "log.txt"))
    yield
    CHECKS.unregister(_ProbeSharded.name)


def _context(classifier, splits, **options):
    return AuditContext(classifier, splits["test"], validation=splits["validation"], train=splits["train"],
                        quick=True, options={**SMALL, **options})


def _metrics(report) -> dict[str, str]:
    # wall-clock timings (metric names ending in _seconds) are the only metrics allowed to differ
    return {r.name: json.dumps({k: v for k, v in r.metrics.items() if not k.endswith("_seconds")}, sort_keys=True)
            for r in report.results}


def test_sharded_and_whole_checks_match_the_local_executor(ray_session, tiny_classifier, digits_splits,
                                                           tmp_path) -> None:
    checks = ["accuracy", "corruptions"]  # a whole check and a sharded one
    local = run_audit(_context(tiny_classifier, digits_splits), tmp_path / "local", checks, progress=False)
    remote = run_audit(_context(tiny_classifier, digits_splits), tmp_path / "ray", checks, progress=False,
                       executor=RayExecutor(workers=2))
    assert [r.verdict for r in remote.results] == [r.verdict for r in local.results]
    assert "error" not in [r.verdict for r in remote.results]
    assert _metrics(remote) == _metrics(local)
    assert remote.metadata["execution"] == {"executor": "ray", "workers": 2, "address": "local instance",
                                            "num_gpus_per_shard": 0}
    (cells,) = (tmp_path / "ray" / "shards").iterdir()
    assert len(list(cells.glob("*.json"))) == 1 + 15 * 2, "the clean images and every cell are shards"
    for name in checks:
        assert json.loads((tmp_path / "ray" / "results" / f"{name}.json").read_text())["name"] == name


@pytest.mark.slow
def test_every_check_matches_the_local_executor(ray_session, tiny_classifier, digits_splits, tmp_path) -> None:
    checks = available_checks()
    local = run_audit(_context(tiny_classifier, digits_splits), tmp_path / "local", checks, progress=False)
    remote = run_audit(_context(tiny_classifier, digits_splits), tmp_path / "ray", checks, progress=False,
                       executor=RayExecutor(workers=2))
    assert [r.name for r in remote.results] == checks
    assert "error" not in [r.verdict for r in remote.results], [r.summary for r in remote.results]
    assert [r.verdict for r in remote.results] == [r.verdict for r in local.results]
    assert _metrics(remote) == _metrics(local)


def test_a_worker_killed_mid_audit_costs_only_its_shard(ray_session, tiny_classifier, digits_splits,
                                                        tmp_path) -> None:
    checks = ["_probe_sharded", "corruptions"]
    reference = run_audit(_context(tiny_classifier, digits_splits), tmp_path / "reference", checks, progress=False)
    STATE["marker"] = str(tmp_path / "pid")
    killed = []

    def kill_when_ready() -> None:
        for _ in range(1200):
            text = Path(STATE["marker"]).read_text() if Path(STATE["marker"]).exists() else ""
            if text:
                os.kill(int(text), 9)  # SIGKILL the worker process that runs shard p3
                killed.append(int(text))
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_ready)
    killer.start()
    started = time.perf_counter()
    report = run_audit(_context(tiny_classifier, digits_splits), tmp_path / "ray", checks, progress=False,
                       executor=RayExecutor(workers=2, max_retries=2))
    killer.join()
    assert killed and killed[0] != os.getpid()
    assert time.perf_counter() - started < 55, "the killed shard must have been retried, not awaited"
    assert _metrics(report) == _metrics(reference)
    assert "error" not in [r.verdict for r in report.results]


def test_a_rerun_resumes_from_the_finished_shards(ray_session, tiny_classifier, digits_splits, tmp_path) -> None:
    reference = run_audit(_context(tiny_classifier, digits_splits), tmp_path / "reference", ["_probe_sharded"],
                          progress=False)
    STATE["fail_once"] = str(tmp_path / "failed")
    Path(STATE["log"]).write_text("")
    first = run_audit(_context(tiny_classifier, digits_splits), tmp_path / "ray", ["_probe_sharded"],
                      progress=False, executor=RayExecutor(workers=2))
    assert first.results[0].verdict == "error" and "the driver died here" in first.results[0].summary
    assert not (tmp_path / "ray" / "results" / "_probe_sharded.json").exists()
    assert sorted(Path(STATE["log"]).read_text().split()) == [f"p{i}" for i in range(8) if i != 3]
    Path(STATE["log"]).write_text("")
    second = run_audit(_context(tiny_classifier, digits_splits), tmp_path / "ray", ["_probe_sharded"],
                       progress=False, executor=RayExecutor(workers=2))
    assert Path(STATE["log"]).read_text().split() == ["p3"], "only the missing shard may run again"
    assert _metrics(second) == _metrics(reference)


runner = CliRunner()


def test_cli_corrupt_with_ray_writes_the_same_bytes(ray_session, tmp_path) -> None:
    from mlsafety.cli import app

    args = ["--data", "digits", "--limit", "30", "--batch-size", "8", "--corruptions", "fog,gaussian_noise",
            "--severities", "1,3"]
    assert runner.invoke(app, ["corrupt", "--out", str(tmp_path / "local"), *args]).exit_code == 0
    result = runner.invoke(app, ["corrupt", "--out", str(tmp_path / "ray"), *args, "--executor", "ray",
                                 "--workers", "2"])
    assert result.exit_code == 0, result.output
    for name in ("fog.npy", "gaussian_noise.npy", "labels.npy"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["done"] == {"fog": 8, "gaussian_noise": 8} and "finished" not in manifest
    assert not list((tmp_path / "ray").glob("*.partial.npy"))


def test_cli_corrupt_with_ray_resumes_out_of_order_batches(ray_session, tmp_path) -> None:
    from mlsafety.cli import app

    args = ["--data", "digits", "--limit", "24", "--batch-size", "8", "--corruptions", "contrast",
            "--severities", "2"]
    assert runner.invoke(app, ["corrupt", "--out", str(tmp_path / "local"), *args]).exit_code == 0
    out = tmp_path / "ray"
    assert runner.invoke(app, ["corrupt", "--out", str(out), *args, "--executor", "ray"]).exit_code == 0
    # a driver killed after batches 0 and 2 arrived, before batch 1: the partial file and the manifest
    final = np.load(out / "contrast.npy")
    (out / "contrast.npy").unlink()
    partial = np.lib.format.open_memmap(out / "contrast.partial.npy", mode="w+", dtype=np.uint8, shape=final.shape)
    partial[:8], partial[16:] = final[:8], final[16:]
    partial.flush()
    del partial
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["done"], manifest["finished"] = {"contrast": 1}, {"contrast": [0, 2]}
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["corrupt", "--out", str(out), *args, "--executor", "ray"])
    assert result.exit_code == 0, result.output
    assert (out / "contrast.npy").read_bytes() == (tmp_path / "local" / "contrast.npy").read_bytes()


def test_cli_proxy_sweep_with_ray_gives_the_same_report(ray_session, tmp_path) -> None:
    from mlsafety.cli import app

    args = ["proxy", "sweep", "--env", "lagoon", "--knob", "horizon", "--seeds", "3", "--no-mitigations"]
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "local")]).exit_code == 0
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    local, remote = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("local", "ray"))
    # every number of every section (timings aside: a sweep has none), figures included
    assert remote["checks"] == local["checks"] and remote["overall_verdict"] == local["overall_verdict"]
