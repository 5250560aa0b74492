"""Shared CLI plumbing: one-line errors on stderr and the exit-code convention.

Exit codes: 0 all good, 1 findings over the user's thresholds, 2 usage or input error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from mlsafety.exceptions import MLSafetyError

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
console = Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``message`` as one line on stderr and return the Exit to raise."""
    err_console.print(f"error: {message}", markup=False)
    return typer.Exit(code)


def cli_errors(function: F) -> F:
    """Turn library errors into a one-line message on stderr and exit code 2."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (MLSafetyError, FileNotFoundError) as error:
            message = str(error).replace("\n", " ")
            raise fail(message) from error

    return wrapper  # type: ignore[return-value]


def parse_thresholds(values: list[str] | None, option: str) -> dict[str, float]:
    """Parse ``METRIC=VALUE`` strings into a dict."""
    thresholds: dict[str, float] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            thresholds[key.strip()] = float(raw)
        except ValueError:
            raise fail(f"{option} takes METRIC=VALUE (e.g. accuracy=0.9); got {item!r}.") from None
    return thresholds
