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
    opened = [Image.open(f) for f, _ in files]
    if grayscale is None:
        grayscale = all(im.mode in ("L", "1", "I;16", "I") for im in opened)
    mode = "L" if grayscale else "RGB"
    target = (size, size) if isinstance(size, int) else size
    arrays = []
    for image in opened:
        image = image.convert(mode)
        if target is not None:
            image = image.resize((target[1], target[0]), Image.BILINEAR)
        arrays.append(np.asarray(image, dtype=np.uint8))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InvalidInputError(
            f"{root} holds images of different sizes {sorted(shapes)[:3]}...; pass size=(H, W)."
        )
    stacked = np.stack(arrays)
    if grayscale:
        stacked = stacked[..., None]
    images = torch.from_numpy(stacked).permute(0, 3, 1, 2).float() / 255.0
    labels = torch.tensor([label for _, label in files])
    return ImageDataset(images.contiguous(), labels, classes, root.name)
