"""Who imports what: the client never loads the worker, the worker never loads the client,
the protocol both speak loads neither, and the product never loads the tools.

Each side is imported in a fresh interpreter, so nothing another test imported counts.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

WORKER = ("farm.worker", "farm.tasks", "farm.scene.pack", "farm.scene.bvh", "pyopencl")
CLIENT = ("farm.client",)
SCENE_LOADER = ("farm.scene.load", "farm.scene.gltf")
TOOLS = ("farm.tools",)


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(out.stdout.splitlines()[-1]))


def _matching(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("code", [
    "import farm.client.cli as cli; cli.submit_parser()",
    "import farm.client.run, farm.client.local, farm.client.film, farm.scene.load",
])
def test_the_client_loads_no_worker_code_and_no_opencl(code):
    loaded = _loaded_after(code)
    assert _matching(loaded, WORKER + TOOLS) == []
    assert "celery" in loaded or "farm.client.cli" in loaded  # the probe did import something


def test_the_worker_loads_no_client_code_no_scene_loader_and_no_tools():
    """What `celery -A farm worker` imports: the app, whose `include` names farm.tasks."""
    loaded = _loaded_after("import farm; farm.app.loader.import_default_modules()")
    assert "farm.tasks" in loaded and "farm.worker.process" in loaded
    assert _matching(loaded, CLIENT + SCENE_LOADER + TOOLS) == []


def test_the_protocol_loads_neither_side():
    modules = ("assets", "broker", "events", "jobs", "leases", "queue", "registry", "tiles")
    loaded = _loaded_after("; ".join(f"import farm.protocol.{m}" for m in modules))
    assert _matching(loaded, WORKER + CLIENT + TOOLS) == []


def test_the_client_sends_tasks_by_name():
    """The client's queue names the task; farm/tasks.py registers that name on the worker."""
    from farm.app import app
    from farm.protocol.queue import TASK_NAME

    app.loader.import_default_modules()
    assert TASK_NAME in app.tasks


def test_a_worker_without_faults_asked_for_loads_no_fault_injection(monkeypatch):
    monkeypatch.delenv("FARM_FAULTS", raising=False)
    loaded = _loaded_after("import os; os.environ.pop('FARM_FAULTS', None); import farm.worker.process")
    assert "farm.tools.faults" not in loaded
    loaded = _loaded_after("import os; os.environ['FARM_FAULTS'] = 'slow=2'; import farm.worker.process")
    assert "farm.tools.faults" in loaded, json.dumps(_matching(loaded, TOOLS))
