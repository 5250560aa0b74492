"""Ensembles of utility models and the conservative (pessimistic) utility.

An optimiser exploits the errors of one learned utility; members trained on different
bootstrap samples (Efron 1979) disagree most where data is scarce, so aggregating with the
minimum -- or ``mean - k * std`` -- scores such out-of-distribution edits low. This is the
pessimism used against reward over-optimisation by Coste, Anwar, Kirk & Krueger (2024),
"Reward Model Ensembles Help Mitigate Overoptimization":

    U_min(x) = min_m U_m(x),        U_lcb(x) = mean_m U_m(x) - k std_m U_m(x).

Members are standardised to zero mean and unit variance on the training texts first, so
that no member dominates the minimum by its scale.

Members are independent, so :meth:`UtilityEnsemble.fit_pairs` can fit them on any
:mod:`mlsafety.execution` executor (a Ray cluster): each member is one shard whose bootstrap
sample and seed are drawn before any shard runs, so the ensemble does not depend on where
its members were fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mlsafety._validation import check_in, check_positive
from mlsafety.alignment.values.utility import UtilityModel, resolve_encoder
from mlsafety.base import ParamsMixin
from mlsafety.exceptions import InvalidInputError
from mlsafety.execution import Executor, LocalExecutor, Shard

AGGREGATES = ("mean", "min", "mean_minus_std")


def fit_member(shard: Shard, shared: tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]],
               ) -> tuple[UtilityModel, torch.Tensor]:
    """One member, fitted on the shard's bootstrap sample of the pairs with the shard's seed,
    and its utilities of every training text (for the standardisation).

    The encoder is not shipped (members are fitted on embeddings); the ensemble gives it
    back to each member when the shards return.
    """
    better, worse, pool, params = shared
    index = torch.as_tensor(shard.params["index"])
    member = UtilityModel(**params, seed=shard.seed).fit_pairs(better[index], worse[index])
    return member, member.utility(pool)


class UtilityEnsemble(ParamsMixin):
    """Bootstrap ensemble of :class:`UtilityModel` with a mean, min or lower-confidence aggregate.

    Parameters
    ----------
    n_members : int
    aggregate : {"mean", "min", "mean_minus_std"}
    std_weight : float
        ``k`` of ``mean - k * std``.
    bootstrap : bool
        Resample the pairs with replacement for each member (otherwise only seeds differ).
    seed : int
    **model_params
        Passed to every :class:`UtilityModel` (``encoder``, ``head``, ...).
    """

    def __init__(self, n_members: int = 5, aggregate: str = "min", std_weight: float = 1.0, bootstrap: bool = True,
                 seed: int = 0, **model_params: Any) -> None:
        self.n_members = n_members
        self.aggregate = aggregate
        self.std_weight = std_weight
        self.bootstrap = bootstrap
        self.seed = seed
        self.model_params = model_params

    def fit_pairs(self, better: torch.Tensor, worse: torch.Tensor, executor: Executor | None = None) -> UtilityEnsemble:
        """Fit every member with Bradley–Terry on (a bootstrap sample of) the pairs; returns self.

        ``executor`` fits the members as shards (default: one after the other in this process);
        the members are the same on every executor.
        """
        check_positive(self.n_members, "n_members", "UtilityEnsemble", integer=True)
        check_in(self.aggregate, AGGREGATES, "aggregate", "UtilityEnsemble")
        if not isinstance(better, torch.Tensor):
            encoder = resolve_encoder(self.model_params.get("encoder"))
            if encoder is None:
                raise InvalidInputError("UtilityEnsemble got texts but no encoder; pass encoder='minilm'.")
            better, worse = encoder.encode(list(better)), encoder.encode(list(worse))
        rng = np.random.default_rng(self.seed)
        n = better.shape[0]
        # every sample is drawn here, before any shard runs, so members do not depend on the executor
        shards = [Shard(f"member-{m}", {"index": rng.integers(0, n, n) if self.bootstrap else np.arange(n)},
                        self.seed * 1000 + m) for m in range(self.n_members)]
        params = {k: v for k, v in self.model_params.items() if k not in ("encoder", "seed")}
        pool = torch.cat([better, worse])
        members = (executor or LocalExecutor()).map(fit_member, shards, shared=(better, worse, pool, params))
        self.members_: list[UtilityModel] = []
        self.offsets_: list[tuple[float, float]] = []
        for member, u in members:
            member.encoder = self.model_params.get("encoder")
            self.members_.append(member)
            self.offsets_.append((float(u.mean()), float(u.std().clamp_min(1e-6))))
        return self

    def member_utilities(self, x: Sequence[str] | torch.Tensor, cache: bool | None = None) -> torch.Tensor:
        """Standardised utilities of every member, shape (M, N)."""
        if not hasattr(self, "members_"):
            from mlsafety._validation import check_is_fitted

            check_is_fitted(self, "members_")
        if not isinstance(x, torch.Tensor):
            x = self.members_[0]._embed_texts(list(x), cache)
        return torch.stack([(m.utility(x) - mu) / sd for m, (mu, sd) in zip(self.members_, self.offsets_)])

    def utility(self, x: Sequence[str] | torch.Tensor, cache: bool | None = None) -> torch.Tensor:
        """The aggregated utility, shape (N,)."""
        u = self.member_utilities(x, cache)
        if self.aggregate == "mean":
            return u.mean(0)
        if self.aggregate == "min":
            return u.min(0).values
        return u.mean(0) - self.std_weight * u.std(0)

    def score_texts(self, texts: Sequence[str], cache: bool | None = None) -> torch.Tensor:
        return self.utility(list(texts), cache)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return self.score_texts(texts)
