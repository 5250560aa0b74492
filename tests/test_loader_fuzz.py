"""Property-based fuzz of every loader of users' files: damaged bytes raise MLSafetyError only.

Each loader gets a small valid file, and hypothesis mutates its bytes (truncation, byte
flips, insertions, or bytes replaced wholesale). Whatever the mutation, a loader may
return a valid object or raise an :class:`MLSafetyError` (which the CLI turns into one
line and exit 2); any other exception is a traceback a user would see, and fails here.
"""

from __future__ import annotations

import gzip
import io
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save as save_safetensors

from mlsafety.alignment.values.ethics import load_ethics_utilitarianism
from mlsafety.alignment.values.pairs import load_pair_file
from mlsafety.data import ImageDataset, load_cifar10, load_fashion_mnist, load_image_folder, load_npz
from mlsafety.exceptions import MLSafetyError
from mlsafety.models.architectures import build_architecture
from mlsafety.models.classifier import Classifier
from mlsafety.models.loading import load_classifier, save_checkpoint
from mlsafety.monitoring.emergence.schema import load_runs
from mlsafety.monitoring.honesty.datasets.base import load_statements_csv

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# A mutation is (kind, parameters); positions are fractions of the file length so one
# strategy serves files of any size.
MUTATIONS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0, exclude_max=True)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)),
                                        min_size=1, max_size=16)),
    st.tuples(st.just("insert"), st.tuples(st.floats(0.0, 1.0), st.binary(min_size=1, max_size=32))),
    st.tuples(st.just("replace"), st.binary(max_size=512)),
)


def mutate(data: bytes, mutation: tuple) -> bytes:
    kind, parameters = mutation
    if kind == "truncate":
        return data[: int(parameters * len(data))]
    if kind == "flip":
        out = bytearray(data)
        for position, value in parameters:
            index = int(position * len(out))
            out[index] = value if out[index] != value else (value + 1) % 256
        return bytes(out)
    if kind == "insert":
        position, payload = parameters
        index = int(position * len(data))
        return data[:index] + payload + data[index:]
    return parameters


@contextmanager
def scratch() -> Iterator[Path]:
    # hypothesis reruns the body many times in one test; a fresh folder per example
    folder = Path(tempfile.mkdtemp(prefix="mlsafety-fuzz-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def loads_or_refuses(load: Callable[[], object], check: Callable[[object], None]) -> None:
    try:
        result = load()
    except MLSafetyError as error:
        message = str(error)
        assert message and "\n" not in message.strip(), f"error message is not one line: {message!r}"
        return
    check(result)


def valid_dataset(result: object) -> None:
    assert isinstance(result, ImageDataset)
    assert torch.isfinite(result.images).all()
    assert result.images.min() >= 0 and result.images.max() <= 1
    if len(result):
        assert int(result.labels.min()) >= 0 and int(result.labels.max()) < len(result.class_names)


def valid_classifier(result: object) -> None:
    assert isinstance(result, Classifier)


def valid_rows(result: object) -> None:
    assert len(result) > 0  # type: ignore[arg-type]


def valid_rows_table(result: object) -> None:
    assert result.curves  # type: ignore[attr-defined]


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=_rng().integers(0, 256, (6, 8, 8), dtype=np.uint8), y=np.array([0, 1, 2, 0, 1, 2]))
    return buffer.getvalue()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_rng().integers(0, 256, (8, 8), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def cifar_batch_bytes() -> bytes:
    batch = {b"data": _rng().integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 3, 9, 1]}
    return pickle.dumps(batch, protocol=2)


def idx_bytes(images: bool) -> bytes:
    if images:
        header = bytes([0, 0, 8, 3]) + (5).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
        body = _rng().integers(0, 256, 5 * 28 * 28, dtype=np.uint8).tobytes()
    else:
        header = bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big")
        body = bytes([0, 1, 2, 3, 9])
    return header + body


def tiny_module() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_architecture("small_cnn", in_channels=1, n_classes=10, width=2)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("models")
    module = tiny_module().eval()
    classifier = Classifier(module, mean=[0.5], std=[0.25], class_names=[str(i) for i in range(10)],
                            input_shape=(1, 28, 28))
    save_checkpoint(classifier, folder / "m.safetensors", "small_cnn", {"in_channels": 1, "width": 2})
    raw_safetensors = save_safetensors({k: v.contiguous() for k, v in module.state_dict().items()})
    torch.save(module.state_dict(), folder / "m.pt")
    torch.jit.save(torch.jit.script(module), folder / "m.torchscript")
    return {
        "safetensors": (folder / "m.safetensors").read_bytes(),
        "raw_safetensors": raw_safetensors,
        "pt": (folder / "m.pt").read_bytes(),
        "torchscript": (folder / "m.torchscript").read_bytes(),
    }


@FUZZ
@given(mutation=MUTATIONS)
def test_npz_loader(mutation: tuple) -> None:
    with scratch() as folder:
        file = folder / "data.npz"
        file.write_bytes(mutate(npz_bytes(), mutation))
        loads_or_refuses(lambda: load_npz(file), valid_dataset)


@FUZZ
@given(mutation=MUTATIONS, damaged=st.integers(0, 3))
def test_image_folder_loader(mutation: tuple, damaged: int) -> None:
    with scratch() as folder:
        for index in range(4):
            (folder / f"class{index % 2}").mkdir(exist_ok=True)
            data = png_bytes()
            (folder / f"class{index % 2}" / f"{index}.png").write_bytes(
                mutate(data, mutation) if index == damaged else data)
        loads_or_refuses(lambda: load_image_folder(folder), valid_dataset)


@FUZZ
@given(mutation=MUTATIONS)
def test_cifar_loader(mutation: tuple) -> None:
    with scratch() as folder:
        (folder / "test_batch").write_bytes(mutate(cifar_batch_bytes(), mutation))
        loads_or_refuses(lambda: load_cifar10(folder, "test"), valid_dataset)


@FUZZ
@given(mutation=MUTATIONS, which=st.sampled_from(["images", "labels"]), compressed=st.booleans())
def test_idx_loader(mutation: tuple, which: str, compressed: bool) -> None:
    with scratch() as folder:
        for kind in ("images", "labels"):
            data = idx_bytes(kind == "images")
            if compressed:
                data = gzip.compress(data)
            if kind == which:
                data = mutate(data, mutation)
            stem = f"t10k-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
            (folder / (stem + (".gz" if compressed else ""))).write_bytes(data)
        loads_or_refuses(lambda: load_fashion_mnist("test", path=folder), valid_dataset)


@FUZZ
@given(mutation=MUTATIONS, kind=st.sampled_from(["safetensors", "raw_safetensors", "pt", "torchscript"]))
def test_model_file_loader(model_files: dict[str, bytes], mutation: tuple, kind: str) -> None:
    suffix = {"safetensors": ".safetensors", "raw_safetensors": ".safetensors", "pt": ".pt",
              "torchscript": ".torchscript"}[kind]
    options: dict[str, object] = {}
    if kind in ("raw_safetensors", "pt"):
        options = {"architecture": "small_cnn", "architecture_kwargs": {"width": 2}, "normalization": "none"}
    with scratch() as folder:
        file = folder / f"model{suffix}"
        file.write_bytes(mutate(model_files[kind], mutation))
        loads_or_refuses(lambda: load_classifier(file, **options), valid_classifier)


PAIRS_CSV = "better,worse\nI won the lottery.,I lost my keys.\nA sunny day at the beach.,A flat tyre in the rain.\n"
ETHICS_CSV = ("I ate a warm meal with friends.,I ate a cold meal alone.\n"
              "I found ten dollars.,I lost ten dollars.\n")
STATEMENTS_CSV = ("statement,label\nParis is in France.,1\nParis is in Peru.,0\n"
                  "Rome is in Italy.,1\nRome is in Chad.,0\n")


@pytest.mark.filterwarnings("ignore::mlsafety.exceptions.MLSafetyWarning")  # "fewer rows than the paper"
@FUZZ
@given(mutation=MUTATIONS, which=st.sampled_from(["pairs", "ethics", "statements"]),
       compressed=st.booleans())
def test_text_table_loaders(mutation: tuple, which: str, compressed: bool) -> None:
    text = {"pairs": PAIRS_CSV, "ethics": ETHICS_CSV, "statements": STATEMENTS_CSV}[which]
    with scratch() as folder:
        if which == "ethics":
            name = "util_train.csv.gz" if compressed else "util_train.csv"
            data = gzip.compress(text.encode()) if compressed else text.encode()
            (folder / name).write_bytes(mutate(data, mutation))
            loads_or_refuses(lambda: load_ethics_utilitarianism(folder, "train"), valid_rows)
            return
        file = folder / "table.csv"
        file.write_bytes(mutate(text.encode(), mutation))
        load = load_pair_file if which == "pairs" else load_statements_csv
        loads_or_refuses(lambda: load(file), valid_rows)


RUNS_CSV = ("scale,task,metric,value\n1,add,exact_match,0.0\n2,add,exact_match,0.1\n4,add,exact_match,0.9\n"
            "8,add,exact_match,1.0\n")
RUNS_OUTPUTS_CSV = ("scale,task,example,output,target\n1,add,0,12,13\n1,add,1,7,7\n2,add,0,13,13\n2,add,1,7,7\n"
                    "4,add,0,13,13\n4,add,1,8,7\n")
RUNS_JSON = ('{"records": [{"scale": 1, "task": "add", "metric": "exact_match", "value": 0.0}, '
             '{"scale": 2, "task": "add", "metric": "exact_match", "value": 0.5}, '
             '{"scale": 3, "task": "add", "metric": "exact_match", "value": 1.0}]}')


@FUZZ
@given(mutation=MUTATIONS, which=st.sampled_from(["csv", "outputs", "json"]))
def test_run_table_loader(mutation: tuple, which: str) -> None:
    text = {"csv": RUNS_CSV, "outputs": RUNS_OUTPUTS_CSV, "json": RUNS_JSON}[which]
    with scratch() as folder:
        file = folder / ("runs.json" if which == "json" else "runs.csv")
        file.write_bytes(mutate(text.encode(), mutation))
        loads_or_refuses(lambda: load_runs(file), valid_rows_table)
