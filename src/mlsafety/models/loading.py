"""Load users' models safely: entry points, TorchScript, safetensors, weights-only checkpoints.

Pickled checkpoints can execute arbitrary code when loaded, so ``torch.load`` is only ever
called with ``weights_only=True``; a file that needs more is refused with
:class:`UnsafeModelFileError`, which names the safe alternatives.
"""

from __future__ import annotations

import importlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from mlsafety.exceptions import DataNotFoundError, InvalidInputError, UnsafeModelFileError
from mlsafety.models.architectures import build_architecture
from mlsafety.models.classifier import Classifier

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
    temporary = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(temporary), metadata=metadata)
    temporary.replace(path)
    return path


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name or name.startswith("code/") for name in archive.namelist())


def _load_entry_point(spec: str) -> nn.Module:
    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InvalidInputError(f"cannot import {module_name!r} for model entry point {spec!r}: {error}") from error
    factory = getattr(module, function_name, None)
    if factory is None:
        raise InvalidInputError(f"{module_name!r} has no attribute {function_name!r} (entry point {spec!r}).")
    model = factory()
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"entry point {spec!r} returned {type(model).__name__}, not an nn.Module.")
    return model


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError) as error:
        raise UnsafeModelFileError(
            f"{path.name} cannot be loaded with weights_only=True (it pickles code or whole "
            f"objects), so it is refused. {_SAFE_ALTERNATIVES}"
        ) from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidInputError(f"{path.name} does not hold a state dict of tensors. {_SAFE_ALTERNATIVES}")
    return state


def _safetensors_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def load_classifier(
    spec: str | Path,
    *,
    architecture: str | None = None,
    architecture_kwargs: dict[str, Any] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
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

    Raises
    ------
    UnsafeModelFileError
        If the file needs arbitrary code to unpickle.
    """
    text = str(spec)
    path = Path(text)
    stored: dict[str, Any] = {}
    if not path.exists() and ":" in text and not text.endswith((".pt", ".pth", ".safetensors")):
        module = _load_entry_point(text)
        name = text
    elif not path.exists():
        raise DataNotFoundError(f"model file {path} does not exist; pass a path or a 'module:function'.")
    elif _is_torchscript(path):
        module = torch.jit.load(str(path), map_location="cpu")
        name = f"torchscript:{path.name}"
    else:
        if path.suffix == ".safetensors":
            stored = {k: json.loads(v) if k != "architecture" else v
                      for k, v in _safetensors_metadata(path).items()}
        architecture = architecture or stored.get("architecture")
        if architecture is None:
            raise InvalidInputError(
                f"{path.name} holds only weights; pass --architecture (e.g. small_cnn) so the "
                "network can be rebuilt, or give a 'module:function' entry point."
            )
        kwargs = dict(stored.get("architecture_kwargs") or {})
        kwargs.update(architecture_kwargs or {})
        module = build_architecture(architecture, **kwargs)
        state = _load_state_dict(path)
        try:
            module.load_state_dict(state)
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            raise InvalidInputError(
                f"{path.name} does not match architecture {architecture!r} {kwargs}: {first}"
            ) from error
        name = architecture
    module.eval()
    return Classifier(
        module,
        mean=mean if mean is not None else stored.get("mean"),
        std=std if std is not None else stored.get("std"),
        class_names=class_names or stored.get("class_names"),
        input_shape=input_shape or (tuple(stored["input_shape"]) if stored.get("input_shape") else None),
        device=device,
        name=name,
        metadata={"source": text, **(stored.get("extra") or {})},
    )
