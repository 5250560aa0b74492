"""One small local Ray instance for every Ray test of this folder (started once, ~6 s)."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(scope="package")
def ray_session():
    """Ray on loopback with 2 CPUs and an explicit 200 MB object store (small containers fail
    with Ray's default of 30% of the memory); the test modules' functions are shipped by value."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
             _node_ip_address="127.0.0.1", logging_level="ERROR", log_to_driver=False)
    for name, module in list(sys.modules.items()):
        if name.startswith("test_ray") or name.startswith("tests.execution.test_ray"):
            ray.cloudpickle.register_pickle_by_value(module)
    yield ray
    ray.shutdown()
