"""``mlsafety corrupt``: CIFAR-10-C layout, resumption after an interruption, usage errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import mlsafety.robustness.corruptions as corruptions_package
from mlsafety.cli import app
from mlsafety.data import load_digits

runner = CliRunner()
ARGS = ["--data", "digits", "--limit", "30", "--batch-size", "8", "--corruptions", "fog,contrast",
        "--severities", "1,3"]


def test_layout_matches_cifar10c(tmp_path) -> None:
    out = tmp_path / "c"
    result = runner.invoke(app, ["corrupt", "--out", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    fog = np.load(out / "fog.npy")
    labels = np.load(out / "labels.npy")
    digits = load_digits()
    assert fog.shape == (60, *digits.image_shape[1:], 1) and fog.dtype == np.uint8
    assert np.array_equal(labels, np.tile(digits.labels[:30].numpy(), 2))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["severities"] == [1, 3] and manifest["corruptions"] == ["fog", "contrast"]
    # severity-major: the second block is stronger contrast than the first
    clean = digits.images[:30].permute(0, 2, 3, 1).numpy() * 255
    contrast = np.load(out / "contrast.npy").astype(float)
    assert np.abs(contrast[30:] - clean).mean() > np.abs(contrast[:30] - clean).mean() > 0
    assert not list(out.glob("*.partial.npy"))


def test_resume_after_interruption_gives_identical_files(tmp_path, monkeypatch) -> None:
    reference = tmp_path / "reference"
    assert runner.invoke(app, ["corrupt", "--out", str(reference), *ARGS]).exit_code == 0
    original = corruptions_package.corrupt_dataset
    produced = {"n": 0}

    def interrupted(*args, **kwargs):
        for batch in original(*args, **kwargs):
            if produced["n"] == 5:
                raise KeyboardInterrupt
            produced["n"] += 1
            yield batch

    out = tmp_path / "resumed"
    monkeypatch.setattr(corruptions_package, "corrupt_dataset", interrupted)
    first = runner.invoke(app, ["corrupt", "--out", str(out), *ARGS])
    assert first.exit_code != 0
    assert (out / "fog.partial.npy").exists()
    assert json.loads((out / "manifest.json").read_text())["done"]["fog"] == 5
    monkeypatch.setattr(corruptions_package, "corrupt_dataset", original)
    second = runner.invoke(app, ["corrupt", "--out", str(out), *ARGS])
    assert second.exit_code == 0, second.output
    for name in ("fog", "contrast"):
        assert np.array_equal(np.load(out / f"{name}.npy"), np.load(reference / f"{name}.npy")), name
    # other settings in the same folder are refused
    clash = runner.invoke(app, ["corrupt", "--out", str(out), *ARGS[:-1], "1,2"])
    assert clash.exit_code == 2 and "other settings" in clash.output


@pytest.mark.parametrize("extra, message", [
    (["--corruptions", "fgo"], "Did you mean 'fog'"),
    (["--severities", "0,6"], "1..5"),
    (["--severities", "one"], "integers"),
    (["--batch-size", "0"], "batch-size"),
])
def test_usage_errors(tmp_path, extra, message) -> None:
    result = runner.invoke(app, ["corrupt", "--out", str(tmp_path / "x"), "--data", "digits", "--limit", "4", *extra])
    assert result.exit_code == 2
    assert message in result.output
