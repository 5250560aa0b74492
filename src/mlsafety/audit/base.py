"""The audit's building blocks: :class:`Check`, the :class:`AuditContext` a check receives,
and (from :mod:`mlsafety.report`) the :class:`CheckResult` it returns.

A check is one small class registered in :data:`mlsafety.registry.CHECKS` from its own
file in :mod:`mlsafety.audit.checks`; the runner and the report never need editing to
add one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from mlsafety.execution import Executor, LocalExecutor, Shard
from mlsafety.execution.base import ShardFunction
from mlsafety.report.records import VERDICT_SEVERITY, CheckResult, Figure, Table, Verdict, worst_verdict

if TYPE_CHECKING:
    from mlsafety.data.dataset import ImageDataset
    from mlsafety.models.classifier import Classifier

__all__ = ["VERDICT_SEVERITY", "AuditContext", "Check", "CheckResult", "Figure", "ShardPlan", "ShardedCheck", "Table",
           "Verdict", "worst_verdict"]


@dataclass
class AuditContext:
    """Everything a check may use. Checks must not mutate the model or the data.

    Attributes
    ----------
    classifier : the model under audit.
    data : evaluation (test) data.
    validation : a held-out split for tuning (temperature, detector thresholds, ...); never
        the evaluation data.
    train : training data when available (data-level backdoor scans, Outlier Exposure).
    ood : out-of-distribution sets given by the user, by name.
    quick : use data subsets and fewer steps (measured times in the README).
    seed : the seed every check derives its randomness from.
    is_default : True when auditing the embedded default model and data.
    options : per-check options (``{"adversarial": {"epsilon": 0.1}}``).
    executor : runs the shards of a :class:`ShardedCheck` (default: in this process). It
        never changes a result, so it is not part of the key under which results are reused.
    """

    classifier: Classifier
    data: ImageDataset
    validation: ImageDataset | None = None
    train: ImageDataset | None = None
    ood: dict[str, ImageDataset] = field(default_factory=dict)
    quick: bool = False
    seed: int = 0
    is_default: bool = False
    out_dir: Path | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    preflight: dict[str, Any] = field(default_factory=dict)
    executor: Executor = field(default_factory=LocalExecutor, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def evaluation_data(self, n_full: int | None = None, n_quick: int = 1000) -> ImageDataset:
        """The evaluation set, reduced to a seeded subset of ``n_quick`` samples in quick
        mode (and of ``n_full`` otherwise, when given). The same arguments return the same
        object, so cached logits are shared between checks."""
        limit = n_quick if self.quick else n_full
        if limit is None:
            return self.data
        key = f"subset:{limit}"
        if key not in self._cache:
            self._cache[key] = self.data.head(limit, seed=self.seed)
        return self._cache[key]

    def data_note(self, n_used: int, why: str = "", source: ImageDataset | None = None) -> str:
        """The report's "evaluation data" line: how many of which images a section used, and why.

        ``source`` defaults to the evaluation data; ``why`` explains a subset (attacks cost a
        backward pass per step, ...).
        """
        source = self.data if source is None else source
        whole = len(source)
        if n_used >= whole:
            text = f"all {whole:,} images of {source.name}"
        else:
            text = f"a seeded subset of {n_used:,} of the {whole:,} images of {source.name}"
            if self.quick:
                text += " (--quick)"
        return text + (f"; {why}" if why else "") + "."

    def _key(self, kind: str, data: ImageDataset) -> str:
        # keyed by content, not id(): ids are reused after garbage collection
        return f"{kind}:{data.fingerprint()}"

    def logits(self, data: ImageDataset) -> torch.Tensor:
        """Logits of ``data``, computed once per data set and shared between checks."""
        key = self._key("logits", data)
        if key not in self._cache:
            self._cache[key] = self.classifier.predict_logits(data.images)
        return self._cache[key]

    def features(self, data: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) of ``data``, computed once per data set."""
        key = self._key("features", data)
        if key not in self._cache:
            self._cache[key] = self.classifier.features(data.images)
            self._cache[self._key("logits", data)] = self._cache[key][1]
        return self._cache[key]

    def option(self, check: str, key: str, default: Any) -> Any:
        return self.options.get(check, {}).get(key, default)


class Check(ABC):
    """One hazard check of the audit.

    Subclasses set ``name`` (short and stable: ``accuracy``, ``corruptions``, ...),
    ``title``, ``hazard`` (the pillar/hazard it covers), ``requires`` (a subset of
    ``{"validation", "train", "ood", "gradients"}`` beyond model and data) and implement
    :meth:`run`. Register with ``@CHECKS.register("<name>")``.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    hazard: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset()
    order: ClassVar[int] = 100
    #: headline metrics a user may put a threshold on (``--fail-under <check>.<metric>=...``);
    #: empty means "not declared", and any name is then accepted until the check has run
    metric_names: ClassVar[frozenset[str]] = frozenset()

    def not_applicable(self, context: AuditContext) -> str | None:
        """Why this check cannot run on ``context`` (None when it can)."""
        if "validation" in self.requires and context.validation is None:
            return "needs a validation split, and none was given"
        if "train" in self.requires and context.train is None:
            return "needs the training data, and none was given"
        return None

    def config(self, context: AuditContext) -> dict[str, Any]:
        """Settings that change the result; part of the key under which results are reused."""
        return {"quick": context.quick, "seed": context.seed,
                "options": context.options.get(self.name, {})}

    @abstractmethod
    def run(self, context: AuditContext) -> CheckResult:
        """Run the check and return its result."""

    def result(self, verdict: Verdict, summary: str, **fields: Any) -> CheckResult:
        """Build a :class:`CheckResult` carrying this check's name, title and hazard."""
        return CheckResult(self.name, self.title, verdict, summary, hazard=self.hazard, **fields)



@dataclass
class ShardPlan:
    """A check's heavy work as independent shards: ``function(shard, shared)`` for each of
    ``shards``; ``shared`` (model, images) is registered with the executor once."""

    function: ShardFunction
    shards: list[Shard]
    shared: Any = None
    state: dict[str, Any] = field(default_factory=dict)


class ShardedCheck(Check):
    """A check whose heavy work splits into shards that any executor may run.

    Subclasses implement :meth:`plan` (on the driver: choose data and settings, list the
    shards) and :meth:`combine` (on the driver: turn the shard results, in plan order, into
    the :class:`CheckResult`). Shard results must be JSON-serialisable, since a distributed
    audit stores each one in ``<out>/shards/`` the moment it arrives. The same plan and the
    same shard function run under every executor, so the result does not depend on it.
    """

    @abstractmethod
    def plan(self, context: AuditContext) -> ShardPlan:
        """The shards of this check on ``context``."""

    @abstractmethod
    def combine(self, context: AuditContext, plan: ShardPlan, results: list[Any]) -> CheckResult:
        """The check's result from its shards' results (in the order of ``plan.shards``)."""

    def run(self, context: AuditContext) -> CheckResult:
        plan = self.plan(context)
        return self.combine(context, plan, context.executor.map(plan.function, plan.shards, shared=plan.shared))
