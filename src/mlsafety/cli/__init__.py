"""Command-line interface: ``mlsafety <command>``.

Each module in this package defines commands on the shared app (or adds a sub-app); they
are all imported here, so a new command is one new file.
"""

from __future__ import annotations

import importlib
import pkgutil

from mlsafety.cli._app import app

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
