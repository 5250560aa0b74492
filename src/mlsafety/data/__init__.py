"""Data sets: the embedded default (Fashion-MNIST), loaders for users' files, splits."""

from __future__ import annotations

from pathlib import Path

from mlsafety.data.cifar import CIFAR10_CLASSES, load_cifar10, safe_unpickle
from mlsafety.data.dataset import ImageDataset
from mlsafety.data.default import default_splits
from mlsafety.data.digits import load_digits
from mlsafety.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, read_idx
from mlsafety.data.folder import load_image_folder
from mlsafety.data.npz import images_from_array, load_npz
from mlsafety.exceptions import DataNotFoundError, InvalidInputError

__all__ = [
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "ImageDataset",
    "default_splits",
    "images_from_array",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "load_npz",
    "read_idx",
    "safe_unpickle",
]


def load_dataset(spec: str | Path, split: str = "test") -> ImageDataset:
    """Load a data set from a short name or a path, choosing the loader by what it finds.

    ``"fashion-mnist"`` (the default), ``"digits"``, a ``.npz`` file, a CIFAR-10 python
    folder (holding ``test_batch``), a folder with Fashion-MNIST IDX files, or a folder of
    class subfolders of images.
    """
    text = str(spec)
    if text in ("fashion-mnist", "fashion_mnist", "default"):
        return load_fashion_mnist(split)
    if text == "digits":
        return load_digits()
    if not text.strip():
        raise DataNotFoundError("the data path is empty; pass 'fashion-mnist', 'digits' or a path.")
    path = Path(text)
    try:
        exists = path.exists()
    except OSError as error:  # e.g. a name longer than the file system allows
        raise InvalidInputError(f"data path {text[:80]!r}... is not usable: {error.strerror or error}.") from None
    if not exists:
        raise DataNotFoundError(
            f"data {text!r} is neither a known name ('fashion-mnist', 'digits') nor an existing path."
        )
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return load_npz(path)
        raise DataNotFoundError(f"{path}: unsupported file type {path.suffix!r}; use .npz or a folder.")
    if (path / "test_batch").exists() or (path / "data_batch_1").exists():
        return load_cifar10(path, split)
    if any(path.glob("t10k-images-idx3-ubyte*")):
        return load_fashion_mnist(split, path)
    return load_image_folder(path)
