"""Utility models: a scalar "how pleasant" score U(text) learned from human judgements.

Two heads on frozen text embeddings -- linear and a small MLP -- and two ways to fit them:

* **pairwise (Bradley & Terry 1952, "Rank Analysis of Incomplete Block Designs")**, as in
  the Utilitarianism task of Hendrycks et al. (2021, "Aligning AI With Shared Human
  Values"): minimise ``-log sigma(U(s1) - U(s2))`` over pairs where s1 is the more
  pleasant scenario. With swapped-pair augmentation every pair also appears as
  ``(s2, s1)`` with target 0; for the difference model this gives exactly the same loss
  (``-log(1 - sigma(-d)) = -log sigma(d)``), so it changes nothing for hard labels and
  only matters for soft targets (ties), but it keeps the data balanced for calibration.
* **regression** on ratings: minimise the squared error between U(x) and the
  standardised human rating.

Inputs are standardised with the training embeddings' mean and standard deviation; the
L2 penalty ``weight_decay`` matters when there are few pairs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlsafety._validation import check_in, check_is_fitted, check_positive
from mlsafety.alignment.values.encoder import TextEncoder
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError, MLSafetyError, ShapeError, UnsafeModelFileError

HEADS = ("linear", "mlp")
LOSSES = ("bradley_terry", "regression")


def bradley_terry_loss(u_first: torch.Tensor, u_second: torch.Tensor,
                       target: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Mean ``BCE(sigma(u_first - u_second), target)``; with target 1 this is
    ``-log sigma(U(s1) - U(s2))`` (s1 preferred)."""
    difference = u_first - u_second
    target = torch.as_tensor(target, dtype=difference.dtype, device=difference.device).expand_as(difference)
    return nn.functional.binary_cross_entropy_with_logits(difference, target)


def build_head(kind: str, dim: int, hidden_size: int = 64, n_outputs: int = 1) -> nn.Module:
    """``linear``: one affine map; ``mlp``: Linear-GELU-Linear with ``hidden_size`` units."""
    if kind == "linear":
        return nn.Linear(dim, n_outputs)
    return nn.Sequential(nn.Linear(dim, hidden_size), nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden_size, n_outputs))


def resolve_encoder(encoder: TextEncoder | str | None) -> TextEncoder | None:
    if encoder is None or isinstance(encoder, TextEncoder):
        return encoder
    from mlsafety.registry import ENCODERS

    return ENCODERS.create(encoder)


class UtilityModel(ParamsMixin):
    """A learned utility U(text) on frozen embeddings.

    Parameters
    ----------
    encoder : TextEncoder or str, optional
        Turns texts into embeddings; needed only when texts (not tensors) are passed.
    head : {"linear", "mlp"}
    hidden_size : int
        Width of the MLP head.
    weight_decay : float
        L2 penalty: ``weight_decay/2 * ||w||^2`` added to the loss of the linear head (fitted
        by full-batch L-BFGS), decoupled AdamW weight decay for the MLP head.
    learning_rate : float
        Peak AdamW learning rate (MLP head).
    n_steps : int
        L-BFGS iterations (linear head) or AdamW steps (MLP head).
    batch_size : int
        Mini-batch size (MLP head).
    swap_augment : bool
        Also train on every pair reversed with the complementary target.
    seed : int
    device : str

    Attributes
    ----------
    head_ : nn.Module
    mean_, scale_ : Tensor (D,)
        Input standardisation.
    loss_ : {"bradley_terry", "regression"}
        How it was fitted.
    history_ : list of float
        Training loss per step (per L-BFGS function evaluation for the linear head).

    Example
    -------
    >>> model = UtilityModel(encoder="hashing").fit_pairs(["a lovely day"], ["an awful day"])
    >>> model.score_texts(["lovely", "awful"]).shape
    torch.Size([2])
    """

    def __init__(self, encoder: TextEncoder | str | None = None, head: str = "linear", hidden_size: int = 64,
                 weight_decay: float = 1e-2, learning_rate: float = 3e-3, n_steps: int = 300, batch_size: int = 1024,
                 swap_augment: bool = True, seed: int = 0, device: str = "cpu") -> None:
        self.encoder = encoder
        self.head = head
        self.hidden_size = hidden_size
        self.weight_decay = weight_decay
        self.learning_rate = learning_rate
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.swap_augment = swap_augment
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------ inputs
    def _embed(self, x: Sequence[str] | torch.Tensor, name: str) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            if x.ndim != 2:
                raise ShapeError(f"`{name}` must be embeddings (N, D) or a list of texts; got {tuple(x.shape)}.")
            if x.shape[0] == 0:
                raise InvalidInputError(f"`{name}` is empty; pass at least one item.")
            return x.float()
        encoder = getattr(self, "_encoder_obj", None) or resolve_encoder(self.encoder)
        if encoder is None:
            raise InvalidInputError(
                f"`{name}` holds texts but the {type(self).__name__} has no encoder; pass encoder='minilm' (or "
                "'hashing') or give embeddings."
            )
        self._encoder_obj = encoder
        return encoder.encode(list(x))

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_in(self.head, HEADS, "head", owner)
        check_positive(self.hidden_size, "hidden_size", owner, integer=True)
        check_positive(self.weight_decay, "weight_decay", owner, allow_zero=True)
        check_positive(self.learning_rate, "learning_rate", owner)
        check_positive(self.n_steps, "n_steps", owner, integer=True)
        check_positive(self.batch_size, "batch_size", owner, integer=True)

    def _start(self, reference: torch.Tensor, loss: str) -> None:
        self._check_params()
        if not bool(torch.isfinite(reference).all()):
            raise InvalidInputError("embeddings contain NaN or infinite values; check the encoder.")
        torch.manual_seed(self.seed)
        self.mean_ = reference.mean(0)
        std = reference.std(0) if reference.shape[0] > 1 else torch.ones_like(self.mean_)
        # features (almost) constant in training -- e.g. unseen hash buckets -- must not be
        # blown up on new texts: floor the scale at a tenth of the mean feature scale
        self.scale_ = std.clamp_min(max(0.1 * float(std.mean()), 1e-6))
        self.head_ = build_head(self.head, reference.shape[1], self.hidden_size).to(self.device)
        self.loss_ = loss
        self.dim_ = int(reference.shape[1])

    def _standardize(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean_) / self.scale_).to(self.device)

    # ------------------------------------------------------------------ fitting
    def fit_pairs(self, better: Sequence[str] | torch.Tensor, worse: Sequence[str] | torch.Tensor,
                  target: torch.Tensor | None = None) -> UtilityModel:
        """Fit with the Bradley–Terry loss.

        Parameters
        ----------
        better, worse : list of str or Tensor (P, D)
            ``better[i]`` is preferred to ``worse[i]`` (or, with ``target``, preferred with
            probability ``target[i]``).
        target : Tensor (P,), optional
            Soft preference probabilities (default all ones).

        Returns
        -------
        self
        """
        a, b = self._embed(better, "better"), self._embed(worse, "worse")
        if a.shape != b.shape:
            raise ShapeError(f"`better` and `worse` must have the same shape; got {tuple(a.shape)} and "
                             f"{tuple(b.shape)}.")
        t = torch.ones(a.shape[0]) if target is None else torch.as_tensor(target, dtype=torch.float32).flatten()
        if t.shape[0] != a.shape[0] or bool(((t < 0) | (t > 1)).any()):
            raise InvalidInputError(f"`target` must hold {a.shape[0]} probabilities in [0, 1].")
        self._start(torch.cat([a, b]), "bradley_terry")
        a, b, t = self._standardize(a), self._standardize(b), t.to(self.device)
        if self.swap_augment:
            a, b, t = torch.cat([a, b]), torch.cat([b, a]), torch.cat([t, 1 - t])

        def loss_of(index: torch.Tensor) -> torch.Tensor:
            return bradley_terry_loss(self.head_(a[index]).squeeze(-1), self.head_(b[index]).squeeze(-1), t[index])

        self._train(a.shape[0], loss_of)
        return self

    def fit_ratings(self, x: Sequence[str] | torch.Tensor, ratings: Sequence[float] | torch.Tensor) -> UtilityModel:
        """Fit by least-squares regression on (standardised) human ratings; returns self."""
        e = self._embed(x, "x")
        r = torch.as_tensor(np.asarray(ratings, dtype=np.float32)).flatten()
        if r.shape[0] != e.shape[0]:
            raise ShapeError(f"`ratings` must have one value per text ({e.shape[0]}); got {r.shape[0]}.")
        if not bool(torch.isfinite(r).all()):
            raise InvalidInputError("`ratings` contain NaN or infinite values.")
        self._start(e, "regression")
        self.rating_mean_ = float(r.mean())
        self.rating_scale_ = float(r.std().clamp_min(1e-6)) if r.numel() > 1 else 1.0
        e, z = self._standardize(e), ((r - self.rating_mean_) / self.rating_scale_).to(self.device)

        def loss_of(index: torch.Tensor) -> torch.Tensor:
            return nn.functional.mse_loss(self.head_(e[index]).squeeze(-1), z[index])

        self._train(e.shape[0], loss_of)
        return self

    def _train(self, n: int, loss_of: Any) -> None:
        """Linear head: full-batch L-BFGS on the convex loss + ``weight_decay/2 * ||w||^2``.
        MLP head: ``n_steps`` AdamW steps on mini-batches (one-cycle learning rate).

        Runs on one CPU thread: the heads are small, and a busy machine's thread pool can
        make each tiny step a hundred times slower."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self._optimise(n, loss_of)
        finally:
            torch.set_num_threads(threads)

    def _optimise(self, n: int, loss_of: Any) -> None:
        self.history_: list[float] = []
        self.head_.train()
        if self.head == "linear":
            everything = torch.arange(n, device=self.device)
            weight = self.head_.weight  # type: ignore[union-attr]
            optimizer = torch.optim.LBFGS(self.head_.parameters(), lr=1.0, max_iter=self.n_steps,
                                          history_size=20, tolerance_grad=1e-6, tolerance_change=1e-9,
                                          line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                optimizer.zero_grad(set_to_none=True)
                loss = loss_of(everything) + 0.5 * self.weight_decay * weight.pow(2).sum()
                loss.backward()
                self.history_.append(loss.item())
                return loss

            optimizer.step(closure)
        else:
            optimizer = torch.optim.AdamW(self.head_.parameters(), lr=self.learning_rate,
                                          weight_decay=self.weight_decay)
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.learning_rate,
                                                            total_steps=self.n_steps)
            generator = torch.Generator().manual_seed(self.seed)
            order, position = torch.randperm(n, generator=generator), 0
            for _ in range(self.n_steps):
                if position >= n:
                    order, position = torch.randperm(n, generator=generator), 0
                index = order[position : position + self.batch_size].to(self.device)
                position += self.batch_size
                loss = loss_of(index)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                self.history_.append(loss.item())
        self.head_.eval()

    # ------------------------------------------------------------------ scoring
    def utility(self, x: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """U(x), shape (N,) (CPU float32); higher = more pleasant."""
        check_is_fitted(self, "head_")
        e = self._embed(x, "x")
        if e.shape[1] != self.dim_:
            raise ShapeError(f"embeddings must have {self.dim_} features (as in training); got {e.shape[1]}. "
                             "Use the same encoder as for fitting.")
        with torch.no_grad():
            return self.head_(self._standardize(e)).squeeze(-1).float().cpu()

    def _embed_texts(self, texts: list[str], cache: bool | None = None) -> torch.Tensor:
        encoder = getattr(self, "_encoder_obj", None) or resolve_encoder(self.encoder)
        if encoder is None:
            raise InvalidInputError(f"this {type(self).__name__} has no encoder; pass embeddings to utility().")
        self._encoder_obj = encoder
        return encoder.encode(texts, cache=cache)

    def score_texts(self, texts: Sequence[str], cache: bool | None = None) -> torch.Tensor:
        """U of each text, encoding with the model's encoder (``cache`` overrides its setting)."""
        check_is_fitted(self, "head_")
        return self.utility(self._embed_texts(list(texts), cache))

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return self.score_texts(texts)

    def preference_probability(self, first: Sequence[str] | torch.Tensor,
                               second: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """P(first preferred) = sigma(U(first) - U(second)) (meaningful for Bradley–Terry fits)."""
        return torch.sigmoid(self.utility(first) - self.utility(second))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the fitted head and its settings to a ``.safetensors`` file (no pickle)."""
        from safetensors.torch import save

        from mlsafety._io import atomic_write_bytes

        check_is_fitted(self, "head_")
        encoder = resolve_encoder(self.encoder)
        params = {k: v for k, v in self.get_params().items() if k != "encoder"}
        meta = {
            "format": "mlsafety.values.utility/1",
            "params": params,
            "encoder": None if encoder is None else {"name": encoder.registry_name, "params": encoder.get_params()},
            "loss": self.loss_, "dim": self.dim_,
            "rating_mean": getattr(self, "rating_mean_", None), "rating_scale": getattr(self, "rating_scale_", None),
            "extra": extra or {},
        }
        tensors = {f"head.{k}": v.detach().cpu().contiguous() for k, v in self.head_.state_dict().items()}
        tensors["mean"], tensors["scale"] = self.mean_.contiguous(), self.scale_.contiguous()
        return atomic_write_bytes(path, save(tensors, metadata={"mlsafety": json.dumps(meta, default=str)}))

    @classmethod
    def load(cls, path: str | Path) -> UtilityModel:
        """Load a model written by :meth:`save` (rebuilding its encoder from the registry)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            from mlsafety.exceptions import DataNotFoundError

            raise DataNotFoundError(f"utility model {str(path)!r} not found; train one with `mlsafety values train`.")
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = json.loads((handle.metadata() or {}).get("mlsafety", "null"))
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        except Exception as error:
            raise UnsafeModelFileError(f"{str(path)!r} is not a safetensors utility model ({error}).") from error
        if not meta or meta.get("format") != "mlsafety.values.utility/1":
            raise UnsafeModelFileError(f"{str(path)!r} is not a utility model written by UtilityModel.save().")
        try:
            encoder = None
            if meta["encoder"]:
                from mlsafety.registry import ENCODERS

                spec = meta["encoder"]
                params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec["params"].items()}
                encoder = ENCODERS.create(spec["name"], **params)
            model = cls(encoder=encoder, **meta["params"])
            model.head_ = build_head(model.head, meta["dim"], model.hidden_size)
            model.head_.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("head.")})
            model.head_.to(model.device).eval()
            model.mean_, model.scale_ = tensors["mean"], tensors["scale"]
            model.loss_, model.dim_ = meta["loss"], meta["dim"]
            if meta.get("rating_mean") is not None:
                model.rating_mean_, model.rating_scale_ = meta["rating_mean"], meta["rating_scale"]
        except MLSafetyError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            raise InvalidInputError(
                f"{str(path)!r} is a damaged utility model ({type(error).__name__}: {error}); train it again."
            ) from error
        model.metadata_ = meta.get("extra", {})
        return model
