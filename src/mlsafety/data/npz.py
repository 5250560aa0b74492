"""Load an image data set from a ``.npz`` archive with arrays ``x`` and ``y``."""

from __future__ import annotations

import zipfile
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


MAX_CLASSES = 100_000  # more than any labelled image data set has (ImageNet-21k: 21,841)


def _check_members(path: Path) -> None:
    """Refuse an archive whose arrays declare more bytes than it stores, before numpy
    allocates them (a damaged header could otherwise ask for terabytes)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member)
                if dtype.hasobject:
                    raise InvalidInputError(
                        f"{path.name}:{info.filename[:-4]} holds Python objects (dtype {dtype}), which are refused; "
                        "save plain numeric arrays with np.savez."
                    )
                declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if declared > info.file_size:
                    raise InvalidInputError(
                        f"{path.name}:{info.filename[:-4]} declares {declared} bytes but stores {info.file_size}; "
                        "the file is damaged. Save it again with np.savez."
                    )
    except InvalidInputError:
        raise
    except Exception as error:  # zipfile and numpy's header parser fail in many ways on damaged bytes
        raise InvalidInputError(
            f"{path.name} is not a readable .npz archive ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:120]}); it may be empty, truncated or not an npz. "
            "Save it again with np.savez(path, x=images, y=labels)."
        ) from error


def load_npz(path: str | Path, class_names: list[str] | None = None) -> ImageDataset:
    """Load ``x`` (images) and ``y`` (integer labels) from a ``.npz`` file.

    ``class_names`` is read from an optional ``class_names`` array, else given, else
    ``"0", "1", ...``. The archive is opened with ``allow_pickle=False``, and every array
    header is checked against the bytes stored before anything is allocated.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; pass the path of an .npz file with x and y.")
    _check_members(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x", "y"} - set(archive.files)
            if missing:
                raise InvalidInputError(
                    f"{path} lacks array(s) {sorted(missing)}; found {archive.files}. "
                    "Save with np.savez(path, x=images, y=labels)."
                )
            x = archive["x"]
            labels = archive["y"]
            names = archive["class_names"] if "class_names" in archive.files else None
    except InvalidInputError:
        raise
    except ValueError as error:
        raise InvalidInputError(
            f"{path} holds pickled objects or a malformed array ({' '.join(str(error).split())[:120]}); "
            "save plain arrays with np.savez."
        ) from error
    except Exception as error:
        raise InvalidInputError(
            f"{path.name} is not a readable .npz archive ({type(error).__name__}); it may be truncated or damaged. "
            "Save it again with np.savez(path, x=images, y=labels)."
        ) from error
    images = images_from_array(x, f"{path.name}:x")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(f"{path.name}:y must be a 1-D integer array; got {labels.dtype} {labels.shape}.")
    if labels.shape[0] != images.shape[0]:
        raise ShapeError(f"{path.name}: {images.shape[0]} images but {labels.shape[0]} labels.")
    if images.shape[0] == 0:
        raise InvalidInputError(f"{path.name} holds no images (x has 0 rows); pass a non-empty data set.")
    if labels.min() < 0:
        raise InvalidInputError(f"{path.name}:y has a negative label ({int(labels.min())}); labels must be 0..K-1.")
    if class_names is None and names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise InvalidInputError(f"{path.name}:class_names must be a 1-D array of strings; got {names.dtype}.")
        class_names = [str(c) for c in names]
    if class_names is None:
        highest = int(labels.max())
        if highest >= MAX_CLASSES:
            raise InvalidInputError(
                f"{path.name}:y has label {highest}, which would mean {highest + 1} classes; labels must be the "
                "class indices 0..K-1 (map them, or store class_names in the archive)."
            )
        class_names = [str(i) for i in range(highest + 1)]
    return ImageDataset(images, torch.from_numpy(labels.astype(np.int64)), class_names, path.stem)
