"""The root typer application; command modules in :mod:`mlsafety.cli` attach to it.

The root group runs click in non-standalone mode so that every way a command line can be
wrong (an unknown flag, ``--seed abc``, a missing argument, an unknown sub-command) ends
the same way as a bad input file: one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer._click import Command, Context
from typer.core import TyperArgument, TyperGroup, TyperOption

EXIT_USAGE = 2


class _Settings:
    """Process-wide CLI settings set by the root options (``--debug``)."""

    debug: bool = bool(os.environ.get("MLSAFETY_DEBUG"))


settings = _Settings()


def _usage_line(error: typer.TyperException) -> str:
    message = " ".join(error.format_message().split())
    context = getattr(error, "ctx", None)
    where = context.command_path if context is not None else "mlsafety"
    return f"error: {message} (see '{where} --help')"


_PLAIN_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "file": "PATH",
                   "directory": "FOLDER"}


def plain_metavars(command: Command) -> None:
    """Show option values the click way (``--out PATH``, ``--seed INTEGER``), recursively.

    Typer labels options with Python types (``--ood <list[str]>``), which reads as if
    flags took values; flags keep no label at all, and an explicit ``metavar`` wins.
    """
    for param in command.params:
        if isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
            label = param.display_type(Context(command)).strip("<>")
            if label.startswith("list[") and label.endswith("]"):
                label = label[5:-1]
            param.metavar = _PLAIN_METAVARS.get(label, label.upper() if label.isidentifier() else label) or "VALUE"
        elif isinstance(param, TyperArgument) and param.metavar is None and param.name:
            param.metavar = param.name.upper() + ("..." if param.nargs == -1 else "")
            param.display_type_rich = lambda ctx=None: None  # type: ignore[method-assign]  # no "<path>" label
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            plain_metavars(sub)


class OneLineGroup(TyperGroup):
    """A typer group whose parser errors are one line on stderr with exit code 2."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        plain_metavars(self)
        try:
            result = super().main(args=args, prog_name=prog_name or "mlsafety", complete_var=complete_var,
                                  standalone_mode=False, **extra)
        except typer.TyperException as error:
            typer.echo(_usage_line(error), err=True)
            code = getattr(error, "exit_code", EXIT_USAGE) or EXIT_USAGE
            code = EXIT_USAGE if code == 1 else code
        except typer.Abort:
            typer.echo("error: interrupted.", err=True)
            code = 130
        else:
            code = result if isinstance(result, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(
    name="mlsafety",
    cls=OneLineGroup,
    help="Audit ML models for safety hazards: robustness, monitoring and alignment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an unexpected internal error.")] = False,
) -> None:
    """Audit ML models for safety hazards: robustness, monitoring and alignment."""
    if debug:
        settings.debug = True
