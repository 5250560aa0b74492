"""Render a report as ``report.json`` and a self-contained, responsive ``report.html``.

A report is a title, a list of :class:`~mlsafety.report.records.CheckResult` sections and a
dictionary of metadata; the audit and every lab (values, proxy gaming, honesty, emergence)
use this one renderer. Figures are embedded as base64 PNGs, so the HTML needs no network
and no side files, and it reads on a phone as on a desktop: tables scroll inside their own
box, figures scale to the width of the page.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from mlsafety._io import atomic_write_text
from mlsafety.report.formatting import flatten, format_value
from mlsafety.report.provenance import git_commit, package_versions
from mlsafety.report.records import CheckResult, worst_verdict

#: metadata keys shown elsewhere in the page, left out of the configuration table
_NOT_IN_CONFIGURATION = ("warnings", "versions", "provenance", "timings")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON to ``path`` via a temporary file and a rename, so readers never see a
    half-written file and an interrupted run leaves the previous version intact."""
    text = json.dumps(_clean(json.loads(json.dumps(data, default=_json_default))), indent=2)
    return atomic_write_text(path, text)


def command_line() -> str:
    """The command that is running, as the user typed it (``mlsafety audit --quick``)."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return " ".join([program, *sys.argv[1:]])


def provenance(metadata: dict[str, Any]) -> dict[str, Any]:
    """The header facts: mlsafety version and commit, the command, then what the caller adds
    (model file and its SHA-256, data fingerprint, seed)."""
    from mlsafety import __version__

    facts: dict[str, Any] = {"mlsafety": __version__}
    commit = git_commit()
    if commit:
        facts["git commit"] = commit
    facts["command"] = command_line()
    if "seed" in metadata:
        facts["seed"] = metadata["seed"]
    facts.update(metadata.get("provenance") or {})
    return facts


def _environment() -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("mlsafety.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["fmt"] = format_value
    return environment


def render_html(results: list[CheckResult], metadata: dict[str, Any], title: str) -> str:
    """The HTML page for ``results`` (what :func:`render_report` writes to ``report.html``)."""
    overall = worst_verdict([r.verdict for r in results] + (["warn"] if metadata.get("warnings") else []))
    configuration = flatten({k: v for k, v in _clean(metadata).items() if k not in _NOT_IN_CONFIGURATION})
    return _environment().get_template("report.html.j2").render(
        title=title,
        overall=overall,
        results=results,
        metadata=metadata,
        provenance=provenance(metadata),
        configuration=configuration,
        versions=metadata.get("versions") or package_versions(),
    )


def render_report(
    out_dir: str | Path,
    results: list[CheckResult],
    metadata: dict[str, Any],
    title: str = "mlsafety audit",
) -> tuple[Path, Path]:
    """Write ``out_dir/report.json`` and ``out_dir/report.html``; return both paths.

    ``metadata["provenance"]`` (optional) adds header facts such as the model file's
    SHA-256; the mlsafety version, its git commit (from a source checkout) and the command
    line are always added.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metadata = {**metadata, "versions": metadata.get("versions") or package_versions()}
    metadata["provenance"] = provenance(metadata)
    payload = {
        "title": title,
        "overall_verdict": worst_verdict([r.verdict for r in results] + (["warn"] if metadata.get("warnings") else [])),
        "metadata": metadata,
        "checks": [r.to_dict() for r in results],
    }
    json_path = write_json_atomic(out / "report.json", payload)
    html_path = atomic_write_text(out / "report.html", render_html(results, metadata, title))
    return json_path, html_path
