"""Hidden states of a causal LM at every layer, extracted in batches and cached on disk.

Three views of each statement:

``statement``
    The bare statement. Features ``last`` (the last token) and ``mean`` (mean over its tokens).
``honest``
    The honest prompt (:mod:`~mlsafety.monitoring.honesty.prompts`). Features ``prompt`` (the
    prompt's last token, where the model is about to answer), ``pos`` / ``neg`` (the last token of
    the prompt followed by "True" / "False": the contrast pair of CCS), and ``logprobs`` (N, 2), the
    log-probabilities of "True" and "False" as the next token.
``lie``
    The prompt that orders the model to lie: ``prompt`` and ``logprobs`` as above.

Every feature has shape ``(n_layers + 1, N, d)`` (embeddings first) and is stored as float16.
The cache key hashes the model fingerprint, the view, the prompt version and the statements.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mlsafety._validation import check_positive
from mlsafety.exceptions import parameter_error
from mlsafety.models.default import cache_dir
from mlsafety.monitoring.honesty.datasets.base import Statements
from mlsafety.monitoring.honesty.lm import LanguageModel
from mlsafety.monitoring.honesty.prompts import PROMPT_VERSION, answer_ids, prompt_ids

logger = logging.getLogger(__name__)

VIEWS = ("statement", "honest", "lie")


@dataclass
class Activations:
    """Features of one view of a statement set.

    Attributes
    ----------
    features : dict of str to torch.Tensor
        Name -> tensor of shape ``(n_layers + 1, N, d)`` (float16).
    logprobs : torch.Tensor or None
        ``(N, 2)`` log-probabilities of "True" and "False" after the prompt (prompt views only).
    seconds : float
        Extraction time (0 when read from the cache).
    n_tokens : int
        Tokens processed by the forward passes.
    key : str
        The cache key.
    """

    features: dict[str, torch.Tensor]
    logprobs: torch.Tensor | None = None
    seconds: float = 0.0
    n_tokens: int = 0
    key: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    def layer(self, name: str, layer: int) -> torch.Tensor:
        """Features ``name`` at ``layer`` as float32, shape ``(N, d)``."""
        return self.features[name][layer].float()

    @property
    def n_layers(self) -> int:
        return int(next(iter(self.features.values())).shape[0])


def activation_key(lm: LanguageModel, statements: Statements, view: str, dtype: str = "") -> str:
    """Cache key: changes with the model weights, the view, the prompt text and the statements."""
    text = f"{lm.fingerprint}|{view}|{PROMPT_VERSION}|{statements.fingerprint()}|{dtype}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def activation_cache_dir() -> Path:
    """``<mlsafety cache>/honesty/activations``."""
    return cache_dir() / "honesty" / "activations"


def _common_prefix(rows: list[list[int]]) -> int:
    """Length of the token prefix shared by every row, less one so each row keeps a token of its own."""
    if not rows:
        return 0
    first = rows[0]
    length = min(len(row) for row in rows) - 1
    for row in rows[1:]:
        n = 0
        while n < length and row[n] == first[n]:
            n += 1
        length = n
    return max(length, 0)


def _cache_argument(model: Any) -> str:
    # transformers 5.x renames `past_key_values` to `cache` (the old name warns, then goes away)
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


@torch.no_grad()
def _run(
    lm: LanguageModel, rows: list[list[int]], batch_size: int, *, mean: bool = False,
    answer: tuple[int, int] | None = None, contrast: bool = False,
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, int]:
    """Forward ``rows`` (token ids) in batches; features at every layer for each row.

    The prefix shared by all rows (the system prompt) runs once and its key/value cache is reused;
    each batch is left-padded between that prefix and the rows' own tokens, with explicit position
    ids so every real token sees the positions it would see alone. Returns ``last`` (the last
    token), optionally ``mean`` (mean over the row's own tokens); with ``answer`` the
    log-probabilities of the two answer tokens as the next token, and with ``contrast`` also ``pos`` /
    ``neg`` (the last token of the row followed by each answer token: the contrast pair).
    """
    import copy

    model = lm.model
    device = next(model.parameters()).device
    n_prefix = 0 if mean else _common_prefix(rows)
    prefix_cache = None
    if n_prefix:
        prefix = torch.tensor([rows[0][:n_prefix]], device=device)
        prefix_cache = _cache_of(model(input_ids=prefix, use_cache=True))
    pad = int(lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    n_states = lm.n_layers + 1
    width = int(model.config.hidden_size)
    names = ("last", "mean") if mean else ("last", "pos", "neg") if contrast else ("last",)
    out = {name: torch.empty(n_states, len(rows), width, dtype=torch.float16) for name in names}
    logprobs = torch.empty(len(rows), 2) if answer is not None else None
    n_tokens = n_prefix
    for start in range(0, len(rows), batch_size):
        index = order[start:start + batch_size]
        own = [rows[i][n_prefix:] for i in index]
        lengths = torch.tensor([len(r) for r in own])
        width_t = int(lengths.max())
        ids = torch.full((len(index), width_t), pad, dtype=torch.long)
        own_mask = torch.zeros(len(index), width_t, dtype=torch.long)
        for j, r in enumerate(own):
            ids[j, width_t - len(r):] = torch.tensor(r)
            own_mask[j, width_t - len(r):] = 1
        mask = torch.cat([torch.ones(len(index), n_prefix, dtype=torch.long), own_mask], dim=1)
        positions = (n_prefix + own_mask.cumsum(1) - 1).clamp(min=n_prefix)
        cache = None
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(index))
        output = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                       use_cache=contrast, output_hidden_states=True, **{_cache_argument(model): cache})
        n_tokens += int(lengths.sum())
        states = output.hidden_states
        out["last"][:, index] = torch.stack([h[:, -1] for h in states]).to("cpu", torch.float16)
        if mean:
            weights = (own_mask / lengths[:, None]).to(device=device, dtype=states[0].dtype)
            out["mean"][:, index] = torch.stack([torch.einsum("bt,btd->bd", weights, h) for h in states]).to(
                "cpu", torch.float16)
        if answer is not None and logprobs is not None:
            logprobs[index] = output.logits[:, -1].float().log_softmax(-1)[:, list(answer)].cpu()
        if contrast and answer is not None:
            after = _cache_of(output)
            for name, token in zip(("pos", "neg"), answer, strict=True):
                step_cache = copy.deepcopy(after) if name == "pos" else after
                step = model(
                    input_ids=torch.full((len(index), 1), token, device=device),
                    attention_mask=torch.cat([mask, torch.ones(len(index), 1, dtype=torch.long)], 1).to(device),
                    position_ids=(positions[:, -1:] + 1).to(device),
                    use_cache=True, output_hidden_states=True, **{_cache_argument(model): step_cache},
                )
                out[name][:, index] = torch.stack([h[:, -1] for h in step.hidden_states]).to("cpu", torch.float16)
            n_tokens += 2 * len(index)
    return out, logprobs, n_tokens


def extract_activations(
    lm: LanguageModel,
    statements: Statements,
    view: str = "statement",
    *,
    batch_size: int = 32,
    cache: bool | str | Path = True,
) -> Activations:
    """Hidden states of ``statements`` under ``view`` at every layer, from the cache when possible.

    Parameters
    ----------
    lm : LanguageModel
        From :func:`~mlsafety.monitoring.honesty.lm.load_language_model`.
    statements : Statements
        The statements.
    view : {"statement", "honest", "lie"}
        What the model reads (see the module docstring).
    batch_size : int
        Rows per forward pass.
    cache : bool or path
        ``True``: the mlsafety cache folder; a path: that folder; ``False``: no cache.

    Returns
    -------
    Activations
    """
    if view not in VIEWS:
        raise parameter_error("view", "extract_activations", f"one of {', '.join(VIEWS)}", view)
    check_positive(batch_size, "batch_size", "extract_activations", integer=True)
    dtype = str(next(lm.model.parameters()).dtype).removeprefix("torch.")
    key = activation_key(lm, statements, view, dtype)
    folder = None if cache is False else activation_cache_dir() if cache is True else Path(cache)
    path = folder / f"{lm.name}-{statements.name}-{view}-{key}.safetensors" if folder else None
    if path is not None and path.is_file():
        return _read(path, key)
    started = time.perf_counter()
    tokenizer = lm.tokenizer
    logprobs = None
    if view == "statement":
        rows = [list(tokenizer(text)["input_ids"]) for text in statements.texts]
        features, _, n_tokens = _run(lm, rows, batch_size, mean=True)
    else:
        prompts = [prompt_ids(tokenizer, text, view) for text in statements.texts]
        features, logprobs, n_tokens = _run(lm, prompts, batch_size, answer=answer_ids(tokenizer),
                                            contrast=view == "honest")
        features["prompt"] = features.pop("last")
    result = Activations(features, logprobs, time.perf_counter() - started, n_tokens, key,
                         {"model": lm.name, "statements": statements.name, "view": view})
    if path is not None:
        _write(path, result)
    return result


def _write(path: Path, result: Activations) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.contiguous() for name, tensor in result.features.items()}
    if result.logprobs is not None:
        tensors["logprobs"] = result.logprobs.contiguous()
    meta = dict(result.meta, seconds=f"{result.seconds:.6f}", n_tokens=str(result.n_tokens), key=result.key)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=meta)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _read(path: Path, key: str) -> Activations:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta: dict[str, Any] = dict(handle.metadata() or {})
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    logprobs = tensors.pop("logprobs", None)
    recorded = float(meta.pop("seconds", 0.0))
    n_tokens = int(meta.pop("n_tokens", 0))
    meta.pop("key", None)
    meta["cached_seconds"] = f"{recorded:.3f}"
    return Activations(tensors, logprobs, 0.0, n_tokens, key, meta)
