"""The CLI contract on bad input: exit code 2, exactly one line on stderr, no traceback, no
file changed outside ``--out``, and no code run from a pickle.

One table of cases across every command; the inputs are generated in a temporary folder.
To cover a new input, add a row under its command's heading.
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from mlsafety.cli import app
from mlsafety.data import load_digits
from mlsafety.models import Classifier, build_architecture, default_checkpoint, save_checkpoint

runner = CliRunner()
MARKER = "pickle-code-ran.marker"


class _Evil:
    """A pickle payload that creates a marker file if anything unpickles it without restriction."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _TupleNet(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.flatten(1)
        return flat[:, :10], flat


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Every bad input the table refers to, written once."""
    root = tmp_path_factory.mktemp("contract")
    digits = load_digits(size=16).head(400)
    x16, y16 = digits.images.numpy(), digits.labels.numpy()
    np.savez(root / "d16.npz", x=x16, y=y16)
    np.savez(root / "d16_3class.npz", x=x16, y=y16 % 3)
    np.savez(root / "d16_rgb.npz", x=np.repeat(x16, 3, axis=1), y=y16)
    fashion = np.random.default_rng(0).integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    np.savez(root / "f28_label10.npz", x=fashion, y=np.r_[np.zeros(39, dtype=np.int64), 10])
    np.savez(root / "f28_huge_label.npz", x=fashion, y=np.r_[np.zeros(39, dtype=np.int64), 10**9])
    np.savez(root / "f28_negative.npz", x=fashion, y=np.r_[np.zeros(39, dtype=np.int64), -1])
    np.savez(root / "f28_nan.npz", x=np.full((4, 1, 28, 28), np.nan, np.float32), y=np.zeros(4, np.int64))
    np.savez(root / "f28_range.npz", x=np.full((4, 1, 28, 28), 200.0, np.float32), y=np.zeros(4, np.int64))
    np.savez(root / "f28_lengths.npz", x=fashion, y=np.zeros(7, np.int64))
    np.savez(root / "f28_float_labels.npz", x=fashion, y=np.full(40, 0.5))
    np.savez(root / "f28_empty.npz", x=np.zeros((0, 28, 28), np.uint8), y=np.zeros(0, np.int64))
    np.savez(root / "f28_no_y.npz", x=fashion)
    np.savez(root / "f28_object.npz", x=np.array([fashion[0], "text"], dtype=object), y=np.zeros(2, np.int64))
    np.savez(root / "f28_bad_shape.npz", x=np.zeros((4, 5), np.uint8), y=np.zeros(4, np.int64))
    (root / "empty.npz").write_bytes(b"")
    raw = (root / "d16.npz").read_bytes()
    (root / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    (root / "garbage.npz").write_bytes(os.urandom(2048))
    (root / "notes.txt").write_text("not data\n")

    module = build_architecture("small_cnn", in_channels=1, n_classes=10, width=4).eval()
    ours = save_checkpoint(Classifier(module, mean=[0.3], std=[0.4], input_shape=(1, 16, 16)),
                           root / "ours16.safetensors", "small_cnn", {"width": 4})
    torch.save(module.state_dict(), root / "state.pt")
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(root / "plain.safetensors"))
    (root / "empty.safetensors").write_bytes(b"")
    (root / "empty.pt").write_bytes(b"")
    raw = ours.read_bytes()
    (root / "truncated.safetensors").write_bytes(raw[: len(raw) // 2])
    raw_pt = (root / "state.pt").read_bytes()
    (root / "truncated.pt").write_bytes(raw_pt[: len(raw_pt) // 2])
    (root / "garbage.safetensors").write_bytes(os.urandom(4096))
    (root / "garbage.pt").write_bytes(os.urandom(4096))
    header = b'{"__metadata__": {"architecture": "small_cnn", "mean": "[0.3,"}}'
    (root / "bad_metadata.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    with open(root / "evil.pt", "wb") as stream:
        pickle.dump(_Evil(MARKER), stream)
    torch.save({"weights": _Evil(MARKER)}, root / "evil_zip.pt")
    torch.jit.script(_TupleNet()).save(str(root / "tuple.torchscript.pt"))
    torch.jit.script(module).save(str(root / "scripted.pt"))
    (root / "a_folder.pt").mkdir()

    for name in ("text", "empty", "ok"):
        (root / f"images_{name}" / "cat").mkdir(parents=True)
    (root / "images_text" / "cat" / "a.png").write_text("this is not a PNG")
    (root / "images_empty" / "cat" / "a.png").write_bytes(b"")
    (root / "images_none").mkdir()
    for name, payload in (("cifar_empty", b""), ("cifar_truncated", pickle.dumps({b"data": np.zeros((2, 3072))})[:40]),
                          ("cifar_evil", pickle.dumps(_Evil(MARKER))), ("cifar_list", pickle.dumps([1, 2, 3]))):
        (root / name).mkdir()
        (root / name / "test_batch").write_bytes(payload)

    (root / "factories.py").write_text(
        "import torch\n"
        "def raises():\n    raise RuntimeError('weights server unreachable')\n"
        "def not_a_module():\n    return 42\n"
        "def needs_args(width):\n    return torch.nn.Linear(width, 2)\n"
    )
    (root / "pairs_binary.csv").write_bytes(bytes(range(256)) * 8)
    (root / "pairs_one_column.csv").write_text("only\nsome\ntext\n")
    (root / "pairs_empty.csv").write_text("")
    (root / "a_file").write_text("I am a file\n")
    (root / "existing_dir").mkdir()
    (root / "not_an_lm").mkdir()
    (root / "not_an_lm" / "config.json").write_text("{}")
    (root / "statements_one_class.csv").write_text("statement,label\nA is B.,1\nC is D.,1\n")
    (root / "statements_bad_label.csv").write_text("statement,label\nA is B.,maybe\nC is D.,0\n")
    header = "scale,task,metric,value\n"
    (root / "runs_duplicated.csv").write_text(header + "1,add,acc,0.1\n1,add,acc,0.2\n2,add,acc,0.3\n")
    (root / "runs_unsorted.csv").write_text(header + "2,add,acc,0.1\n1,add,acc,0.2\n3,add,acc,0.3\n")
    (root / "runs_one_point.csv").write_text(header + "1,add,acc,0.1\n")
    (root / "runs_nan.csv").write_text(header + "1,add,acc,0.1\n2,add,acc,nan\n3,add,acc,0.3\n")
    (root / "runs_no_values.csv").write_text(header + "1,add,acc,\n2,add,acc,\n3,add,acc,\n")
    (root / "runs_mismatched.csv").write_text("scale,task,example,output,target\n1,add,0,1,1\n1,add,1,2,2\n"
                                              "2,add,0,1,1\n3,add,0,1,1\n3,add,1,2,2\n")
    (root / "runs_bad.json").write_text('{"records": 5}')
    (root / "runs_ok.csv").write_text(header + "1,add,acc,0.0\n2,add,acc,0.0\n4,add,acc,0.9\n8,add,acc,1.0\n")
    return root


LONG = "x" * 300
# (id, argv) -- "{w}" is the workspace folder; every case must end with exit code 2.
CASES: list[tuple[str, list[str]]] = [
    # parser errors
    ("unknown-command", ["nosuchcommand"]),
    ("unknown-flag", ["audit", "--no-such-flag"]),
    ("seed-not-int", ["audit", "--seed", "abc"]),
    ("info-extra-arg", ["info", "foo"]),
    ("values-score-no-text", ["values", "score"]),
    ("corrupt-missing-out", ["corrupt"]),
    ("backdoor-unknown-sub", ["backdoor", "nosuch"]),
    # audit options, refused before anything is loaded
    ("seed-negative", ["audit", "--seed", "-1"]),
    ("seed-huge", ["audit", "--seed", str(2**70)]),
    ("device-unknown", ["audit", "--device", "tpu"]),
    ("device-missing-cuda", ["audit", "--device", "cuda:99"]),
    ("checks-empty", ["audit", "--checks", ""]),
    ("checks-commas", ["audit", "--checks", ",,"]),
    ("checks-unknown", ["audit", "--checks", "acuracy"]),
    ("threshold-nan", ["audit", "--fail-under", "accuracy=nan"]),
    ("threshold-inf", ["audit", "--fail-over", "accuracy=-inf"]),
    ("threshold-no-value", ["audit", "--fail-under", "accuracy"]),
    ("threshold-not-number", ["audit", "--fail-under", "accuracy=high"]),
    ("threshold-unknown-metric", ["audit", "--fail-under", "nosuchmetric=0.5"]),
    ("threshold-unknown-check-metric", ["audit", "--fail-under", "ood.nosuch=0.5"]),
    ("threshold-check-not-run", ["audit", "--checks", "calibration", "--fail-under", "accuracy.accuracy=0.9"]),
    ("threshold-ambiguous", ["audit", "--fail-under", "clean_accuracy=0.5"]),
    ("out-is-file", ["audit", "--out", "{w}/a_file"]),
    ("out-under-file", ["audit", "--out", "{w}/a_file/report"]),
    ("out-name-too-long", ["audit", "--out", "{w}/" + LONG]),
    ("out-not-creatable", ["audit", "--out", "/proc/mlsafety-cannot-write-here"]),
    ("architecture-without-model", ["audit", "--architecture", "small_cnn"]),
    ("normalization-without-model", ["audit", "--normalization", "none"]),
    ("normalization-bogus", ["audit", "--model", "{w}/state.pt", "--normalization", "bogus"]),
    ("ood-empty-name", ["audit", "--ood", "=x.npz"]),
    # models
    ("model-missing", ["audit", "--model", "{w}/absent.safetensors"]),
    ("model-colon", ["audit", "--model", ":"]),
    ("model-bad-entry", ["audit", "--model", "no_such_module_xyz:build"]),
    ("model-entry-not-module", ["audit", "--model", "factories:not_a_module"]),
    ("model-entry-raises", ["audit", "--model", "factories:raises"]),
    ("model-entry-needs-args", ["audit", "--model", "factories:needs_args"]),
    ("model-entry-missing-function", ["audit", "--model", "factories:nope"]),
    ("model-entry-with-architecture", ["audit", "--model", "factories:raises", "--architecture", "small_cnn"]),
    ("model-folder", ["audit", "--model", "{w}/a_folder.pt"]),
    ("model-name-too-long", ["audit", "--model", "{w}/" + LONG + ".pt"]),
    ("safetensors-empty", ["audit", "--model", "{w}/empty.safetensors", "--data", "{w}/d16.npz"]),
    ("safetensors-truncated", ["audit", "--model", "{w}/truncated.safetensors", "--data", "{w}/d16.npz"]),
    ("safetensors-garbage", ["audit", "--model", "{w}/garbage.safetensors", "--data", "{w}/d16.npz"]),
    ("safetensors-bad-metadata", ["audit", "--model", "{w}/bad_metadata.safetensors", "--data", "{w}/d16.npz"]),
    ("safetensors-plain-no-architecture", ["audit", "--model", "{w}/plain.safetensors", "--data", "{w}/d16.npz"]),
    ("safetensors-plain-no-normalization", ["audit", "--model", "{w}/plain.safetensors", "--architecture",
                                            "small_cnn", "--data", "{w}/d16.npz"]),
    ("safetensors-architecture-conflict", ["audit", "--model", "{w}/ours16.safetensors", "--architecture",
                                           "preact_resnet", "--data", "{w}/d16.npz"]),
    ("pt-empty", ["audit", "--model", "{w}/empty.pt", "--architecture", "small_cnn", "--normalization", "none"]),
    ("pt-truncated", ["audit", "--model", "{w}/truncated.pt", "--architecture", "small_cnn",
                      "--normalization", "none"]),
    ("pt-garbage", ["audit", "--model", "{w}/garbage.pt", "--architecture", "small_cnn", "--normalization", "none"]),
    ("pt-pickled-code", ["audit", "--model", "{w}/evil.pt", "--architecture", "small_cnn",
                         "--normalization", "none"]),
    ("pt-zip-pickled-code", ["audit", "--model", "{w}/evil_zip.pt", "--architecture", "small_cnn",
                             "--normalization", "none"]),
    ("pt-no-architecture", ["audit", "--model", "{w}/state.pt"]),
    ("pt-no-normalization", ["audit", "--model", "{w}/state.pt", "--architecture", "small_cnn",
                             "--data", "{w}/d16.npz"]),
    ("pt-unknown-architecture", ["audit", "--model", "{w}/state.pt", "--architecture", "resnet9000",
                                 "--normalization", "none"]),
    ("pt-wrong-architecture", ["audit", "--model", "{w}/state.pt", "--architecture", "preact_resnet",
                               "--normalization", "none"]),
    ("torchscript-with-architecture", ["audit", "--model", "{w}/scripted.pt", "--architecture", "small_cnn"]),
    ("torchscript-returns-tuple", ["audit", "--model", "{w}/tuple.torchscript.pt", "--data", "{w}/d16.npz",
                                  "--checks", "accuracy"]),
    ("model-fails-on-shape", ["audit", "--model", "{w}/state.pt", "--architecture", "small_cnn",
                              "--normalization", "none", "--data", "{w}/f28_label10.npz", "--checks", "accuracy"]),
    ("model-input-shape-mismatch", ["audit", "--data", "{w}/d16.npz", "--checks", "accuracy"]),
    ("normalization-channels", ["audit", "--model", "{w}/ours16.safetensors", "--data", "{w}/d16_rgb.npz",
                                "--checks", "accuracy"]),
    # data
    ("data-missing", ["audit", "--data", "{w}/absent.npz"]),
    ("data-unsupported-file", ["audit", "--data", "{w}/notes.txt"]),
    ("data-name-too-long", ["audit", "--data", "{w}/" + LONG + ".npz"]),
    ("npz-empty-file", ["audit", "--data", "{w}/empty.npz"]),
    ("npz-truncated", ["audit", "--data", "{w}/truncated.npz"]),
    ("npz-garbage", ["audit", "--data", "{w}/garbage.npz"]),
    ("npz-no-y", ["audit", "--data", "{w}/f28_no_y.npz"]),
    ("npz-object-array", ["audit", "--data", "{w}/f28_object.npz"]),
    ("npz-nan", ["audit", "--data", "{w}/f28_nan.npz"]),
    ("npz-pixel-range", ["audit", "--data", "{w}/f28_range.npz"]),
    ("npz-length-mismatch", ["audit", "--data", "{w}/f28_lengths.npz"]),
    ("npz-float-labels", ["audit", "--data", "{w}/f28_float_labels.npz"]),
    ("npz-no-images", ["audit", "--data", "{w}/f28_empty.npz"]),
    ("npz-bad-shape", ["audit", "--data", "{w}/f28_bad_shape.npz"]),
    ("labels-huge", ["audit", "--data", "{w}/f28_huge_label.npz"]),
    ("labels-negative", ["audit", "--data", "{w}/f28_negative.npz"]),
    ("labels-beyond-model", ["audit", "--data", "{w}/f28_label10.npz", "--checks", "accuracy"]),
    ("validation-other-shape", ["audit", "--model", "{w}/ours16.safetensors", "--data", "{w}/d16.npz",
                                "--validation", "{w}/f28_label10.npz", "--checks", "accuracy"]),
    ("images-text-as-png", ["audit", "--data", "{w}/images_text"]),
    ("images-zero-byte-png", ["audit", "--data", "{w}/images_empty"]),
    ("images-no-classes", ["audit", "--data", "{w}/images_none"]),
    ("images-no-images", ["audit", "--data", "{w}/images_ok"]),
    ("cifar-empty", ["audit", "--data", "{w}/cifar_empty"]),
    ("cifar-truncated", ["audit", "--data", "{w}/cifar_truncated"]),
    ("cifar-pickled-code", ["audit", "--data", "{w}/cifar_evil"]),
    ("cifar-not-a-batch", ["audit", "--data", "{w}/cifar_list"]),
    ("ood-missing", ["audit", "--ood", "far={w}/absent.npz"]),
    # train
    ("train-out-txt", ["train", "--out", "{w}/model.txt"]),
    ("train-out-folder", ["train", "--out", "{w}/existing_dir"]),
    ("train-out-under-file", ["train", "--out", "{w}/a_file/m.safetensors"]),
    ("train-device-cuda", ["train", "--device", "cuda:99"]),
    ("train-epochs-zero", ["train", "--epochs", "0"]),
    ("train-lr-nan", ["train", "--learning-rate", "nan"]),
    ("train-seed-huge", ["train", "--seed", "99999999999999999999"]),
    ("train-unknown-architecture", ["train", "--architecture", "resnet9000"]),
    ("train-test-without-data", ["train", "--test", "{w}/d16.npz"]),
    ("train-test-class-mismatch", ["train", "--data", "{w}/d16.npz", "--test", "{w}/d16_3class.npz",
                                   "--out", "{w}/out_train/m.safetensors"]),
    ("train-data-garbage", ["train", "--data", "{w}/garbage.npz", "--out", "{w}/out_train/m.safetensors"]),
    # --executor / --address / --workers (audit, corrupt, proxy sweep)
    ("executor-unknown", ["audit", "--executor", "spark"]),
    ("executor-workers-zero", ["audit", "--executor", "ray", "--workers", "0"]),
    ("executor-address-unreachable", ["audit", "--executor", "ray", "--address", "127.0.0.1:1"]),
    ("executor-address-malformed", ["audit", "--executor", "ray", "--address", "head-node"]),
    ("executor-address-without-ray", ["audit", "--address", "auto"]),
    ("executor-workers-without-ray", ["audit", "--workers", "2"]),
    ("corrupt-workers-zero", ["corrupt", "--out", "{w}/out_c", "--executor", "ray", "--workers", "0"]),
    ("corrupt-address-unreachable", ["corrupt", "--out", "{w}/out_c", "--executor", "ray", "--address",
                                     "127.0.0.1:1"]),
    ("proxy-sweep-workers-zero", ["proxy", "sweep", "--out", "{w}/out_p", "--executor", "ray", "--workers", "0"]),
    ("proxy-sweep-address-unreachable", ["proxy", "sweep", "--out", "{w}/out_p", "--executor", "ray",
                                         "--address", "127.0.0.1:1"]),
    # corrupt
    ("corrupt-severity", ["corrupt", "--out", "{w}/out_c", "--severities", "0"]),
    ("corrupt-unknown", ["corrupt", "--out", "{w}/out_c", "--corruptions", "nosuch"]),
    ("corrupt-out-file", ["corrupt", "--out", "{w}/a_file"]),
    ("corrupt-limit", ["corrupt", "--out", "{w}/out_c", "--limit", "0"]),
    ("corrupt-empty-data", ["corrupt", "--out", "{w}/out_c", "--data", "{w}/empty.npz"]),
    ("corrupt-device", ["corrupt", "--out", "{w}/out_c", "--device", "cuda:99"]),
    ("corrupt-resolution", ["corrupt", "--out", "{w}/out_c", "--resolution", "huge"]),
    ("corrupt-seed", ["corrupt", "--out", "{w}/out_c", "--seed", "-3"]),
    # backdoor scan
    ("backdoor-steps", ["backdoor", "scan", "--steps", "0"]),
    ("backdoor-out-file", ["backdoor", "scan", "--out", "{w}/a_file"]),
    ("backdoor-model-garbage", ["backdoor", "scan", "--model", "{w}/garbage.safetensors", "--out", "{w}/out_b"]),
    ("backdoor-seed", ["backdoor", "scan", "--seed", "-5"]),
    ("backdoor-device", ["backdoor", "scan", "--device", "cuda:99"]),
    # values
    ("values-pairs-binary", ["values", "train", "--encoder", "hashing", "--pairs", "{w}/pairs_binary.csv",
                             "--out", "{w}/out_v/u.safetensors"]),
    ("values-pairs-one-column", ["values", "train", "--encoder", "hashing", "--pairs", "{w}/pairs_one_column.csv",
                                 "--out", "{w}/out_v/u.safetensors"]),
    ("values-pairs-empty", ["values", "train", "--encoder", "hashing", "--pairs", "{w}/pairs_empty.csv",
                            "--out", "{w}/out_v/u.safetensors"]),
    ("values-pairs-missing", ["values", "train", "--encoder", "hashing", "--pairs", "{w}/absent.csv",
                              "--out", "{w}/out_v/u.safetensors"]),
    ("values-out-txt", ["values", "train", "--out", "{w}/u.txt"]),
    ("values-head", ["values", "train", "--head", "tree"]),
    ("values-loss", ["values", "train", "--loss", "hinge"]),
    ("values-eval-garbage-model", ["values", "eval", "--model", "{w}/garbage.safetensors", "--out", "{w}/out_ve"]),
    ("values-eval-missing-model", ["values", "eval", "--model", "{w}/absent.safetensors", "--out", "{w}/out_ve"]),
    ("values-score-garbage-model", ["values", "score", "--model", "{w}/garbage.safetensors", "hello"]),
    # proxy
    ("proxy-envs-empty", ["proxy", "detect", "--envs", "", "--out", "{w}/out_p"]),
    ("proxy-envs-unknown", ["proxy", "detect", "--envs", "nosuch", "--out", "{w}/out_p"]),
    ("proxy-seeds", ["proxy", "sweep", "--seeds", "0", "--out", "{w}/out_p"]),
    ("proxy-env-unknown", ["proxy", "sweep", "--env", "nosuch", "--out", "{w}/out_p"]),
    ("proxy-label-noise", ["proxy", "overoptimization", "--label-noise", "0.7", "--out", "{w}/out_p"]),
    ("proxy-out-file", ["proxy", "sweep", "--out", "{w}/a_file"]),
    ("proxy-values", ["proxy", "sweep", "--values", "1,x", "--out", "{w}/out_p"]),
    # honesty
    ("honesty-probe-unknown", ["honesty", "probe", "--probe", "svm", "--out", "{w}/out_h/p.safetensors"]),
    ("honesty-model-not-an-lm", ["honesty", "probe", "--model", "{w}/not_an_lm", "--n", "20",
                                 "--out", "{w}/out_h/p.safetensors"]),
    ("honesty-model-missing", ["honesty", "probe", "--model", "{w}/absent_lm", "--out", "{w}/out_h/p.safetensors"]),
    ("honesty-csv-one-class", ["honesty", "probe", "--data", "{w}/statements_one_class.csv",
                               "--out", "{w}/out_h/p.safetensors"]),
    ("honesty-csv-bad-label", ["honesty", "probe", "--data", "{w}/statements_bad_label.csv",
                               "--out", "{w}/out_h/p.safetensors"]),
    ("honesty-csv-binary", ["honesty", "probe", "--data", "{w}/pairs_binary.csv", "--out", "{w}/out_h/p.safetensors"]),
    ("honesty-csv-no-columns", ["honesty", "probe", "--data", "{w}/pairs_one_column.csv",
                                "--out", "{w}/out_h/p.safetensors"]),
    ("honesty-data-unknown", ["honesty", "probe", "--data", "nosuch", "--out", "{w}/out_h/p.safetensors"]),
    ("honesty-dtype", ["honesty", "probe", "--dtype", "float8", "--out", "{w}/out_h/p.safetensors"]),
    ("honesty-layer", ["honesty", "probe", "--layer", "-3", "--out", "{w}/out_h/p.safetensors"]),
    ("honesty-probe-out-file", ["honesty", "probe", "--out", "{w}/a_file"]),
    ("honesty-eval-feature", ["honesty", "eval", "--feature", "first", "--out", "{w}/out_h"]),
    ("honesty-eval-n", ["honesty", "eval", "--n", "0", "--out", "{w}/out_h"]),
    ("honesty-eval-out-file", ["honesty", "eval", "--out", "{w}/a_file"]),
    ("honesty-eval-disagreement", ["honesty", "eval", "--max-disagreement", "1.5", "--out", "{w}/out_h"]),
    ("honesty-eval-probes", ["honesty", "eval", "--probes", "nosuch", "--out", "{w}/out_h"]),
    # emergence
    ("emergence-runs-missing", ["emergence", "analyze", "{w}/absent.csv", "--out", "{w}/out_e"]),
    ("emergence-runs-duplicated", ["emergence", "analyze", "{w}/runs_duplicated.csv", "--out", "{w}/out_e"]),
    ("emergence-runs-unsorted", ["emergence", "analyze", "{w}/runs_unsorted.csv", "--out", "{w}/out_e"]),
    ("emergence-runs-one-point", ["emergence", "analyze", "{w}/runs_one_point.csv", "--out", "{w}/out_e"]),
    ("emergence-runs-nan", ["emergence", "analyze", "{w}/runs_nan.csv", "--out", "{w}/out_e"]),
    ("emergence-runs-no-values", ["emergence", "analyze", "{w}/runs_no_values.csv", "--out", "{w}/out_e"]),
    ("emergence-runs-mismatched", ["emergence", "analyze", "{w}/runs_mismatched.csv", "--out", "{w}/out_e"]),
    ("emergence-runs-binary", ["emergence", "analyze", "{w}/pairs_binary.csv", "--out", "{w}/out_e"]),
    ("emergence-runs-bad-json", ["emergence", "analyze", "{w}/runs_bad.json", "--out", "{w}/out_e"]),
    ("emergence-confidence", ["emergence", "analyze", "{w}/runs_unsorted.csv", "--confidence", "1.5",
                              "--out", "{w}/out_e"]),
    ("emergence-method", ["emergence", "analyze", "{w}/runs_unsorted.csv", "--method", "foo", "--out", "{w}/out_e"]),
    ("emergence-out-file", ["emergence", "analyze", "{w}/runs_ok.csv", "--out", "{w}/a_file"]),
    ("emergence-sizes", ["emergence", "testbed", "scaling", "--sizes", "16x1", "--out", "{w}/out_e"]),
    ("emergence-tasks", ["emergence", "testbed", "scaling", "--tasks", "poetry", "--out", "{w}/out_e"]),
]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    state = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if relative.split("/")[0].startswith(("out_", "mlsafety-")) or "__pycache__" in relative:
            continue
        info = path.stat()
        state[relative] = (info.st_size, info.st_mtime_ns)
    return state


def _show_on_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def test_the_table_is_large_and_unique() -> None:
    assert len(CASES) >= 80
    assert len({case_id for case_id, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("case_id", "argv"), CASES, ids=[c for c, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(case_id, argv, workspace, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MLSAFETY_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(workspace))
    sys.modules.pop("factories", None)
    args = [a.replace("{w}", str(workspace)) for a in argv]
    before = _snapshot(workspace)
    with warnings.catch_warnings():
        # pytest records warnings; show them on stderr under Python's default filters, as a user sees them
        warnings.showwarning = _show_on_stderr
        warnings.resetwarnings()
        for hidden in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", hidden)
        result = runner.invoke(app, args)
    stderr_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, f"{case_id}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert len(stderr_lines) == 1, f"{case_id}: stderr was\n{result.stderr}"
    assert stderr_lines[0].startswith("error: "), stderr_lines[0]
    assert "Traceback" not in result.output
    assert not (workspace / MARKER).exists(), f"{case_id}: code ran from a pickle"
    assert _snapshot(workspace) == before, f"{case_id}: changed files outside --out"


@pytest.mark.parametrize("argv", [["audit", "--executor", "ray"],
                                  ["corrupt", "--out", "{w}/out_c", "--executor", "ray"],
                                  ["proxy", "sweep", "--out", "{w}/out_p", "--executor", "ray"]],
                         ids=["audit", "corrupt", "proxy-sweep"])
def test_ray_executor_without_ray_installed_is_one_line_and_exit_2(argv, workspace, monkeypatch) -> None:
    monkeypatch.chdir(workspace)
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray looks like to import
    result = runner.invoke(app, [a.replace("{w}", str(workspace)) for a in argv])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and "mlsafety[ray]" in lines[0], result.stderr


def test_pickled_code_is_never_run(workspace, monkeypatch) -> None:
    """The same payload unpickled without restriction does create the marker (the test can fail)."""
    monkeypatch.chdir(workspace)
    with open(workspace / "evil.pt", "rb") as stream:
        pickle.load(stream).close()
    assert (workspace / MARKER).exists()
    (workspace / MARKER).unlink()


def test_shipped_weights_as_plain_state_dict_need_normalisation(workspace, monkeypatch, tmp_path) -> None:
    """The reported silent wrong answer: the default weights as .pt without their normalisation."""
    from mlsafety.data import default_splits

    test = default_splits()["test"].head(400, seed=1)
    data = tmp_path / "f.npz"
    np.savez(data, x=(test.images.numpy()[:, 0] * 255).round().astype(np.uint8), y=test.labels.numpy())
    state = tmp_path / "default.pt"
    from safetensors.torch import load_file

    torch.save(load_file(str(default_checkpoint())), state)
    base = ["audit", "--model", str(state), "--architecture", "small_cnn", "--data", str(data), "--checks", "accuracy"]
    refused = runner.invoke(app, [*base, "--out", str(tmp_path / "r0")])
    assert refused.exit_code == 2 and "--normalization" in refused.stderr
    right = runner.invoke(app, [*base, "--normalization", "fashion-mnist", "--out", str(tmp_path / "r1")])
    assert right.exit_code == 0, right.output
    wrong = runner.invoke(app, [*base, "--normalization", "none", "--out", str(tmp_path / "r2")])
    import json

    accuracy_right = json.loads((tmp_path / "r1" / "report.json").read_text())["checks"][0]["metrics"]["accuracy"]
    report_wrong = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert accuracy_right > 0.8
    # a wrong normalisation is still possible when asked for, but it cannot pass unnoticed
    if report_wrong["checks"][0]["metrics"]["accuracy"] < 0.3:
        assert report_wrong["overall_verdict"] in ("warn", "fail") and report_wrong["metadata"]["warnings"]
        assert "warning:" in wrong.stderr


def test_fewer_labelled_classes_and_chance_accuracy_warn(workspace, monkeypatch, tmp_path) -> None:
    out = tmp_path / "r"
    result = runner.invoke(app, ["audit", "--model", str(workspace / "ours16.safetensors"), "--data",
                                 str(workspace / "d16_3class.npz"), "--checks", "accuracy", "--out", str(out)])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads((out / "report.json").read_text())
    warnings = " ".join(report["metadata"]["warnings"])
    assert "labels for 3 classes" in warnings
    # the untrained width-4 network is at chance on these labels: the report says so and cannot pass
    assert "chance" in warnings and report["overall_verdict"] != "pass"


def test_second_run_on_the_same_folder_is_refused(tmp_path) -> None:
    from mlsafety._io import locked_output_dir

    out = tmp_path / "shared"
    stale = out / "results" / ".accuracy.json.abc123.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_text("{")
    import multiprocessing

    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.get_context("fork").Process(target=_hold, args=(str(out), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        result = runner.invoke(app, ["audit", "--checks", "accuracy", "--quick", "--out", str(out)])
        assert result.exit_code == 2 and "in use by process" in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1
    finally:
        release.set()
        holder.join(30)
    with locked_output_dir(out):
        assert not stale.exists()  # leftovers of killed runs are removed once the folder is ours


def _hold(folder: str, ready, release) -> None:
    from mlsafety._io import locked_output_dir

    with locked_output_dir(folder, command="test holder"):
        ready.set()
        release.wait(60)


def test_internal_errors_are_one_line_with_exit_3_and_traceback_behind_debug(monkeypatch) -> None:
    import mlsafety.cli.info as info_module

    def broken() -> dict:
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(info_module, "package_versions", broken)
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error ZeroDivisionError" in lines[0] and "--debug" in lines[0]
    debug = runner.invoke(app, ["--debug", "info"])
    assert isinstance(debug.exception, ZeroDivisionError)
    from mlsafety.cli._app import settings

    settings.debug = False


def test_zip_member_sizes_are_checked_before_allocation(tmp_path) -> None:
    """A header that declares a huge array is refused without allocating it."""
    path = tmp_path / "bomb.npz"
    np.savez(path, x=np.zeros((2, 28, 28), np.uint8), y=np.zeros(2, np.int64))
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (99999999, 28, 28), }"
    members["x.npy"] = b"\x93NUMPY\x01\x00" + len(header.ljust(118) + b"\n").to_bytes(2, "little") + \
        header.ljust(118) + b"\n" + bytes(2 * 28 * 28)
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    from mlsafety.data import load_npz
    from mlsafety.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match="declares"):
        load_npz(path)
