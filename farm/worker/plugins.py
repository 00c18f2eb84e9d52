"""Worker plugins: code from outside the product that a worker runs when a setting asks
for it, such as the deliberate faults of the fault tests and the null renderer of
`farm bench --overhead` (both in farm.tools).

A plugin is an entry point of the group `farm.worker_plugins` whose name is the
environment variable that turns it on (`FARM_FAULTS = "farm.tools.faults:plugin"` in
pyproject.toml): a worker where that variable is set loads it, one where none is set
loads nothing. The object it names may have any of:

- `device()`: the Device the worker uses instead of opening OpenCL;
- `renderer(job)`: the renderer of a job (the Renderer interface), or None for the usual one;
- `before_bucket(index, meta)`: called as a bucket starts (`meta`: its job's JobMeta);
- `after_pass(index, seconds)`: called after each pass of samples;
- `describe`: a line for the log of a render process that starts with it.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points

log = logging.getLogger(__name__)

GROUP = "farm.worker_plugins"


class Plugins:
    """The plugins this process loaded, asked together."""

    def __init__(self, loaded: list):
        self.loaded = loaded

    def __bool__(self) -> bool:
        return bool(self.loaded)

    def _all(self, name: str):
        return [getattr(plugin, name) for plugin in self.loaded if hasattr(plugin, name)]

    def device(self):
        """The first plugin's device, or None: open the real one."""
        return next((make() for make in self._all("device")), None)

    def renderer(self, job):
        return next((found for make in self._all("renderer") if (found := make(job)) is not None), None)

    def before_bucket(self, index: int, meta) -> None:
        for hook in self._all("before_bucket"):
            hook(index, meta)

    def after_pass(self, index: int, seconds: float) -> None:
        for hook in self._all("after_pass"):
            hook(index, seconds)

    def describe(self) -> str:
        return ", ".join(self._all("describe"))


def load(environ=os.environ) -> Plugins:
    """The plugins whose variable is set in `environ`."""
    wanted = [point for point in entry_points(group=GROUP) if environ.get(point.name)]
    loaded = []
    for point in wanted:
        loaded.append(point.load())
        log.info("worker plugin %s loaded (%s is set)", point.value, point.name)
    return Plugins(loaded)
