"""Stand-in torchvision modules, only while pytorch-ood (the anchor) is imported.

pytorch-ood imports torchvision at import time (for its model zoo and data sets only), and
torchvision breaks the CPU torch build here; the detectors compared never touch it.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator


@contextlib.contextmanager
def torchvision_shim() -> Iterator[None]:
    """pytorch-ood imports torchvision at import time (for its model zoo and data sets only).
    torchvision breaks the CPU torch build here, so the tests give it empty stand-in modules;
    the detectors compared never touch them."""
    if "torchvision" in sys.modules:
        yield
        return

    class _Stub(types.ModuleType):
        def __getattr__(self, name: str) -> type:
            if name.startswith("__"):
                raise AttributeError(name)
            stub = type(name, (), {"__init__": lambda self, *args, **kwargs: None})
            setattr(self, name, stub)
            return stub

    names = ["torchvision", "torchvision.transforms", "torchvision.transforms.functional",
             "torchvision.datasets", "torchvision.datasets.utils", "torchvision.models", "torchvision.models.resnet"]
    for name in names:
        module = _Stub(name)
        module.__path__ = []  # type: ignore[attr-defined]
        sys.modules[name] = module
    for name in names[1:]:
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, sys.modules[name])
    try:
        yield
    finally:
        # remove the stand-ins once pytorch-ood holds its references: left in sys.modules they
        # break other libraries that probe for torchvision (transformers, torchmetrics)
        for name in names:
            sys.modules.pop(name, None)
