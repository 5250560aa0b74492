"""Run audit checks with progress, persist each result atomically, resume, and report.

Each finished check is written to ``<out>/results/<check>.json`` at once. A rerun with
the same configuration (model weights, data, check settings, mlsafety version) reuses
those files instead of recomputing, so an interrupted audit loses nothing.

With a distributed executor (:class:`~mlsafety.execution.RayExecutor`) every pending check
becomes shards: a :class:`~mlsafety.audit.base.ShardedCheck` its own (saved one by one to
``<out>/shards/<check>-<config hash>/`` as they arrive, so a rerun after a killed driver
resumes from the finished shards), any other check one whole shard. They all run at once,
and each result is combined and saved on the driver the moment its last shard arrives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import mlsafety
from mlsafety._io import locked_output_dir
from mlsafety.audit.base import (
    VERDICT_SEVERITY,
    AuditContext,
    Check,
    CheckResult,
    ShardedCheck,
    ShardPlan,
    worst_verdict,
)
from mlsafety.audit.preflight import preflight
from mlsafety.exceptions import InvalidParameterError, MLSafetyError
from mlsafety.execution import Executor, LocalExecutor, Shard, ShardError, ShardStore, Task
from mlsafety.registry import CHECKS
from mlsafety.report import package_versions, render_report, write_json_atomic

#: the verdicts ``--fail-on`` accepts, from the most to the least severe it can gate on
GATE_VERDICTS = ("fail", "warn")

logger = logging.getLogger(__name__)


@dataclass
class AuditReport:
    """The outcome of :func:`run_audit`."""

    results: list[CheckResult]
    metadata: dict[str, Any]
    json_path: Path
    html_path: Path

    @property
    def verdict(self) -> str:
        floor = ["warn"] if self.metadata.get("warnings") else []
        return worst_verdict([r.verdict for r in self.results] + floor)

    def metric(self, key: str) -> float:
        """Look up ``check.metric`` or a bare metric name that only one check reports."""
        check, _, metric = key.rpartition(".")
        candidates = [
            (r.name, r.metrics[metric]) for r in self.results
            if metric in r.metrics and (not check or r.name == check)
        ]
        if not candidates:
            known = sorted(f"{r.name}.{m}" for r in self.results for m in r.metrics)
            raise InvalidParameterError(f"no metric {key!r} in this audit; known: {', '.join(known)}.")
        if len(candidates) > 1:
            raise InvalidParameterError(
                f"metric {key!r} is reported by several checks ({', '.join(c for c, _ in candidates)}); "
                "qualify it as <check>.<metric>."
            )
        return float(candidates[0][1])

    def violations(self, fail_under: dict[str, float] | None = None,
                   fail_over: dict[str, float] | None = None) -> list[str]:
        """Human-readable descriptions of the thresholds the audit breaks."""
        broken = []
        for key, bound, below in [(k, b, True) for k, b in (fail_under or {}).items()] + \
                [(k, b, False) for k, b in (fail_over or {}).items()]:
            try:
                value = self.metric(key)
            except InvalidParameterError:
                if key.partition(".")[0] in {r.name for r in self.results if r.verdict in ("skipped", "error")}:
                    broken.append(f"{key} could not be measured (the check was skipped or failed)")
                    continue
                raise
            if below and not value >= bound:
                broken.append(f"{key} = {value:.4g} is below {bound:g}")
            elif not below and not value <= bound:
                broken.append(f"{key} = {value:.4g} is above {bound:g}")
        return broken

    def verdicts_at_or_above(self, verdict: str) -> list[str]:
        """``"<check>: <verdict>"`` for every check whose verdict is ``verdict`` or worse.

        ``verdict`` is ``"fail"`` or ``"warn"`` (the ``--fail-on`` gate). A check that
        failed to run (``error``) counts as worse than ``fail``; ``skipped`` and ``info``
        never trip the gate.
        """
        if verdict not in GATE_VERDICTS:
            raise InvalidParameterError(f"the verdict gate must be one of {', '.join(GATE_VERDICTS)}; got {verdict!r}.")
        bound = VERDICT_SEVERITY[verdict]
        return [f"{r.name}: {r.verdict}" for r in self.results
                if r.verdict not in ("skipped", "info") and VERDICT_SEVERITY.get(r.verdict, 0) >= bound]


def validate_threshold_names(names: Sequence[str], checks: Sequence[str] | None) -> None:
    """Refuse threshold metrics that none of the requested checks reports, before any check runs.

    ``names`` are ``<check>.<metric>`` or bare ``<metric>`` keys. Checks that do not declare
    their metrics accept any metric name here (it is checked again after they ran).

    Raises
    ------
    InvalidParameterError
        Naming the unknown metric and the ones that are known.
    """
    selected = [CHECKS.get(n) for n in (checks or available_checks())]
    declared = {c.name: set(c.metric_names) for c in selected}
    known = sorted(f"{c}.{m}" for c, ms in declared.items() for m in ms)
    for key in names:
        check, _, metric = key.rpartition(".")
        if check:
            if check not in declared:
                raise InvalidParameterError(
                    f"threshold {key!r} names the check {check!r}, which is not among the checks run "
                    f"({', '.join(declared)})."
                )
            if declared[check] and metric not in declared[check]:
                raise InvalidParameterError(
                    f"the {check} check reports no metric {metric!r}; known: {', '.join(sorted(declared[check]))}."
                )
            continue
        owners = [c for c, ms in declared.items() if metric in ms]
        undeclared = [c for c, ms in declared.items() if not ms]
        if len(owners) > 1:
            raise InvalidParameterError(
                f"metric {key!r} is reported by several checks ({', '.join(owners)}); qualify it as <check>.<metric>."
            )
        if not owners and not undeclared:
            raise InvalidParameterError(f"no requested check reports a metric {key!r}; known: {', '.join(known)}.")


def available_checks() -> list[str]:
    """Registered check names in their report order."""
    return sorted(CHECKS.names(), key=lambda n: (CHECKS.get(n).order, n))


def resolve_checks(names: Sequence[str] | None) -> list[Check]:
    """Instantiate the named checks (all registered ones when ``names`` is None)."""
    selected = available_checks() if not names else list(dict.fromkeys(names))
    return [CHECKS.create(name) for name in selected]


_SKIP_HINTS = {
    "needs a validation split": "give held-out data with --validation (or leave --data out to use the default splits).",
    "needs the training data": "audit with the default data, or call run_audit with AuditContext(train=...).",
}


def _config_hash(check: Check, context: AuditContext) -> tuple[dict[str, Any], str]:
    config = {
        "check": check.name,
        "settings": check.config(context),
        "model": context.classifier.fingerprint(),
        "data": context.data.fingerprint(),
        "validation": context.validation.fingerprint() if context.validation is not None else None,
        "ood": {name: d.fingerprint() for name, d in sorted(context.ood.items())},
        "mlsafety": mlsafety.__version__,
    }
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return config, digest


def _load_previous(path: Path, config_hash: str) -> CheckResult | None:
    if not path.exists():
        return None
    try:
        result = CheckResult.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, KeyError):
        logger.warning("ignoring unreadable previous result %s", path)
        return None
    if result.config_hash != config_hash:
        return None
    result.resumed = True
    return result


def _execute_check(check: Check, context: AuditContext) -> CheckResult:
    """Run one check, turning its failure into an ``error`` result (so the others still run)."""
    reason = check.not_applicable(context)
    if reason is not None:
        result = check.result("skipped", f"Skipped: {reason}.")
        result.next_step = _SKIP_HINTS.get(reason.split(",")[0], "")
        return result
    try:
        return check.run(context)
    except Exception as error:  # a failing check must not lose the others
        return _error_result(check, error)


def _error_result(check: Check, error: BaseException) -> CheckResult:
    if isinstance(error, MLSafetyError):
        return check.result("error", f"{type(error).__name__}: {error}")
    logger.debug("check %s failed", check.name, exc_info=error)
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return check.result("error", f"{type(error).__name__}: {error}", details={"traceback": trace})


def _finish(result: CheckResult, check: Check, config: dict[str, Any], digest: str, seconds: float) -> None:
    if result.verdict == "error" and not result.next_step:
        result.next_step = ("the other checks are unaffected; rerun this one alone with "
                            f"'mlsafety --debug audit --checks {check.name}' to see the traceback, and "
                            "report it if the message does not point to your model or data.")
    result.seconds = seconds
    result.config = config
    result.config_hash = digest


def _run_local(context: AuditContext, instances: list[Check], results_dir: Path, resume: bool,
               bar: Progress) -> list[CheckResult]:
    """Today's path: the checks one after the other in this process, sharing cached logits."""
    results: list[CheckResult] = []
    task = bar.add_task("audit", total=len(instances))
    for check in instances:
        bar.update(task, description=f"{check.name}")
        path = results_dir / f"{check.name}.json"
        config, digest = _config_hash(check, context)
        previous = _load_previous(path, digest) if resume else None
        if previous is not None:
            results.append(previous)
            bar.advance(task)
            continue
        tick = time.perf_counter()
        result = _execute_check(check, context)
        _finish(result, check, config, digest, time.perf_counter() - tick)
        if result.verdict != "error":
            write_json_atomic(path, result.to_dict())
        results.append(result)
        bar.advance(task)
    return results


def _worker_context(context: AuditContext) -> AuditContext:
    """What a worker needs of ``context``: all of it but the cache and the executor (a check
    runs in-process there). Checks may use the training data without requiring it (OOD, backdoor)."""
    return replace(context, executor=LocalExecutor(), out_dir=None, _cache={})


def run_whole_check(shard: Shard, context: AuditContext) -> dict[str, Any]:
    """A check that does not shard its work, run as one shard on a worker: its result record."""
    check = CHECKS.create(shard.params["check"])
    tick = time.perf_counter()
    result = _execute_check(check, context)
    result.seconds = time.perf_counter() - tick
    return result.to_dict()


def _run_distributed(context: AuditContext, instances: list[Check], results_dir: Path, resume: bool,
                     bar: Progress) -> list[CheckResult]:
    """Every pending check as shards on ``context.executor``, all at once; each check is
    combined and saved when its last shard arrives."""
    executor = context.executor
    finished: dict[str, CheckResult] = {}
    pending: dict[str, _Pending] = {}
    whole: list[Task] = []
    fine: list[Task] = []
    owners: dict[int, str] = {}  # id(shard) -> check
    shared_context: Any = None
    for check in instances:
        path = results_dir / f"{check.name}.json"
        config, digest = _config_hash(check, context)
        previous = _load_previous(path, digest) if resume else None
        if previous is not None:
            finished[check.name] = previous
            continue
        tick = time.perf_counter()
        if check.not_applicable(context) is not None:
            result = _execute_check(check, context)
            _finish(result, check, config, digest, 0.0)
            write_json_atomic(path, result.to_dict())
            finished[check.name] = result
            continue
        if isinstance(check, ShardedCheck):
            try:
                plan = check.plan(context)
            except Exception as error:
                result = _error_result(check, error)
                _finish(result, check, config, digest, time.perf_counter() - tick)
                finished[check.name] = result
                continue
            store = ShardStore(results_dir.parent / "shards" / f"{check.name}-{digest}")
            handle = executor.share(plan.shared)
            new = [Task(plan.function, shard, handle, store) for shard in plan.shards]
        else:  # the whole check is one shard, run by run_whole_check on a worker
            if shared_context is None:  # one copy in the object store for every whole check
                shared_context = executor.share(_worker_context(context))
            plan = ShardPlan(run_whole_check, [Shard.create(f"check-{check.name}", context.seed, check=check.name)])
            new = [Task(run_whole_check, plan.shards[0], shared_context)]
        pending[check.name] = _Pending(check, plan, config, digest, tick, {})
        owners.update((id(task.shard), check.name) for task in new)
        # whole checks (long, indivisible) go first and the small shards fill in around them,
        # so the run does not end waiting on one long check (longest-first scheduling)
        (whole if plan.function is run_whole_check else fine).extend(new)
    tasks = whole + fine
    progress = bar.add_task(f"audit ({executor.name}, {executor.workers} workers)", total=len(tasks))

    def on_result(task: Task, value: Any, resumed: bool) -> None:
        item = pending[owners[id(task.shard)]]
        item.values[task.shard.key] = value
        bar.advance(progress)
        if len(item.values) == len(item.plan.shards):
            finished[item.check.name] = _combine(item, context, results_dir)

    executor.run(tasks, on_result)
    return [finished[check.name] for check in instances]


@dataclass
class _Pending:
    check: Check
    plan: ShardPlan
    config: dict[str, Any]
    digest: str
    started: float
    values: dict[str, Any]


def _combine(item: _Pending, context: AuditContext, results_dir: Path) -> CheckResult:
    check, plan = item.check, item.plan
    values = [item.values[shard.key] for shard in plan.shards]
    failures = [v for v in values if isinstance(v, ShardError)]
    seconds = time.perf_counter() - item.started
    if failures:
        result = _error_result(check, failures[0].error)
    elif plan.function is run_whole_check:
        result = CheckResult.from_dict(values[0])
        seconds = result.seconds
    else:
        try:
            result = check.combine(context, plan, values)
        except Exception as error:
            result = _error_result(check, error)
    _finish(result, check, item.config, item.digest, seconds)
    if result.verdict != "error":
        write_json_atomic(results_dir / f"{check.name}.json", result.to_dict())
    return result


def run_audit(
    context: AuditContext,
    out_dir: str | Path,
    checks: Sequence[str] | None = None,
    *,
    resume: bool = True,
    progress: bool = True,
    console: Console | None = None,
    extra_metadata: dict[str, Any] | None = None,
    executor: Executor | None = None,
) -> AuditReport:
    """Run ``checks`` on ``context``, writing results as they finish, then the report.

    Parameters
    ----------
    out_dir : where ``results/``, ``report.json`` and ``report.html`` go.
    checks : check names (default: every registered check).
    resume : reuse finished results whose configuration matches.
    executor : where the checks' work runs (default: ``context.executor``, in this process).
        The metrics do not depend on it; results of one executor are resumed by another.

    A check that raises is recorded with verdict ``error`` (with the message) and is not
    saved, so the next run retries it; the other checks still run.
    """
    out = Path(out_dir)
    if executor is not None:
        context.executor = executor
    context.executor.use_device(str(context.classifier.device))
    with locked_output_dir(out, command="run_audit"):
        return _run_audit_locked(context, out, checks, resume=resume, progress=progress, console=console,
                                 extra_metadata=extra_metadata)


def _run_audit_locked(
    context: AuditContext,
    out: Path,
    checks: Sequence[str] | None,
    *,
    resume: bool,
    progress: bool,
    console: Console | None,
    extra_metadata: dict[str, Any] | None,
) -> AuditReport:
    results_dir = out / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    context.out_dir = out
    instances = resolve_checks(checks)
    started = time.perf_counter()
    console = console or Console(stderr=True)
    warnings = preflight(context)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
        if context.executor.is_local:
            results = _run_local(context, instances, results_dir, resume, bar)
        else:
            results = _run_distributed(context, instances, results_dir, resume, bar)
    metadata = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "total_seconds": time.perf_counter() - started,
        "seed": context.seed,
        "quick": context.quick,
        "checks": [c.name for c in instances],
        "timings": {r.name: r.seconds for r in results},
        "model": context.classifier.describe(),
        "device": str(context.classifier.device),
        "data": {**context.data.describe(), "fingerprint": context.data.fingerprint()},
        "validation": ({**context.validation.describe(), "fingerprint": context.validation.fingerprint()}
                       if context.validation is not None else None),
        "ood": {name: d.describe() for name, d in context.ood.items()},
        "options": context.options,
        "execution": context.executor.describe(),
        "warnings": warnings,
        "preflight": context.preflight,
        "versions": package_versions(),
        **(extra_metadata or {}),
    }
    metadata["provenance"] = {
        "model": context.classifier.name,
        "model weights fingerprint": context.classifier.fingerprint(),
        "data": f"{context.data.name} ({len(context.data):,} images)",
        "data fingerprint": context.data.fingerprint(),
        **(extra_metadata or {}).get("provenance", {}),
    }
    json_path, html_path = render_report(out, results, metadata)
    return AuditReport(results, metadata, json_path, html_path)
