"""``mlsafety honesty probe | eval`` through CliRunner on a tiny planted-truth GPT-2 saved to a folder."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsafety.cli import app

runner = CliRunner()
_HELPER = Path(__file__).parents[1] / "monitoring" / "honesty" / "honesty_tiny_lm.py"


def _helper():
    spec = importlib.util.spec_from_file_location("honesty_tiny_lm", _HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    helper = _helper()
    lm = helper.train_tiny_lm()
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    csv = folder.parent / "planted.csv"
    from mlsafety.monitoring.honesty.datasets import write_statements_csv

    write_statements_csv(helper.planted_statements(24, seed=0, name="planted"), csv)
    return folder, csv


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSAFETY_CACHE", str(tmp_path / "cache"))


def test_probe_fits_and_saves(tiny_folder, tmp_path):
    folder, csv = tiny_folder
    out = tmp_path / "probe.safetensors"
    result = runner.invoke(app, ["honesty", "probe", "--model", str(folder), "--data", str(csv), "--out", str(out),
                                 "--probe", "mass_mean", "--layer", "2"])
    assert result.exit_code == 0, result.output
    assert "held-out accuracy 1.000" in result.output
    config = json.loads(out.with_suffix(".json").read_text())
    assert config["probe"] == "mass_mean" and config["extra"]["layer"] == 2


def test_eval_writes_the_report(tiny_folder, tmp_path):
    folder, csv = tiny_folder
    other = tmp_path / "other.csv"
    other.write_text(csv.read_text().replace(",planted", ",other"))  # same statements, another topic
    out = tmp_path / "report"
    result = runner.invoke(app, ["honesty", "eval", "--model", str(folder), "--data", f"{csv},{other}",
                                 "--probes", "logistic,mass_mean", "--out", str(out)])
    assert result.exit_code in (0, 1), result.output
    payload = json.loads((out / "report.json").read_text())
    names = {c["name"] for c in payload["checks"]}
    assert {"probes", "generalisation", "honesty"} <= names
    honesty = next(c for c in payload["checks"] if c["name"] == "honesty")
    assert result.exit_code == (1 if honesty["verdict"] == "warn" else 0)
    assert (out / "report.html").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--probe", "logistc"], "Did you mean 'logistic'"),
     (["--data", "nonsense"], "neither a CSV"),
     (["--layer", "-1"], "--layer"),
     (["--n", "0"], "--n"),
     (["--out", "probe.txt"], ".safetensors")],
)
def test_probe_usage_errors(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["honesty", "probe", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    not_lm = tmp_path / "bert"
    not_lm.mkdir()
    (not_lm / "config.json").write_text('{"architectures": ["BertModel"]}')
    no_columns = tmp_path / "cols.csv"
    no_columns.write_text("text,truth\na,1\nb,0\n")
    one_class = tmp_path / "one.csv"
    one_class.write_text("statement,label\na,1\nb,1\n")
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("statement,label\na,1\nb,0\nc,1\nd,0\n")
    cases = [(["--model", str(not_lm)], "not a causal language model"),
             (["--data", str(no_columns)], "lacks the column"),
             (["--data", str(one_class)], "both true"),
             (["--data", str(tiny)], "too small to split"),
             (["--max-disagreement", "2"], "--max-disagreement")]
    for args, message in cases:
        result = runner.invoke(app, ["honesty", "eval", "--out", str(tmp_path / "r"), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1
