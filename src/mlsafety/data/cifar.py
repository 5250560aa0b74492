"""CIFAR-10 "python version" batches, read without executing code from the data.

The official batches are Python pickles. Unpickling can run arbitrary code, so we use a
restricted unpickler that only rebuilds builtins and numpy arrays and refuses every other
global (the approach the Python docs recommend for untrusted pickles).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlsafety.data.dataset import ImageDataset
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, UnsafeModelFileError

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "tuple"),
    ("builtins", "bytes"),
    ("builtins", "str"),
    ("builtins", "int"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeModelFileError(
            f"refusing to unpickle {module}.{name}: data files may only hold numpy arrays and "
            "builtins. Convert the data to .npz (np.savez) if it is trustworthy."
        )


def safe_unpickle(raw: bytes) -> Any:
    """Unpickle ``raw`` admitting only numpy arrays and builtin containers."""
    return _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = safe_unpickle(path.read_bytes())
    except UnsafeModelFileError:
        raise
    except Exception as error:  # damaged pickles fail in many ways (EOF, bad opcodes, bad array state)
        raise InvalidInputError(
            f"{path} is not a readable CIFAR-10 batch ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:120]}); it may be empty or truncated. Extract the archive again."
        ) from error
    if not isinstance(batch, dict):
        raise InvalidInputError(f"{path} is not a CIFAR-10 batch (expected a dict).")
    batch = {k.decode(errors="replace") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise InvalidInputError(f"{path} lacks 'data'/'labels' keys; is it a CIFAR-10 python batch?")
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidInputError(f"{path}: 'data' and 'labels' must be numeric arrays ({error}).") from error
    if data.ndim != 2 or data.shape[1] != 3072:
        raise InvalidInputError(f"{path}: 'data' must be (N, 3072) uint8; got {data.shape}.")
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise InvalidInputError(f"{path}: {data.shape[0]} images but labels of shape {labels.shape}.")
    if data.shape[0] == 0:
        raise InvalidInputError(f"{path} holds no images; extract the CIFAR-10 archive again.")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise InvalidInputError(
            f"{path}: CIFAR-10 labels must lie in 0..9; got {int(labels.min())}..{int(labels.max())}."
        )
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(path: str | Path, split: str = "test") -> ImageDataset:
    """Load CIFAR-10 from the extracted ``cifar-10-batches-py`` folder.

    ``split="train"`` reads ``data_batch_1..5``; ``"test"`` reads ``test_batch``.
    """
    root = Path(path)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    files = [root / n for n in names if (root / n).exists()]
    if not files:
        raise DataNotFoundError(
            f"no CIFAR-10 {split} batches ({', '.join(names)}) in {root}; pass the extracted "
            "cifar-10-batches-py folder."
        )
    parts = [_read_batch(f) for f in files]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts])).float() / 255.0
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return ImageDataset(images, labels, list(CIFAR10_CLASSES), f"cifar10-{split}")
