"""Reports shared by the audit and every lab: the result records, the JSON + HTML renderer,
intervals for proportions, and provenance (versions, commit, file hashes).

This package sits below :mod:`mlsafety.audit`, :mod:`mlsafety.alignment` and
:mod:`mlsafety.monitoring`, and imports neither torch nor jinja2 until a report is rendered.
"""

from mlsafety.report.formatting import format_number, format_value
from mlsafety.report.provenance import file_sha256, git_commit, package_versions
from mlsafety.report.records import VERDICT_SEVERITY, CheckResult, Figure, Table, Verdict, worst_verdict
from mlsafety.report.render import render_html, render_report, write_json_atomic
from mlsafety.report.stats import accuracy_with_interval, wilson_interval

__all__ = [
    "VERDICT_SEVERITY",
    "CheckResult",
    "Figure",
    "Table",
    "Verdict",
    "accuracy_with_interval",
    "file_sha256",
    "format_number",
    "format_value",
    "git_commit",
    "package_versions",
    "render_html",
    "render_report",
    "wilson_interval",
    "worst_verdict",
    "write_json_atomic",
]
