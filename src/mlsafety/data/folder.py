"""Load a folder of images with one subfolder per class (the ImageFolder layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mlsafety.data.dataset import ImageDataset
from mlsafety.exceptions import DataNotFoundError, InvalidInputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def load_image_folder(
    path: str | Path, size: int | tuple[int, int] | None = None, grayscale: bool | None = None
) -> ImageDataset:
    """Read ``path/<class>/<image>`` files with PIL.

    Parameters
    ----------
    size : resize every image to ``size`` (int or (H, W)); required when sizes differ.
    grayscale : force 1 channel (True) or 3 (False); by default grayscale only if every
        image is grayscale.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataNotFoundError(f"{root} is not a folder; pass a folder with one subfolder per class.")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise InvalidInputError(f"{root} has no class subfolders; expected {root}/<class>/<image>.png.")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        files += [(f, label) for f in sorted((root / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InvalidInputError(f"{root} holds no images with suffixes {sorted(IMAGE_SUFFIXES)}.")
    target = (size, size) if isinstance(size, int) else size
    if target is not None and (len(target) != 2 or min(target) < 1):
        raise InvalidInputError(f"`size` must be a positive int or (H, W); got {size!r}.")
    if grayscale is None:
        grayscale = all(_mode(f) in ("L", "1", "I;16", "I") for f, _ in files)
    mode = "L" if grayscale else "RGB"
    arrays = []
    shape: tuple[int, ...] | None = None
    for file, _ in files:
        # one file open at a time: a large folder must not exhaust file handles
        array = _read(file, mode, target)
        if shape is not None and array.shape != shape:
            raise InvalidInputError(
                f"{root} holds images of different sizes ({shape[:2]} and {array.shape[:2]} in {file.name}); "
                "pass size=(H, W) to resize them."
            )
        shape = array.shape
        arrays.append(array)
    stacked = np.stack(arrays)
    if grayscale:
        stacked = stacked[..., None]
    images = torch.from_numpy(stacked).permute(0, 3, 1, 2).float() / 255.0
    labels = torch.tensor([label for _, label in files])
    return ImageDataset(images.contiguous(), labels, classes, root.name)


def _unreadable(file: Path, error: Exception) -> InvalidInputError:
    reason = " ".join(str(error).split())[:120] or type(error).__name__
    return InvalidInputError(
        f"{file} is not a readable image ({reason}); remove or replace it (an image folder may hold only images)."
    )


def _mode(file: Path) -> str:
    try:
        with Image.open(file) as image:
            return image.mode
    except Exception as error:  # PIL raises many types on damaged or non-image files
        raise _unreadable(file, error) from error


def _read(file: Path, mode: str, target: tuple[int, int] | None) -> np.ndarray:
    try:
        with Image.open(file) as image:
            converted = image.convert(mode)
            if target is not None:
                converted = converted.resize((target[1], target[0]), Image.BILINEAR)
            return np.asarray(converted, dtype=np.uint8)
    except Exception as error:
        raise _unreadable(file, error) from error
