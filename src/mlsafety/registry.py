"""Name -> class registries, filled by a decorator in each method's own file.

A registry knows the package that holds its methods and imports every module in it on
first lookup, so adding a method means adding one file with one decorator line
(as in timm's ``_registry.py``). Unknown names raise :class:`UnknownMethodError` with the
closest registered names.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from mlsafety.exceptions import UnknownMethodError

T = TypeVar("T")

_ALL: dict[str, Registry[Any]] = {}


class Registry(Generic[T]):
    """A named collection of classes (or factories) of one kind of method.

    Parameters
    ----------
    kind : str
        Human-readable kind, used in error messages ("corruption", "OOD detector").
    package : str
        Dotted package whose modules register into this registry when imported.
    """

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self._entries: dict[str, T] = {}
        self._metadata: dict[str, dict[str, Any]] = {}
        self._populated = False
        _ALL[kind] = self

    def register(self, name: str, **metadata: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` with optional metadata (tags)."""

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            self._metadata[name] = dict(metadata)
            with contextlib.suppress(AttributeError, TypeError):
                obj.registry_name = name  # type: ignore[attr-defined]
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used by tests that register temporary methods)."""
        self._entries.pop(name, None)
        self._metadata.pop(name, None)

    def _populate(self) -> None:
        if self._populated:
            return
        self._populated = True
        try:
            package = importlib.import_module(self.package)
        except ModuleNotFoundError as error:
            if error.name == self.package:
                return
            raise
        for module in pkgutil.walk_packages(package.__path__, prefix=self.package + "."):
            importlib.import_module(module.name)

    def names(self, **where: Any) -> list[str]:
        """Registered names, sorted, optionally filtered by metadata equality."""
        self._populate()
        return sorted(
            name
            for name, meta in self._metadata.items()
            if all(meta.get(key) == value for key, value in where.items())
        )

    def metadata(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._metadata[name])

    def get(self, name: str) -> T:
        """Look up ``name``; raise :class:`UnknownMethodError` with suggestions if absent."""
        self._populate()
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownMethodError(
                f"unknown {self.kind} {name!r}.{hint} Known: {known}."
            )
        return self._entries[name]

    def create(self, name: str, **kwargs: Any) -> Any:
        """Instantiate the method registered under ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)  # type: ignore[operator]

    def __contains__(self, name: object) -> bool:
        self._populate()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._populate()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, package={self.package!r})"


def all_registries() -> dict[str, Registry[Any]]:
    """Every registry, by kind (used by the common tests)."""
    return dict(_ALL)


ARCHITECTURES: Registry[Any] = Registry("architecture", "mlsafety.models.architectures")
CHECKS: Registry[Any] = Registry("audit check", "mlsafety.audit.checks")
CORRUPTIONS: Registry[Any] = Registry("corruption", "mlsafety.robustness.corruptions")
ATTACKS: Registry[Any] = Registry("attack", "mlsafety.robustness.attacks")
OOD_DETECTORS: Registry[Any] = Registry("OOD detector", "mlsafety.monitoring.ood")
CALIBRATORS: Registry[Any] = Registry("calibrator", "mlsafety.monitoring.calibration")
BACKDOOR_ATTACKS: Registry[Any] = Registry("backdoor attack", "mlsafety.monitoring.backdoor")
BACKDOOR_DETECTORS: Registry[Any] = Registry("backdoor detector", "mlsafety.monitoring.backdoor")
ENCODERS: Registry[Any] = Registry("text encoder", "mlsafety.alignment.values")
ENVIRONMENTS: Registry[Any] = Registry("environment", "mlsafety.alignment.proxy")
