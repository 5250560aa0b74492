"""The CLI through CliRunner: exit codes 0 / 1 / 2 and one-line errors."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from mlsafety.cli import app
from mlsafety.models import Classifier, build_architecture, save_checkpoint

runner = CliRunner()


def test_info() -> None:
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "torch" in result.output and "fashion-mnist" in result.output


def test_quick_accuracy_audit_and_thresholds(tmp_path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(app, ["audit", "--quick", "--checks", "accuracy", "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "report.json").read_text())
    accuracy = payload["checks"][0]["metrics"]["accuracy"]
    assert accuracy > 0.85
    gate = runner.invoke(app, ["audit", "--quick", "--checks", "accuracy", "--out", str(out),
                               "--fail-under", f"accuracy={accuracy + 0.01}"])
    assert gate.exit_code == 1
    assert "threshold violated" in gate.output
    ok = runner.invoke(app, ["audit", "--quick", "--checks", "accuracy", "--out", str(out),
                             "--fail-under", f"accuracy.accuracy={accuracy - 0.01}"])
    assert ok.exit_code == 0


def test_usage_errors_exit_2(tmp_path) -> None:
    cases = [
        ["audit", "--checks", "acuracy"],
        ["audit", "--model", str(tmp_path / "missing.safetensors")],
        ["audit", "--fail-under", "accuracy"],
        ["audit", "--device", "tpu"],
    ]
    for arguments in cases:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert result.output.strip().count("\n") == 0, result.output


def test_unsafe_pickle_refused_on_cli(tmp_path) -> None:
    path = tmp_path / "model.pt"
    torch.save(build_architecture("small_cnn"), path)
    result = runner.invoke(app, ["audit", "--model", str(path), "--architecture", "small_cnn", "--quick"])
    assert result.exit_code == 2
    assert "weights_only" in result.output


def test_user_model_and_npz_data(tmp_path) -> None:
    import numpy as np

    from mlsafety.data import load_digits

    digits = load_digits(size=16).head(300)
    np.savez(tmp_path / "d.npz", x=digits.images.numpy(), y=digits.labels.numpy())
    module = build_architecture("small_cnn", width=4, n_classes=10).eval()
    path = save_checkpoint(Classifier(module, input_shape=(1, 16, 16)), tmp_path / "m.safetensors",
                           "small_cnn", {"width": 4, "n_classes": 10})
    result = runner.invoke(app, ["audit", "--model", str(path), "--data", str(tmp_path / "d.npz"),
                                 "--checks", "accuracy", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "report.html").exists()
