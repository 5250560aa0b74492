"""The audit: checks (one per hazard), the resumable runner, and the JSON + HTML report."""

from mlsafety.audit.base import AuditContext, Check, CheckResult, Figure, Table, worst_verdict
from mlsafety.audit.report import render_report, write_json_atomic
from mlsafety.audit.runner import AuditReport, available_checks, resolve_checks, run_audit

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
