"""Loaders on small generated files, and the bad-input errors they raise."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from mlsafety.data import (
    ImageDataset,
    load_cifar10,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_image_folder,
    load_npz,
    read_idx,
)
from mlsafety.exceptions import (
    DataNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    ShapeError,
    UnsafeModelFileError,
)


def _write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture()
def idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n, gz in (("train", 6, True), ("t10k", 4, False)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        suffix = ".gz" if gz else ""
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
    return tmp_path


def test_fashion_mnist_from_generated_idx(idx_folder, monkeypatch) -> None:
    test = load_fashion_mnist("test", idx_folder)
    assert test.images.shape == (4, 1, 28, 28) and test.labels.tolist() == [0, 1, 2, 3]
    raw = read_idx(idx_folder / "t10k-images-idx3-ubyte")
    assert torch.allclose(test.images[:, 0] * 255, torch.from_numpy(raw).float())
    monkeypatch.setenv("MLSAFETY_DATA", str(idx_folder))
    assert len(load_fashion_mnist("train")) == 6  # found through $MLSAFETY_DATA, gzipped


def test_fashion_mnist_missing_says_how_to_install(tmp_path) -> None:
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("test", tmp_path / "nowhere")


def test_idx_truncated(tmp_path) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(InvalidInputError, match="truncated"):
        read_idx(path)


def test_npz_hwc_uint8_and_chw_float(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", x=x, y=np.array([0, 1, 2, 1, 0]))
    data = load_npz(tmp_path / "a.npz")
    assert data.images.shape == (5, 3, 8, 8)
    assert torch.allclose(data.images[1, 2] * 255, torch.from_numpy(x[1, :, :, 2]).float())
    np.savez(tmp_path / "b.npz", x=rng.random((3, 1, 8, 8), dtype=np.float32), y=np.array([0, 1, 0]))
    assert load_npz(tmp_path / "b.npz").images.shape == (3, 1, 8, 8)


@pytest.mark.parametrize(
    ("x", "y", "error", "match"),
    [
        (np.zeros((2, 1, 8, 8), np.float32) + 200, np.array([0, 1]), InvalidInputError, "Divide 8-bit"),
        (np.full((2, 1, 8, 8), np.nan, np.float32), np.array([0, 1]), InvalidInputError, "NaN"),
        (np.zeros((2, 8, 8, 3), np.float32), np.array([0, 1]), ShapeError, "channels first"),
        (np.zeros((2, 8), np.uint8), np.array([0, 1]), ShapeError, "must be"),
        (np.zeros((2, 8, 8, 1), np.uint8), np.array([0, 1, 1]), ShapeError, "labels"),
    ],
)
def test_npz_bad_input(tmp_path, x, y, error, match) -> None:
    np.savez(tmp_path / "bad.npz", x=x, y=y)
    with pytest.raises(error, match=match):
        load_npz(tmp_path / "bad.npz")


def test_npz_missing_arrays(tmp_path) -> None:
    np.savez(tmp_path / "c.npz", images=np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(InvalidInputError, match=r"np.savez\(path, x=images, y=labels\)"):
        load_npz(tmp_path / "c.npz")


def test_image_folder(tmp_path) -> None:
    for label, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), 40 * label + i, np.uint8)).save(tmp_path / name / f"{i}.png")
    data = load_image_folder(tmp_path)
    assert data.class_names == ["cat", "dog"]
    assert data.images.shape == (6, 3, 10, 12) and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert load_image_folder(tmp_path, size=8, grayscale=True).images.shape == (6, 1, 8, 8)
    assert len(load_dataset(tmp_path)) == 6


def _cifar_batch(n: int) -> dict:
    rng = np.random.default_rng(0)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}


def test_cifar10_restricted_unpickler(tmp_path) -> None:
    (tmp_path / "test_batch").write_bytes(pickle.dumps(_cifar_batch(4)))
    data = load_cifar10(tmp_path, "test")
    assert data.images.shape == (4, 3, 32, 32) and data.labels.tolist() == [0, 1, 2, 3]
    assert len(load_dataset(tmp_path)) == 4


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar10_refuses_code_in_pickles(tmp_path, capsys) -> None:
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": [0]}))
    with pytest.raises(UnsafeModelFileError, match=r"builtins\.print"):
        load_cifar10(tmp_path, "test")
    assert "pwned" not in capsys.readouterr().out


def test_digits_resized() -> None:
    data = load_digits(size=28)
    assert data.images.shape == (1797, 1, 28, 28)
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0


def test_dataset_validation_and_splits() -> None:
    images = torch.rand(10, 1, 4, 4)
    data = ImageDataset(images, torch.arange(10) % 2, ["a", "b"])
    a, b = data.split([0.7, 0.3], seed=1)
    assert len(a) == 7 and len(b) == 3
    assert set(a.images[:, 0, 0, 0].tolist()).isdisjoint(b.images[:, 0, 0, 0].tolist())
    a2, _ = data.split([0.7, 0.3], seed=1)
    assert torch.equal(a.images, a2.images)
    with pytest.raises(InvalidParameterError):
        data.split([0.5, 0.6])
    with pytest.raises(InvalidInputError, match="model has 2 classes"):
        ImageDataset(images, torch.arange(10), ["a", "b"])
    with pytest.raises(InvalidInputError, match="divide by 255"):
        ImageDataset(images * 255, torch.zeros(10, dtype=torch.long), ["a"])
    with pytest.raises(ShapeError, match=r"unsqueeze\(0\)"):
        ImageDataset(images[0], torch.zeros(1, dtype=torch.long), ["a"])


def test_load_dataset_unknown(tmp_path) -> None:
    with pytest.raises(DataNotFoundError, match="neither a known name"):
        load_dataset("imagenet-21k")
