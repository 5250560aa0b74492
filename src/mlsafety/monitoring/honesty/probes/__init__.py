"""Truth probes: one file each, registered in :data:`PROBES` (``PROBES.create("logistic")``)."""

from mlsafety.monitoring.honesty.probes.base import PROBES, Probe, load_probe

__all__ = ["PROBES", "Probe", "load_probe"]
