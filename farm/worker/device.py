"""Choose and open the OpenCL device of this process: a GPU if there is one, else the CPU.

The context lives in the process that opened it. Workers open it after Celery forks its
pool children (never before a fork, never pickled); `current()` notices a fork and
opens a fresh one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from farm import defaults
from farm.exceptions import DeviceError

log = logging.getLogger(__name__)

CHOICES = ("auto", "gpu", "cpu")
# OpenCL platforms that simulate a device rather than render on one: Oclgrind (the tests'
# second implementation, farm.tools.exactness) calls itself a GPU. Opened only by name.
OCLGRIND = "Oclgrind"
SIMULATORS = (OCLGRIND,)


@dataclass
class Device:
    """An open OpenCL device with its context and in-order command queue."""

    context: object
    queue: object
    device: object
    name: str
    kind: str  # "GPU", "CPU" or "OTHER"
    platform: str

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.platform})"


def _kind(cl, device) -> str:
    if device.type & cl.device_type.GPU:
        return "GPU"
    if device.type & cl.device_type.CPU:
        return "CPU"
    return "OTHER"


def available() -> list[tuple[str, str, str]]:
    """(platform, device, kind) for every OpenCL device this process can see."""
    import pyopencl as cl

    found = []
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        return []
    for platform in platforms:
        try:
            devices = platform.get_devices()
        except cl.Error:
            continue
        found += [(platform.name.strip(), d.name.strip(), _kind(cl, d)) for d in devices]
    return found


def open_device(spec: str | None = None) -> Device:
    """Open the device `spec` names: auto, gpu, cpu, or a substring of 'platform device'."""
    import pyopencl as cl

    spec = (spec or defaults.DEVICE).strip()
    candidates = []
    try:
        platforms = cl.get_platforms()
    except cl.Error as exc:
        raise DeviceError(f"no OpenCL platform found ({exc}); install pocl-binary-distribution") from None
    for platform in platforms:
        try:
            devices = platform.get_devices()
        except cl.Error:
            continue
        candidates += [(platform, d) for d in devices if d.available]
    if not candidates:
        raise DeviceError("no OpenCL device found; install pocl-binary-distribution for a CPU device")

    lowered = spec.lower()
    everything = candidates
    if lowered in ("auto", "gpu", "cpu"):
        candidates = [c for c in candidates if c[0].name.strip() not in SIMULATORS]
        if not candidates:
            raise DeviceError(f"FARM_DEVICE={spec}: no OpenCL device but simulators ({', '.join(SIMULATORS)}), "
                              "which render only when named; install pocl-binary-distribution for a CPU device")
    if lowered == "auto":
        chosen = next((c for c in candidates if _kind(cl, c[1]) == "GPU"), None)
        chosen = chosen or next((c for c in candidates if _kind(cl, c[1]) == "CPU"), candidates[0])
    elif lowered in ("gpu", "cpu"):
        chosen = next((c for c in candidates if _kind(cl, c[1]) == lowered.upper()), None)
    else:
        chosen = next((c for c in candidates if lowered in f"{c[0].name} {c[1].name}".lower()), None)
    if chosen is None:
        names = "; ".join(f"{p.name.strip()}: {d.name.strip()}" + " (a simulator, opened only by name)"
                          * (p.name.strip() in SIMULATORS) for p, d in everything)
        raise DeviceError(f"FARM_DEVICE={spec!r} matches no OpenCL device (found: {names})")

    platform, device = chosen
    if _kind(cl, device) == "CPU":  # PoCL's LLVM may not know the processor (farm.worker.pocl)
        from farm.worker import pocl

        pocl.name_processor(device)
    context = cl.Context([device])
    queue = cl.CommandQueue(context)
    return Device(context, queue, device, device.name.strip(), _kind(cl, device), platform.name.strip())


_current: Device | None = None
_current_pid: int | None = None


def current() -> Device:
    """This process's device, opened on first use (and again after a fork)."""
    global _current, _current_pid
    if _current is None or _current_pid != os.getpid():
        _current = open_device()
        _current_pid = os.getpid()
        log.info("OpenCL device for pid %d: %s", _current_pid, _current)
    return _current


def describe(device: Device) -> str:
    """The device as a benchmark reports it: name, kind and platform, the native float
    vector width it reports, and on a CPU what the compiler builds for (PoCL's LLVM names
    the processor: an LLVM older than the CPU builds for an older one, without its widest
    vectors), the paths a work item follows at once (kernels/lanes.h) and the widest vectors
    the processor has."""
    import pyopencl as cl

    parts = [f"native float vector width {device.device.native_vector_width_float}"]
    if device.kind == "CPU":
        from farm.worker import pocl

        named = pocl.name_processor(device.device)
        target = pocl.target_processor(device.device)
        if target:
            parts.append(f"code for {target}" + (f" (named by farm: PoCL's LLVM named this processor "
                                                 f"{pocl.llvm_name(device.device)})" if named else ""))
        if device.platform == pocl.PLATFORM:
            parts.append(f"{pocl.lanes(device.device)} paths a work item")
        parts.append(f"processor: {_vector_extension()}")
    else:
        try:
            parts.append(f"driver {device.device.driver_version}, {device.device.max_compute_units} compute units")
        except cl.Error:
            pass
    return f"{device} ({'; '.join(parts)})"


def _vector_extension() -> str:
    """The widest vector extension this x86 processor has (from /proc/cpuinfo), or 'unknown'."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2")):
        if flag in flags:
            return name
    return "unknown"
