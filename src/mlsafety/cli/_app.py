"""The root typer application; command modules in :mod:`mlsafety.cli` attach to it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="mlsafety",
    help="Audit ML models for safety hazards: robustness, monitoring and alignment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
