import pytest

from farm.exceptions import DeviceError
from farm.worker.device import available, open_device


def test_a_cpu_device_always_exists():
    kinds = {kind for _, _, kind in available()}
    assert "CPU" in kinds, "pocl-binary-distribution provides a CPU device"


def test_auto_prefers_a_gpu_and_falls_back_to_the_cpu():
    opened = open_device("auto")
    has_gpu = any(kind == "GPU" for _, _, kind in available())
    assert opened.kind == ("GPU" if has_gpu else "CPU")


def test_device_can_be_chosen_by_kind_or_name():
    cpu = open_device("cpu")
    assert cpu.kind == "CPU"
    assert open_device(cpu.name[:6]).name == cpu.name


def test_unknown_device_names_what_exists():
    with pytest.raises(DeviceError, match="FARM_DEVICE='no-such-device' matches no OpenCL device .found: "):
        open_device("no-such-device")
