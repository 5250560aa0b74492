"""``mlsafety backdoor scan`` through CliRunner."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from mlsafety.cli import app
from mlsafety.data import load_digits
from mlsafety.models import Classifier, build_architecture, save_checkpoint

runner = CliRunner()


def test_scan_writes_report_with_triggers(tmp_path) -> None:
    digits = load_digits(size=16).head(600)
    np.savez(tmp_path / "d.npz", x=digits.images.numpy(), y=digits.labels.numpy())
    module = build_architecture("small_cnn", width=4, n_classes=10).eval()
    path = save_checkpoint(Classifier(module, input_shape=(1, 16, 16)), tmp_path / "m.safetensors",
                           "small_cnn", {"width": 4, "n_classes": 10})
    result = runner.invoke(app, ["backdoor", "scan", "--model", str(path), "--data", str(tmp_path / "d.npz"),
                                 "--steps", "5", "--quick", "--out", str(tmp_path / "r")])
    # no zoo covers this data: uncalibrated, so "no verdict" and exit 0 whatever Neural Cleanse finds
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("no verdict (uncalibrated): Uncalibrated, no verdict"), first
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    check = report["checks"][0]
    assert check["name"] == "backdoor" and check["figures"][0]["title"] == "Reversed triggers"
    assert check["details"]["neural_cleanse"]["l1_norms"].__len__() == 10
    assert (tmp_path / "r" / "report.html").exists()


def test_scan_usage_errors(tmp_path) -> None:
    result = runner.invoke(app, ["backdoor", "scan", "--model", str(tmp_path / "missing.safetensors")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    result = runner.invoke(app, ["backdoor", "scan", "--steps", "0"])
    assert result.exit_code == 2 and "--steps" in result.output


def test_zoo_build_writes_manifest_and_resumes(tmp_path) -> None:
    arguments = ["backdoor", "zoo", "build", "--data", "digits", "--n-clean", "1", "--n-backdoored", "1",
                 "--width", "4", "--n-train", "200", "--epochs", "1", "--root", str(tmp_path)]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "clean_000: C-Acc" in result.stdout and "badnets_000: C-Acc" in result.stdout
    manifests = list(tmp_path.glob("small_cnn-digits-w4-*/manifest.json"))
    assert len(manifests) == 1 and len(json.loads(manifests[0].read_text())["models"]) == 2
    again = runner.invoke(app, arguments)
    assert again.exit_code == 0 and "C-Acc" not in again.stdout and "1 clean, 1 backdoored" in again.stdout


def test_zoo_build_usage_errors(tmp_path) -> None:
    for extra, message in ((["--data", "cifar"], "--data"), (["--n-clean", "-1"], "--n-clean"),
                           (["--architecture", "nope"], "--architecture"), (["--workers", "0"], "--workers"),
                           (["--n-clean", "0", "--n-backdoored", "0"], "both 0")):
        result = runner.invoke(app, ["backdoor", "zoo", "build", "--root", str(tmp_path), *extra])
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["backdoor", "zoo", "build", "--root", str(tmp_path / "file")])
    assert result.exit_code == 2 and "is a file" in result.output
