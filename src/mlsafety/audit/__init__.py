"""The audit: checks (one per hazard) and the resumable runner; the JSON + HTML report is
rendered by :mod:`mlsafety.report`."""

from mlsafety.audit.base import AuditContext, Check, CheckResult, Figure, Table, worst_verdict
from mlsafety.audit.runner import AuditReport, available_checks, resolve_checks, run_audit
from mlsafety.report import render_report, write_json_atomic

__all__ = [
    "AuditContext",
    "AuditReport",
    "Check",
    "CheckResult",
    "Figure",
    "Table",
    "available_checks",
    "render_report",
    "resolve_checks",
    "run_audit",
    "worst_verdict",
    "write_json_atomic",
]
