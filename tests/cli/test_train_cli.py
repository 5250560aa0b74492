"""``mlsafety train --adversarial``: the command the adversarial section's next step names."""

from __future__ import annotations

import json

from safetensors import safe_open
from typer.testing import CliRunner

from mlsafety.cli import app

runner = CliRunner()


def test_adversarial_training_records_its_threat_model(tmp_path) -> None:
    out = tmp_path / "robust.safetensors"
    result = runner.invoke(app, ["train", "--data", "digits", "--epochs", "1", "--adversarial", "fast-fgsm",
                                 "--epsilon", "0.05", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with safe_open(str(out), framework="pt") as handle:
        extra = json.loads(handle.metadata()["extra"])
    assert extra["adversarial_training"] == {"method": "fast-fgsm", "epsilon": 0.05, "norm": "Linf"}


def test_bad_adversarial_options_are_one_line_errors(tmp_path) -> None:
    for args, message in ((["--adversarial", "pgx"], "--adversarial must be one of pgd, trades, fast-fgsm"),
                          (["--adversarial", "pgd", "--epsilon", "2"], "--epsilon must be in (0, 1]")):
        result = runner.invoke(app, ["train", "--data", "digits", *args, "--out", str(tmp_path / "m.safetensors")])
        assert result.exit_code == 2 and message in result.stderr, result.output
