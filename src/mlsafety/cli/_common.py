"""Shared CLI plumbing: one-line errors on stderr, the exit-code convention, and the option
checks every command runs before it loads anything heavy.

Exit codes: 0 all good, 1 findings over the user's thresholds, 2 usage or input error,
3 an unexpected internal error (a bug: rerun with ``--debug`` for the traceback).
"""

from __future__ import annotations

import errno
import functools
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from mlsafety.cli._app import settings
from mlsafety.exceptions import MLSafetyError

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
ISSUES_URL = "https://github.com/mlsafety/mlsafety/issues"
MAX_SEED = 2**32 - 1  # numpy's legacy RandomState takes no more, and some methods seed it
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
console = Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``message`` as one line on stderr and return the Exit to raise."""
    err_console.print(f"error: {' '.join(str(message).split())}", markup=False)
    return typer.Exit(code)


def _os_error_message(error: OSError) -> str:
    name = error.filename if error.filename is not None else ""
    reason = error.strerror or type(error).__name__
    hints = {
        errno.ENAMETOOLONG: "use a shorter file name",
        errno.EACCES: "choose a path you may write to",
        errno.EROFS: "choose a path on a writable file system",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.ENOSPC: "free some disk space",
        errno.EISDIR: "pass a file, not a folder",
        errno.ENOENT: "check the path",
    }
    hint = hints.get(error.errno or -1, "check the path and its permissions")
    shown = f"{str(name)[:120]}{'...' if len(str(name)) > 120 else ''}"
    return f"cannot use {shown!r}: {reason}; {hint}." if shown else f"{reason}; {hint}."


def cli_errors(function: F) -> F:
    """Turn every failure of a command into one line on stderr and a documented exit code.

    Library errors (:class:`MLSafetyError`) and operating-system errors on the user's paths
    exit 2; anything else is an internal error: exit 3 with where to report it, and the full
    traceback only behind ``mlsafety --debug``.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (typer.Exit, typer.TyperException):
            raise
        except MLSafetyError as error:
            raise fail(str(error)) from error
        except OSError as error:
            raise fail(_os_error_message(error)) from error
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:
            if settings.debug:
                raise
            first = " ".join(str(error).split())[:300]
            raise fail(
                f"internal error {type(error).__name__}: {first} -- this is a bug in mlsafety; rerun with "
                f"'mlsafety --debug ...' for the traceback and report it at {ISSUES_URL}.",
                EXIT_INTERNAL,
            ) from error

    return wrapper  # type: ignore[return-value]


def parse_thresholds(values: list[str] | None, option: str) -> dict[str, float]:
    """Parse ``METRIC=VALUE`` strings into a dict of finite numbers."""
    thresholds: dict[str, float] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            value = float(raw)
        except ValueError:
            raise fail(f"{option} takes METRIC=VALUE (e.g. accuracy=0.9); got {item!r}.") from None
        if not math.isfinite(value):
            raise fail(f"{option} {item!r}: the threshold must be a finite number; got {raw.strip()!r}.")
        thresholds[key.strip()] = value
    return thresholds


def check_seed(seed: int, option: str = "--seed") -> int:
    """Refuse seeds that numpy or torch cannot take (negative, or beyond 32 bits)."""
    if not 0 <= seed <= MAX_SEED:
        raise fail(f"{option} must be an integer in 0..{MAX_SEED}; got {seed}.")
    return seed


def check_device(device: str | None, option: str = "--device") -> str | None:
    """Accept ``cpu``, ``cuda`` or ``cuda:N`` naming a device this machine has."""
    if device is None:
        return None
    text = device.strip().lower()
    index = text.partition(":")[2]
    if text != "cpu" and not (text == "cuda" or (text.startswith("cuda:") and index.isdigit())):
        raise fail(f"{option} must be cpu, cuda or cuda:N; got {device!r}.")
    if text.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise fail(f"{option} {device} was asked for but CUDA is not available here; use {option} cpu.")
        if index and int(index) >= torch.cuda.device_count():
            raise fail(f"{option} {device}: this machine has {torch.cuda.device_count()} CUDA device(s).")
    return text


def check_positive_option(value: float | None, option: str, *, integer: bool = True) -> None:
    """Refuse a count or rate that is not a positive (finite) number."""
    if value is None:
        return
    if not (math.isfinite(value) and value > 0):
        kind = "an integer >= 1" if integer else "a positive number"
        raise fail(f"{option} must be {kind}; got {value}.")


def check_out_dir(path: Path, option: str = "--out") -> Path:
    """Make sure ``path`` is (or can become) a writable folder, before any heavy work.

    Refuses an existing file, a path under a file, names longer than the file system
    allows, and folders that cannot be created or written.
    """
    path = Path(path)
    if str(path).strip() == "":
        raise fail(f"{option} must name a folder; got an empty path.")
    if path.exists() and not path.is_dir():
        raise fail(f"{option} {str(path)!r} is an existing file; pass a folder (it is created if missing).")
    for part in path.parts:
        if len(os.fsencode(part)) > 255:
            raise fail(f"{option}: the name {part[:40]!r}... is longer than the 255 bytes a file name may have.")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise fail(f"{option} {str(path)!r} lies under {str(parent)!r}, which is a file; pass a folder path.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise fail(f"{option} {str(path)!r} cannot be created: {error.strerror or error}.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise fail(f"{option} {str(path)!r} is not writable; choose another folder.")
    return path


def check_out_file(path: Path, option: str, suffixes: Iterable[str]) -> Path:
    """Make sure ``path`` names a file with one of ``suffixes`` whose folder can be written."""
    path = Path(path)
    allowed = tuple(suffixes)
    if path.is_dir():
        raise fail(f"{option} {str(path)!r} is an existing folder; pass a file name ending in {' or '.join(allowed)}.")
    if path.suffix.lower() not in allowed:
        raise fail(f"{option} must end in {' or '.join(allowed)}; got {str(path)!r}.")
    if len(os.fsencode(path.name)) > 250:
        raise fail(f"{option}: the file name {path.name[:40]!r}... is longer than a file name may be.")
    check_out_dir(path.parent if str(path.parent) else Path("."), f"the folder of {option}")
    return path


def holds_output_folder(function: F) -> F:
    """Run a command holding the lock on its ``out`` folder (checked first: a writable folder).

    Put it under :func:`cli_errors`; a second run on the same folder exits 2 naming the holder.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlsafety._io import locked_output_dir

        out = check_out_dir(kwargs["out"])
        with locked_output_dir(out, command=f"mlsafety {function.__name__}"):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def split_names(text: str | None, option: str) -> list[str] | None:
    """Split a comma-separated list; None stays None, but an empty list is an error."""
    if text is None:
        return None
    names = list(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))
    if not names:
        raise fail(f"{option} names nothing; give at least one name, or leave the option out for the default.")
    return names


# -- one terminal style for every command ------------------------------------------------------

def print_verdict(verdict: str, name: str, summary: str) -> None:
    """One result line, the same in every command: ``   warn  calibration  <summary>``."""
    console.print(f"{verdict:>7}  {name:<12} {summary}", markup=False)


def print_written(label: str, path: str | Path) -> None:
    """Where an output went, the same in every command: ``report: /abs/path/report.html``."""
    console.print(f"{label + ':':<8}{Path(path).resolve()}", markup=False)


def progress_bar(transient: bool = True) -> Any:
    """The progress display every long step uses: on stderr, so stdout stays parseable, and erased
    when done (transient), so what remains is the result lines."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err_console, transient=transient)


# -- --executor / --address / --workers, shared by the commands that shard their work ----------

EXECUTOR_HELP = "Where shards run: local (this process, the default) or ray (a Ray cluster; pip install 'mlsafety[ray]')."
ADDRESS_HELP = "Ray cluster to join: auto or HOST:PORT (default: start a local Ray instance sized to this machine)."
WORKERS_HELP = "Shards run at once with --executor ray (default: the cluster's CPUs, or GPUs with --device cuda)."


def make_cli_executor(executor: str, address: str | None, workers: int | None, device: str | None = None) -> Any:
    """Check ``--executor/--address/--workers`` and build the executor (Ray connects on first use).

    Refuses, each with a one-line error and exit 2: an unknown executor, ``--workers`` below 1,
    ``--address`` or ``--workers`` without ``--executor ray``, a malformed address, Ray not
    installed, and an address where nothing answers.
    """
    name = executor.strip().lower()
    if name not in ("local", "ray"):
        raise fail(f"--executor must be local or ray; got {executor!r}.")
    if workers is not None and workers < 1:
        raise fail(f"--workers must be an integer >= 1; got {workers}.")
    if name == "local":
        if address is not None or workers is not None:
            raise fail("--address and --workers apply to --executor ray; add --executor ray or leave them out.")
        from mlsafety.execution import LocalExecutor

        return LocalExecutor()
    from mlsafety.execution import make_executor
    from mlsafety.execution.ray_executor import check_reachable, import_ray, parse_address

    import_ray()
    if address is not None:
        parse_address(address)
        check_reachable(address)
    return make_executor("ray", address, workers, device)
