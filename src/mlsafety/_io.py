"""Output folders that two runs cannot share, and files that are never half-written.

Every command that writes a report or results takes :func:`locked_output_dir` on its
folder: a second run on the same folder is refused at once with the holder named, and
temporary files left by a run that was killed are removed before anything is written.
Files themselves are written to a temporary name in the same folder and renamed
(:func:`atomic_write_bytes`), so a reader (or a resumed run) sees either the old file or
the new one, never a fragment.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from mlsafety.exceptions import InvalidInputError, MLSafetyError

LOCK_NAME = ".mlsafety.lock"
OWNER_NAME = ".mlsafety.owner.json"
TEMPORARY_SUFFIX = ".tmp"
_HELD: set[str] = set()


class OutputLockedError(MLSafetyError):
    """Another mlsafety run is writing to the same output folder."""


def atomic_write_bytes(path: str | Path, data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files an interrupted run left in ``folder`` and its ``results/``.

    Only mlsafety's own pattern (hidden ``.<name>.<random>.tmp`` files) is touched, so a
    folder that also holds the user's files loses nothing else.
    """
    removed = []
    folder = Path(folder)
    for directory in (folder, folder / "results"):
        if not directory.is_dir():
            continue
        for stale in directory.glob(f".*{TEMPORARY_SUFFIX}"):
            if stale.is_file() and stale.name.count(".") >= 3:
                with contextlib.suppress(OSError):
                    stale.unlink()
                    removed.append(stale)
    return removed


def _describe_owner(folder: Path) -> str:
    try:
        owner = json.loads((folder / OWNER_NAME).read_text())
        return (f"process {owner.get('pid')} on {owner.get('host')} since {owner.get('started')} "
                f"({owner.get('command', '')[:80]})")
    except (OSError, ValueError, AttributeError):
        return "another process"


@contextlib.contextmanager
def locked_output_dir(folder: str | Path, command: str = "") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` for the duration of a run.

    Creates the folder, refuses at once (:class:`OutputLockedError`) when another run holds
    it, records who holds it, and removes temporary files a killed run left behind.
    The lock is an OS file lock, so it is released even when the process is killed.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if key in _HELD:  # this process already holds it (a command around a library call): nest
        yield folder
        return
    lock = FileLock(str(folder / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputLockedError(
            f"the output folder {str(folder)!r} is in use by {_describe_owner(folder)}; wait for it to "
            "finish or choose another --out."
        ) from None
    _HELD.add(key)
    try:
        remove_stale_temporaries(folder)
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command}
        atomic_write_text(folder / OWNER_NAME, json.dumps(owner))
        yield folder
    finally:
        _HELD.discard(key)
        with contextlib.suppress(OSError):
            (folder / OWNER_NAME).unlink()
        lock.release()


def not_text_table_error(what: str, error: Exception, kind: str = "CSV") -> InvalidInputError:
    """The one-line error for a table file that is not UTF-8 text (or not parseable as ``kind``)."""
    reason = " ".join(str(error).split())[:100]
    return InvalidInputError(f"{what} is not a UTF-8 {kind} text file ({type(error).__name__}: {reason}); "
                             f"save it as {kind} with UTF-8 encoding.")
