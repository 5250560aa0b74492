"""Progress for the long steps of labs and reports, shown with rich when a display is given.

Library functions take an optional ``progress`` (a :class:`rich.progress.Progress`); with
None they stay silent, so tests and notebooks see no output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def step(progress: Any | None, description: str) -> Iterator[None]:
    """One step shown as a task with its elapsed time, completed when the block ends."""
    if progress is None:
        yield
        return
    task = progress.add_task(description, total=1)
    try:
        yield
    finally:
        progress.update(task, completed=1)


def in_chunks(function: Callable[[Sequence[Any]], T], items: Sequence[Any], progress: Any | None,
              description: str, chunk: int = 1024) -> list[T]:
    """Apply ``function`` to consecutive chunks of ``items``, advancing a bar by each chunk's size."""
    if progress is None:
        return [function(items)]
    task = progress.add_task(description, total=len(items))
    parts = []
    for start in range(0, len(items), chunk):
        part = items[start:start + chunk]
        parts.append(function(part))
        progress.advance(task, len(part))
    return parts
