"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) from its IDX files, never downloaded."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from mlsafety.data.dataset import ImageDataset
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, parameter_error

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
DEBIAN_PATH = Path("/usr/share/datasets/fashion-mnist")
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_INSTALL_HINT = (
    "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the "
    "four IDX files (train-images-idx3-ubyte[.gz], ...) in a folder and set MLSAFETY_DATA to it."
)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array (LeCun's MNIST format)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise InvalidInputError(f"{path} is damaged ({type(error).__name__}: {error}); replace the file.") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InvalidInputError(f"{path} is not an IDX file (bad magic number); re-download it.")
    dtype_codes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtype_codes:
        raise InvalidInputError(f"{path} has unknown IDX type code {raw[2]:#x}.")
    n_dims = raw[3]
    if n_dims == 0 or len(raw) < 4 + 4 * n_dims:
        raise InvalidInputError(f"{path} is truncated inside its IDX header; replace the file.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(n_dims))
    try:
        data = np.frombuffer(raw, dtype=dtype_codes[raw[2]], offset=4 + 4 * n_dims)
    except ValueError as error:
        raise InvalidInputError(f"{path} is truncated ({error}); replace the file.") from error
    if data.size != int(np.prod(shape, dtype=np.float64)):
        raise InvalidInputError(
            f"{path} is truncated: header says {shape}, file holds {data.size} values."
        )
    return data.reshape(shape).copy()


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def fashion_mnist_dir(path: str | Path | None = None) -> Path:
    """The folder holding the IDX files: ``path``, ``$MLSAFETY_DATA`` (or a
    ``fashion-mnist`` folder inside it), then the Debian package's location."""
    candidates: list[Path] = []
    if path is not None:  # an explicit path is honoured without falling back elsewhere
        candidates.append(Path(path))
    else:
        if os.environ.get("MLSAFETY_DATA"):
            root = Path(os.environ["MLSAFETY_DATA"])
            candidates += [root, root / "fashion-mnist"]
        candidates.append(DEBIAN_PATH)
    for directory in candidates:
        if _find(directory, _FILES["test"][0]) is not None:
            return directory
    searched = ", ".join(str(c) for c in candidates)
    raise DataNotFoundError(f"Fashion-MNIST IDX files not found (searched {searched}). {_INSTALL_HINT}")


def load_fashion_mnist(split: str = "test", path: str | Path | None = None) -> ImageDataset:
    """Load a Fashion-MNIST split as 1x28x28 images in [0, 1].

    Parameters
    ----------
    split : {"train", "test"}
    path : folder with the IDX files; by default ``$MLSAFETY_DATA`` then
        ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``).

    Raises
    ------
    DataNotFoundError
        If the files are absent (the message says how to install them).
    """
    if split not in _FILES:
        raise parameter_error("split", "load_fashion_mnist", "'train' or 'test'", split)
    directory = fashion_mnist_dir(path)
    image_file, label_file = (_find(directory, stem) for stem in _FILES[split])
    if image_file is None or label_file is None:
        raise DataNotFoundError(f"Fashion-MNIST {split} files missing in {directory}. {_INSTALL_HINT}")
    images = read_idx(image_file)
    labels = read_idx(label_file)
    if images.ndim != 3 or labels.shape[0] != images.shape[0]:
        raise InvalidInputError(f"{image_file}: unexpected shapes {images.shape} / {labels.shape}.")
    tensor = torch.from_numpy(images).unsqueeze(1).float().div_(255.0)
    return ImageDataset(
        tensor, torch.from_numpy(labels.astype(np.int64)), list(FASHION_MNIST_CLASSES),
        f"fashion-mnist-{split}", {"source": str(directory)},
    )
