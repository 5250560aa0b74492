"""Testbeds that produce real training curves for the emergence analysis.

:mod:`~mlsafety.monitoring.emergence.testbeds.scaling` trains a family of tiny GPT-2 models on
algorithmic tasks (``transformers`` is imported lazily, inside the functions that need it);
:mod:`~mlsafety.monitoring.emergence.testbeds.grokking` trains Nanda et al.'s one-layer
transformer on modular addition and computes their progress measures.
"""
