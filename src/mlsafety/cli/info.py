"""``mlsafety info``: versions, device, and where data and caches are."""

from __future__ import annotations

import os

from mlsafety.cli._app import app
from mlsafety.cli._common import cli_errors, console
from mlsafety.report.provenance import git_commit, package_versions  # light: reads metadata only


@app.command()
@cli_errors
def info() -> None:
    """Print versions, the compute device, data and cache locations, and registered methods."""
    import torch

    from mlsafety.data.fashion_mnist import fashion_mnist_dir
    from mlsafety.exceptions import DataNotFoundError
    from mlsafety.models.default import cache_dir, default_checkpoint
    from mlsafety.registry import all_registries

    for name, version in package_versions().items():
        console.print(f"{name:<14} {version}", markup=False)
    commit = git_commit()
    if commit:
        console.print(f"{'git commit':<14} {commit}", markup=False)
    cuda = torch.cuda.is_available()
    device = f"cuda ({torch.cuda.get_device_name(0)})" if cuda else "cpu"
    console.print(f"{'device':<14} {device}; torch threads {torch.get_num_threads()}; "
                  f"CPU kernels {torch.backends.cpu.get_cpu_capability()}", markup=False)
    try:
        location = str(fashion_mnist_dir())
    except DataNotFoundError:
        location = "not found (apt-get install dataset-fashion-mnist, or set MLSAFETY_DATA)"
    console.print(f"{'fashion-mnist':<14} {location}", markup=False)
    console.print(f"{'MLSAFETY_DATA':<14} {os.environ.get('MLSAFETY_DATA', '(unset)')}", markup=False)
    console.print(f"{'cache':<14} {cache_dir()}", markup=False)
    console.print(f"{'default model':<14} {default_checkpoint()}", markup=False)
    for kind, registry in all_registries().items():
        names = registry.names()
        if names:
            console.print(f"{kind}: {', '.join(names)}", markup=False)
