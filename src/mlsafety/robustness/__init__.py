"""Robustness: withstand hazards -- common corruptions (long tails) and adversarial examples."""
