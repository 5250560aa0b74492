"""Render results as ``report.json`` and a self-contained ``report.html``.

Used by the audit and by every other report (values, proxy gaming): a report is a title,
a list of :class:`CheckResult` sections and a dictionary of metadata. Figures are
embedded as base64 PNGs, so the HTML needs no network and no side files.
"""

from __future__ import annotations

import json
import math
import platform
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import jinja2

from mlsafety._io import atomic_write_text
from mlsafety.audit.base import CheckResult, worst_verdict

_PACKAGES = ("mlsafety", "torch", "numpy", "scipy", "scikit-learn", "kornia", "faiss-cpu",
             "matplotlib", "safetensors")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


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


def _format(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("mlsafety.audit", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENVIRONMENT.filters["fmt"] = _format


def render_report(
    out_dir: str | Path,
    results: list[CheckResult],
    metadata: dict[str, Any],
    title: str = "mlsafety audit",
) -> tuple[Path, Path]:
    """Write ``out_dir/report.json`` and ``out_dir/report.html``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "title": title,
        "overall_verdict": worst_verdict([r.verdict for r in results] + (["warn"] if metadata.get("warnings") else [])),
        "metadata": {**metadata, "versions": metadata.get("versions") or package_versions()},
        "checks": [r.to_dict() for r in results],
    }
    json_path = write_json_atomic(out / "report.json", payload)
    html = _ENVIRONMENT.get_template("report.html.j2").render(
        title=title,
        overall=payload["overall_verdict"],
        results=results,
        metadata=payload["metadata"],
        metadata_json=json.dumps(_clean(payload["metadata"]), indent=2, default=_json_default),
        command=" ".join(sys.argv),
    )
    html_path = atomic_write_text(out / "report.html", html)
    return json_path, html_path
