"""mlsafety: measured, batched tools for the hazards of ML systems.

Pillars: :mod:`mlsafety.robustness` (corruptions, adversarial examples),
:mod:`mlsafety.monitoring` (OOD detection, backdoors, calibration) and
:mod:`mlsafety.alignment` (value learning, proxy gaming). The audit
(:mod:`mlsafety.audit`) runs every applicable check on a classifier and writes a report.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlsafety")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
