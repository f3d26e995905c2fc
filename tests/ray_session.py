"""A local Ray session for a test module (shared by the Ray Tune test files)."""

import contextlib
import types
from collections.abc import Iterator

import ray


@contextlib.contextmanager
def local_ray(module: types.ModuleType) -> Iterator[None]:
    """Start Ray on 2 CPUs; the module's trainables go to the workers by value (tests/ is not
    importable there)."""
    ray.cloudpickle.register_pickle_by_value(module)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(module)
