"""docker/systemd's unit: parsed, its instance run through the real device choice, checked by
`systemd-analyze verify`, and its sandbox scored by `systemd-analyze security --offline`
(where the machine has them), with what the worker needs left open: its GPUs, its cache,
the network and the OpenCL compilers' executable memory."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from farm.worker import device
from tests.test_deploy import ROOT, image_command

UNIT = ROOT / "docker" / "systemd" / "farm-worker@.service"
# systemd-analyze's exposure, 0 (sandboxed) to 10 (nothing restricted): "OK" from 1 to 4.9,
# "EXPOSED" from 7.5. The unit scores 1.6 (it was 8.5): what it leaves open, the worker needs.
EXPOSURE_AT_MOST = 2.0


def unit_entries() -> list[tuple[str, str, str]]:
    """(section, key, value) of every line of the unit, in order (keys may repeat)."""
    entries, section = [], None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_service() -> dict[str, list[str]]:
    service: dict[str, list[str]] = {}
    for section, key, value in unit_entries():
        if section == "Service":
            service.setdefault(key, []).append(value)
    return service


def expand(value: str, instance: str) -> str:
    """systemd's specifiers: %i the instance, %% a percent sign, any other something of
    systemd's (%h is the user's home, not Celery's host name)."""
    def one(match):
        return {"%%": "%", "%i": instance}.get(match.group(), f"<systemd's {match.group()}>")

    return re.sub(r"%.", one, value)


def unit_environment(instance: str) -> dict[str, str]:
    environment = {}
    for line in unit_service()["Environment"]:
        for assignment in shlex.split(expand(line, instance)):
            name, _, value = assignment.partition("=")
            environment[name] = value
    return environment


def test_unit_runs_a_celery_worker_of_the_farm_as_compose_does():
    service = unit_service()
    (exec_start,) = service["ExecStart"]
    argv = shlex.split(expand(exec_start, "3"))
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "celery"
    worker = image_command()
    assert argv[1:len(worker)] == worker[1:], "compose's worker, options included"
    assert argv[len(worker):] == ["--hostname", "gpu3@%h"], "one worker name a GPU; Celery puts in the host"
    assert service["Restart"] == ["on-failure"]
    assert service["User"] and service["User"] != ["root"]
    assert service["EnvironmentFile"] == ["/etc/farm/worker.env"]
    # warm shutdown: the running bucket goes back to the queue within a pass
    assert service["KillSignal"] == ["SIGTERM"]
    assert int(service["TimeoutStopSec"][0]) >= 30


def fake_opencl(visible: str) -> SimpleNamespace:
    """pyopencl over PoCL's CPU and an NVIDIA driver with two GPUs that shows only those
    CUDA_VISIBLE_DEVICES names, as the real one does."""
    def platform(name, devices):
        return SimpleNamespace(name=name, get_devices=lambda: devices)

    cpu = SimpleNamespace(name="pthread-cpu", type=2, available=True)
    gpus = [SimpleNamespace(name=f"NVIDIA GPU {index}", type=4, available=True)
            for index in visible.split(",") if index in ("0", "1")]
    return SimpleNamespace(Error=RuntimeError, device_type=SimpleNamespace(CPU=2, GPU=4),
                           get_platforms=lambda: [platform("Portable Computing Language", [cpu]),
                                                  platform("NVIDIA CUDA", gpus)],
                           Context=lambda devices: devices, CommandQueue=lambda context: context)


@pytest.mark.parametrize("instance", ["0", "1"])
def test_the_instance_selects_its_gpu_through_farm_device(instance, monkeypatch):
    environment = unit_environment(instance)
    assert environment["FARM_DEVICE"] in device.CHOICES
    monkeypatch.setitem(sys.modules, "pyopencl", fake_opencl(environment["CUDA_VISIBLE_DEVICES"]))
    opened = device.open_device(environment["FARM_DEVICE"])
    assert (opened.name, opened.kind) == (f"NVIDIA GPU {instance}", "GPU")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    """With the unit's celery pointed at this environment's (verify checks that it exists)."""
    celery = Path(sys.executable).parent / "celery"
    if not celery.exists():
        pytest.skip(f"no celery beside {sys.executable} to stand in for the unit's")
    text = UNIT.read_text()
    installed = shlex.split(unit_service()["ExecStart"][0])[0]
    (tmp_path / UNIT.name).write_text(text.replace(installed, str(celery)))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "farm-worker@0.service")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def security_review_offline() -> bool:
    if not shutil.which("systemd-analyze"):
        return False
    usage = subprocess.run(["systemd-analyze", "security", "--help"], capture_output=True, text=True, timeout=30)
    return "--offline" in usage.stdout


@pytest.mark.skipif(not security_review_offline(),
                    reason="no systemd-analyze with `security --offline` (systemd 250 or newer)")
def test_systemd_analyze_scores_the_sandbox_ok(tmp_path):
    (tmp_path / UNIT.name).write_text(UNIT.read_text())
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", UNIT.name],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (score, level) = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", result.stdout).groups()
    assert float(score) <= EXPOSURE_AT_MOST, f"{score} {level}:\n{result.stdout}"


def test_the_sandbox_leaves_the_worker_its_gpus_cache_network_and_jit():
    service = unit_service()
    one = {key: values[-1] for key, values in service.items()}
    assert set(one["SupplementaryGroups"].split()) == {"render", "video"}, "AMD's and Intel's device nodes"
    assert one.get("PrivateDevices", "no") == "no" and one["DevicePolicy"] == "closed"
    allowed = {line.split()[0]: line.split()[1] for line in service["DeviceAllow"]}
    assert allowed == {"char-drm": "rw", "char-kfd": "rw", "char-nvidia*": "rw"}
    assert one.get("PrivateUsers", "no") == "no", "it would unmap the groups render and video"
    assert one.get("MemoryDenyWriteExecute", "no") == "no", "PoCL's LLVM, the GPU drivers and numba JIT-compile"
    assert one.get("PrivateNetwork", "no") == "no" and "IPAddressDeny" not in one
    assert {"AF_INET", "AF_INET6"} <= set(one["RestrictAddressFamilies"].split())
    # the file system is read-only (strict) but for the CacheDirectory, where the worker's caches go
    assert one["ProtectSystem"] == "strict"
    cache = f"/var/cache/{one['CacheDirectory']}"
    assert unit_environment("0")["XDG_CACHE_HOME"] == cache
    probe = "from farm import defaults; print(defaults.CACHE_DIR)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", **unit_environment("0")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(cache + "/"), "farm's asset cache, without FARM_CACHE_DIR"


MANAGER_UNIT = ROOT / "docker" / "systemd" / "farm-manager.service"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_manager_s_unit_and_scores_its_sandbox(tmp_path):
    """The manager's unit runs `farm manager` (pointed at this environment's farm, which
    verify checks exists), writes only its state and cache folders, and scores OK."""
    farm = Path(sys.executable).parent / "farm"
    if not farm.exists():
        pytest.skip(f"no farm beside {sys.executable} to stand in for the unit's")
    text = MANAGER_UNIT.read_text()
    (tmp_path / MANAGER_UNIT.name).write_text(text.replace("/opt/farm/venv/bin/farm", str(farm)))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / MANAGER_UNIT.name)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    assert "ExecStart=/opt/farm/venv/bin/farm manager" in text and "StateDirectory=farm-manager" in text
    assert "FARM_OUTPUT_DIR=/var/lib/farm-manager" in text
    if security_review_offline():
        result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", MANAGER_UNIT.name],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        (score, level) = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", result.stdout).groups()
        assert float(score) <= EXPOSURE_AT_MOST, f"{score} {level}:\n{result.stdout}"
