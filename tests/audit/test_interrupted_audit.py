"""An audit killed at random moments leaves only valid results, and its rerun equals an uninterrupted run."""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlsafety.audit.base import CheckResult
from mlsafety.models.loading import save_checkpoint

CHECKS = "accuracy,corruptions"
N_KILLS = 10
CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(["mlsafety.cli", "mlsafety.audit.runner"])


def _run_cli(argv: list[str]) -> None:
    from mlsafety.cli import app

    sys.argv = ["mlsafety", *argv]
    app()


def _audit(model: Path, data: Path, out: Path, *, fresh: bool = False) -> multiprocessing.Process:
    """Start ``mlsafety audit`` in a child of a fork server that has imported mlsafety once.

    The children start in milliseconds instead of the seconds an interpreter needs to
    import torch, so the kill moments fall inside the audit's own work.
    """
    argv = ["audit", "--model", str(model), "--data", str(data), "--checks", CHECKS, "--quick", "--seed", "3",
            "--out", str(out)] + (["--fresh"] if fresh else [])
    process = CONTEXT.Process(target=_run_cli, args=(argv,))
    process.start()
    return process


def _metrics(out: Path) -> dict[str, str]:
    report = json.loads((out / "report.json").read_text())
    # JSON text compares NaN equal to NaN and keeps every digit of every float
    return {check["name"]: json.dumps(check["metrics"], sort_keys=True) for check in report["checks"]}


def _assert_results_valid_or_absent(out: Path) -> None:
    results = out / "results"
    for file in results.iterdir() if results.exists() else []:
        if file.suffix == ".json":
            result = CheckResult.from_dict(json.loads(file.read_text()))
            assert result.name == file.stem and result.config_hash
        else:
            # an interrupted atomic write leaves only its hidden temp file, which no reader takes for a result
            assert file.name.startswith(".") and file.name.endswith(".tmp"), f"unexpected file {file.name}"
    if (out / "report.json").exists():
        json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_killed_audits_resume_to_the_uninterrupted_result(tiny_classifier, digits_splits, tmp_path) -> None:
    model = save_checkpoint(tiny_classifier, tmp_path / "tiny.safetensors", "small_cnn", {"width": 8})
    data = tmp_path / "test.npz"
    np.savez(data, x=digits_splits["test"].images.numpy(), y=digits_splits["test"].labels.numpy())

    warm_up = CONTEXT.Process(target=_run_cli, args=(["--help"],))  # starts the fork server
    warm_up.start()
    warm_up.join()
    started = time.perf_counter()
    reference = _audit(model, data, tmp_path / "reference")
    reference.join()
    duration = time.perf_counter() - started
    assert reference.exitcode == 0

    out = tmp_path / "interrupted"
    moments = np.random.default_rng(0).uniform(0.02, 1.0, N_KILLS) * duration
    killed = 0
    for moment in moments:
        # each killed run recomputes every check, so kills land in check work and result writes
        # alike, over the results an earlier run left; only the final run resumes
        process = _audit(model, data, out, fresh=True)
        process.join(timeout=moment)
        if process.is_alive():
            process.kill()  # SIGKILL: no handler, no cleanup, as when a machine loses power
            process.join()
            killed += 1
        else:
            assert process.exitcode == 0
        _assert_results_valid_or_absent(out)
    # most kills must land inside a run, or the test proves nothing
    assert killed >= N_KILLS // 2, f"only {killed} of {N_KILLS} runs were still running when killed"

    rerun = _audit(model, data, out)
    rerun.join()
    assert rerun.exitcode == 0
    assert not [f.name for f in (out / "results").iterdir() if f.suffix != ".json"]
    assert _metrics(out) == _metrics(tmp_path / "reference")
