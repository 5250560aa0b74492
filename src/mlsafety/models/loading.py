"""Load users' models safely: entry points, TorchScript, safetensors, weights-only checkpoints.

Pickled checkpoints can execute arbitrary code when loaded, so ``torch.load`` is only ever
called with ``weights_only=True``; a file that needs more is refused with
:class:`UnsafeModelFileError`, which names the safe alternatives.
"""

from __future__ import annotations

import importlib
import json
import math
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import nn

from mlsafety._io import atomic_write_bytes
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, UnsafeModelFileError
from mlsafety.models.architectures import build_architecture
from mlsafety.models.classifier import Classifier
from mlsafety.models.normalization import NORMALIZATION_PRESETS, parse_normalization

_SAFE_ALTERNATIVES = (
    "Save the weights with safetensors (safetensors.torch.save_file(model.state_dict(), path)) "
    "or torch.save(model.state_dict(), path) and pass --architecture, or export TorchScript "
    "(torch.jit.script(model).save(path)), or give a 'module:function' entry point."
)


def save_checkpoint(classifier: Classifier, path: str | Path, architecture: str,
                    architecture_kwargs: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write a safetensors checkpoint whose metadata rebuilds the Classifier."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "architecture": architecture,
        "architecture_kwargs": json.dumps(architecture_kwargs),
        "class_names": json.dumps(classifier.class_names),
        "input_shape": json.dumps(list(classifier.input_shape) if classifier.input_shape else None),
        "mean": json.dumps(classifier.normalize.mean.flatten().tolist() if classifier.normalize else None),
        "std": json.dumps(classifier.normalize.std.flatten().tolist() if classifier.normalize else None),
        "extra": json.dumps(extra or {}),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in classifier.module.state_dict().items()}
    return atomic_write_bytes(path, save(state, metadata=metadata))


def _is_torchscript(path: Path) -> bool:
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name or name.startswith("code/") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        # damaged archives (NotImplementedError: a flipped "version needed" field) are read below,
        # where their failure becomes a one-line error
        return False


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200]


def _load_entry_point(spec: str) -> nn.Module:
    module_name, _, function_name = spec.partition(":")
    if not module_name.strip() or not function_name.strip() or not all(
        part.isidentifier() for part in [*module_name.split("."), function_name]
    ):
        raise InvalidInputError(
            f"model entry point {spec!r} must look like 'package.module:function' (importable names); "
            "or pass the path of a model file."
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # an import runs the user's code, which may raise anything
        raise InvalidInputError(
            f"cannot import {module_name!r} for model entry point {spec!r}: {type(error).__name__}: "
            f"{_first_line(error)}"
        ) from error
    factory = getattr(module, function_name, None)
    if factory is None or not callable(factory):
        raise InvalidInputError(f"{module_name!r} has no callable {function_name!r} (entry point {spec!r}).")
    try:
        model = factory()
    except Exception as error:
        raise InvalidInputError(
            f"the model entry point {spec!r} raised {type(error).__name__}: {_first_line(error)}; "
            "fix the factory so that it returns an nn.Module when called with no arguments."
        ) from error
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"entry point {spec!r} returned {type(model).__name__}, not an nn.Module.")
    return model


def _load_torchscript(path: Path) -> nn.Module:
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise InvalidInputError(
            f"{path.name} looks like a TorchScript archive but cannot be loaded ({_first_line(error)}); "
            "re-export it with torch.jit.script(model).save(path)."
        ) from error


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as error:
            raise InvalidInputError(
                f"{path.name} is not a readable safetensors file ({_first_line(error)}); it may be truncated "
                "or corrupted: save it again with safetensors.torch.save_file."
            ) from error
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it may not support; the refusal below says what matters
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower() or "weights_only" in str(error).lower():
            raise UnsafeModelFileError(
                f"{path.name} cannot be loaded with weights_only=True (it pickles code or whole "
                f"objects), so it is refused. {_SAFE_ALTERNATIVES}"
            ) from error
        raise InvalidInputError(
            f"{path.name} is not a readable torch checkpoint ({_first_line(error)}); it may be truncated or "
            "corrupted."
        ) from error
    except Exception as error:  # a damaged archive fails in many ways inside torch.load
        raise InvalidInputError(
            f"{path.name} is not a readable torch checkpoint ({type(error).__name__}: {_first_line(error)}); "
            f"it may be empty, truncated or corrupted. {_SAFE_ALTERNATIVES}"
        ) from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InvalidInputError(f"{path.name} does not hold a state dict of tensors. {_SAFE_ALTERNATIVES}")
    return state


def _safetensors_metadata(path: Path) -> dict[str, Any]:
    """The metadata mlsafety stores in a safetensors header, decoded (raw strings for others)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = dict(handle.metadata() or {})
    except Exception as error:
        raise InvalidInputError(
            f"{path.name} is not a readable safetensors file ({_first_line(error)}); it may be empty, "
            "truncated or corrupted: save it again with safetensors.torch.save_file."
        ) from error
    if "architecture" not in raw:
        return {}  # not written by mlsafety: its metadata means nothing to us
    decoded: dict[str, Any] = {"architecture": raw["architecture"]}
    for key, value in raw.items():
        if key == "architecture":
            continue
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError) as error:
            raise InvalidInputError(
                f"{path.name}: the metadata field {key!r} is not valid JSON ({_first_line(error)}); the file "
                "was not written by mlsafety's save_checkpoint or was edited. Re-save it."
            ) from error
    kwargs = decoded.get("architecture_kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise InvalidInputError(f"{path.name}: metadata 'architecture_kwargs' must be a JSON object; got {kwargs!r}.")
    for key in ("mean", "std"):
        value = decoded.get(key)
        if value is not None and not (isinstance(value, list) and value and all(
                isinstance(v, int | float) and math.isfinite(v) for v in value)):
            raise InvalidInputError(f"{path.name}: metadata {key!r} must be a list of numbers; got {value!r}.")
    names = decoded.get("class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise InvalidInputError(f"{path.name}: metadata 'class_names' must be a list of strings.")
    shape = decoded.get("input_shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 3 and all(
            isinstance(v, int) and v > 0 for v in shape)):
        raise InvalidInputError(f"{path.name}: metadata 'input_shape' must be [C, H, W]; got {shape!r}.")
    if not isinstance(decoded.get("extra", {}), dict | type(None)):
        decoded["extra"] = {}
    return decoded


def load_classifier(
    spec: str | Path,
    *,
    architecture: str | None = None,
    architecture_kwargs: dict[str, Any] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    normalization: str | None = None,
    class_names: list[str] | None = None,
    input_shape: tuple[int, int, int] | None = None,
    device: str | None = None,
) -> Classifier:
    """Load a model from an entry point or a file and wrap it in a :class:`Classifier`.

    ``spec`` is one of:

    * ``"package.module:function"`` returning an ``nn.Module``;
    * a TorchScript archive (``torch.jit.save``);
    * a ``.safetensors`` state dict (architecture read from its metadata when written by
      mlsafety, else ``architecture`` is required);
    * a ``.pt``/``.pth`` state dict, read with ``torch.load(weights_only=True)``.

    A weight-only file carries no record of the input normalisation the network was
    trained with, and a wrong guess gives a confident but meaningless report. So a state
    dict without mlsafety's metadata needs ``normalization`` (a preset such as
    ``"fashion-mnist"``, ``"MEAN,...,STD,..."`` per channel, or ``"none"``) or ``mean`` and
    ``std``; files that carry their own architecture (TorchScript, entry points,
    mlsafety checkpoints) refuse a different ``architecture``.

    Raises
    ------
    UnsafeModelFileError
        If the file needs arbitrary code to unpickle.
    InvalidInputError
        If the file is damaged, does not fit the architecture, or lacks normalisation.
    """
    text = str(spec)
    if not text.strip():
        raise InvalidInputError("the model is empty; pass a model file or a 'package.module:function'.")
    path = Path(text)
    stored: dict[str, Any] = {}
    normalization_known = mean is not None and std is not None
    try:
        exists = path.exists()
    except OSError as error:  # e.g. a name longer than the file system allows
        raise InvalidInputError(f"model path {text[:80]!r}... is not usable: {error.strerror or error}.") from None
    if not exists and ":" in text and not text.endswith((".pt", ".pth", ".safetensors")):
        if architecture is not None:
            raise InvalidInputError(
                f"--architecture {architecture!r} was given, but the entry point {text!r} builds its own network; "
                "leave --architecture out."
            )
        module = _load_entry_point(text)
        name = text
        normalization_known = True  # the factory's network defines its own input handling
    elif not exists:
        raise DataNotFoundError(f"model file {path} does not exist; pass a path or a 'module:function'.")
    elif path.is_dir():
        raise InvalidInputError(f"model {path} is a folder; pass a model file (.safetensors, .pt, TorchScript).")
    elif _is_torchscript(path):
        if architecture is not None:
            raise InvalidInputError(
                f"--architecture {architecture!r} was given, but {path.name} is TorchScript and carries its own "
                "architecture; leave --architecture out."
            )
        module = _load_torchscript(path)
        name = f"torchscript:{path.name}"
        normalization_known = True
    else:
        if path.suffix == ".safetensors":
            stored = _safetensors_metadata(path)
        if architecture is not None and stored.get("architecture") not in (None, architecture):
            raise InvalidInputError(
                f"--architecture {architecture!r} was given, but {path.name} records its own architecture "
                f"{stored['architecture']!r}; leave --architecture out."
            )
        architecture = architecture or stored.get("architecture")
        if architecture is None:
            raise InvalidInputError(
                f"{path.name} holds only weights; pass --architecture (e.g. small_cnn) so the "
                "network can be rebuilt, or give a 'module:function' entry point."
            )
        kwargs = dict(stored.get("architecture_kwargs") or {})
        kwargs.update(architecture_kwargs or {})
        try:
            module = build_architecture(architecture, **kwargs)
        except TypeError as error:
            raise InvalidInputError(
                f"architecture {architecture!r} does not take the arguments {kwargs}: {_first_line(error)}"
            ) from error
        state = _load_state_dict(path)
        try:
            module.load_state_dict(state)
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            raise InvalidInputError(
                f"{path.name} does not match architecture {architecture!r} {kwargs}: {first}"
            ) from error
        name = architecture
        normalization_known = normalization_known or "mean" in stored
    if normalization is not None:
        if mean is not None or std is not None:
            raise InvalidInputError("give either `normalization` or `mean` and `std`, not both.")
        mean, std = parse_normalization(normalization)
    elif mean is None and std is None and not normalization_known:
        raise InvalidInputError(
            f"{path.name} holds weights without a record of the input normalisation, and a wrong guess gives a "
            "confident but wrong report; pass --normalization MEAN,...,STD,... per channel (e.g. 0.286,0.353), "
            f"a preset ({', '.join(sorted(NORMALIZATION_PRESETS))}) or none."
        )
    if mean is None and std is None:
        mean, std = stored.get("mean"), stored.get("std")
    module.eval()
    return Classifier(
        module,
        mean=mean,
        std=std,
        class_names=class_names or stored.get("class_names"),
        input_shape=input_shape or (tuple(stored["input_shape"]) if stored.get("input_shape") else None),
        device=device,
        name=name,
        metadata={"source": text, **(stored.get("extra") or {})},
    )
