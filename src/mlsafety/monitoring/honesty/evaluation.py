"""Evaluation of truth probes: per-layer accuracy, cross-dataset generalisation, leave-one-topic-out."""

from __future__ import annotations

DEFAULT_SETS = ("cities", "neg_cities", "larger_than", "arithmetic", "countries")
