"""The parts of farm an install has: `pip install farm` is the client (submit to a farm,
status, collect, watch, cancel, report); `pip install 'farm[worker]'` adds what renders
(OpenCL and PoCL, the BVH builder's compiler, an embedded redis-server, Flower), which a
render machine and an embedded farm (submit with no broker) need."""

from __future__ import annotations

import importlib.util

from farm.exceptions import FarmSetupError

# The modules of the worker extra that a render process imports (pyproject.toml's `worker`).
WORKER_MODULES = ("pyopencl", "numba")


def require_worker(what: str) -> None:
    """Raise FarmSetupError, in one line naming the install to add, where the worker's
    parts are missing: before anything starts, not as an ImportError in a child process."""
    missing = [name for name in WORKER_MODULES if not _installed(name)]
    if missing:
        raise FarmSetupError(f"{what} needs farm's render parts, which this install lacks ({', '.join(missing)}): "
                             f"pip install 'farm[worker]'")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a package that is there but cannot be imported is as good as missing
        return False
