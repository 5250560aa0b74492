"""Load an image data set from a ``.npz`` archive with arrays ``x`` and ``y``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mlsafety.data.dataset import ImageDataset
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, ShapeError


def images_from_array(x: np.ndarray, source: str = "x") -> torch.Tensor:
    """Convert (N, H, W), (N, H, W, C) uint8 or (N, C, H, W) float arrays to a [0, 1] tensor.

    uint8 arrays are taken as channels-last (the usual on-disk layout) and scaled by 1/255;
    float arrays are taken as channels-first and must already be in [0, 1].
    """
    if x.ndim == 3:
        x = x[..., None] if x.dtype == np.uint8 else x[:, None]
    if x.ndim != 4:
        raise ShapeError(f"`{source}` must be (N, H, W, C) uint8 or (N, C, H, W) float; got {x.shape}.")
    if x.dtype == np.uint8:
        if x.shape[-1] not in (1, 3, 4):
            raise ShapeError(
                f"`{source}` is uint8 with {x.shape[-1]} channels last; expected HWC with 1, 3 or 4 "
                "channels. Store uint8 images as (N, H, W, C)."
            )
        tensor = torch.from_numpy(np.ascontiguousarray(x[..., :3])).permute(0, 3, 1, 2).float() / 255.0
        return tensor.contiguous()
    if np.issubdtype(x.dtype, np.floating):
        if x.shape[1] not in (1, 3):
            raise ShapeError(
                f"`{source}` is float with shape {x.shape}; expected channels first (N, C, H, W) "
                "with C in {1, 3}. Transpose with x.transpose(0, 3, 1, 2)."
            )
        if not np.isfinite(x).all():
            raise InvalidInputError(f"`{source}` contains NaN or infinite values.")
        if x.size and (x.max() > 1.0 + 1e-6 or x.min() < -1e-6):
            raise InvalidInputError(
                f"`{source}` float images must lie in [0, 1]; got range [{x.min():.3g}, {x.max():.3g}]. "
                "Divide 8-bit values by 255, or store them as uint8."
            )
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    raise InvalidInputError(f"`{source}` must be uint8 or float; got dtype {x.dtype}.")


def load_npz(path: str | Path, class_names: list[str] | None = None) -> ImageDataset:
    """Load ``x`` (images) and ``y`` (integer labels) from a ``.npz`` file.

    ``class_names`` is read from an optional ``class_names`` array, else given, else
    ``"0", "1", ...``. The archive is opened with ``allow_pickle=False``.
    """
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"{path} does not exist; pass the path of an .npz file with x and y.")
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise InvalidInputError(
            f"{path} holds pickled objects, which are refused; save plain arrays with np.savez."
        ) from error
    with archive:
        missing = {"x", "y"} - set(archive.files)
        if missing:
            raise InvalidInputError(
                f"{path} lacks array(s) {sorted(missing)}; found {archive.files}. "
                "Save with np.savez(path, x=images, y=labels)."
            )
        images = images_from_array(archive["x"], f"{path.name}:x")
        labels = archive["y"]
        if class_names is None and "class_names" in archive.files:
            class_names = [str(c) for c in archive["class_names"]]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(f"{path.name}:y must be a 1-D integer array; got {labels.dtype} {labels.shape}.")
    if labels.shape[0] != images.shape[0]:
        raise ShapeError(f"{path.name}: {images.shape[0]} images but {labels.shape[0]} labels.")
    if class_names is None:
        class_names = [str(i) for i in range(int(labels.max()) + 1 if labels.size else 1)]
    return ImageDataset(images, torch.from_numpy(labels.astype(np.int64)), class_names, path.stem)
