"""PoCL on a processor its LLVM does not know, or knows without its widest vectors.

The CPU device of the pyopencl wheels is PoCL 3.0 with LLVM 14. PoCL compiles for the
processor LLVM names (llvm::sys::getHostCPUName); LLVM 14 names no AMD processor after
Zen 4 (family 0x19) and answers "generic", which its own compiler then refuses ("error:
unknown target CPU 'generic'"): every kernel, even an empty one, fails to build, and a
worker takes no buckets. Later PoCL releases read the name from POCL_LLVM_CPU_NAME
(pocl/pocl, lib/CL/pocl_llvm_utils.cc); this one has no setting, so farm names the
processor itself, in the device's own record, before the first build: the field that
holds "generic" beside the target triple, found by its contents, in this process's memory.

The name is one LLVM 14 knows with no instruction the processor lacks: a processor with
AVX-512 builds for "x86-64-v4" (AVX-512's F, BW, CD, DQ and VL); AMD's newer processors
without it for "znver3", what the same LLVM names Zen 4; others for the x86-64 level their
flags reach. AVX-512 gives the same bits (no contraction, no fast math: the kernel's code
asks for IEEE operations, whatever the vectors) and, measured on a Zen 5 EPYC, 3-6% more
samples/s than znver3's AVX2 code (Cornell box and showcase; the 1M mesh 0.5-3%).

LLVM 14 knows a Zen 4 (family 0x19 too) and names it znver3, without the AVX-512 it has:
there farm gives the same field "x86-64-v4" as well, for 16 paths in a work item's lanes
instead of 8 (farm.worker.render.cpu_lanes). Measured on a Zen 4 EPYC, 256x256, best of 3,
alternating, two rounds: the Cornell box 5.08-5.11 against 4.53-4.54 M samples/s, the showcase
7.46-7.48 against 6.99-7.13, the 1M mesh 1.29-1.30 against 1.11-1.20; the same bits.
"""

from __future__ import annotations

import ctypes
import logging
import struct

log = logging.getLogger(__name__)

PLATFORM = "Portable Computing Language"
TRIPLE = b"x86_64-unknown-linux-gnu"
UNKNOWN = b"generic"
# Bytes of the device's record searched for the two fields (pocl's struct _cl_device_id:
# they lie about 640 bytes in, in PoCL 3.0).
RECORD_BYTES = 4096

AVX512 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}  # x86-64-v4's AVX-512 subsets
# LLVM 14's x86 processors whose code has AVX-512's 512-bit registers (llvm/lib/Support/X86TargetParser.cpp).
AVX512_PROCESSORS = {"x86-64-v4", "knl", "knm", "skylake-avx512", "skx", "cascadelake", "cooperlake", "cannonlake",
                     "icelake-client", "icelake-server", "rocketlake", "tigerlake", "sapphirerapids"}
# Farm's own names for a processor without AVX (processor_name), whose code has 128-bit registers only.
WITHOUT_AVX = {"x86-64", "x86-64-v2"}

_named: dict[int, str] = {}  # device (cl_device_id) -> the processor name farm gave it
_avx512 = True  # whether farm lets PoCL build AVX-512's code where the processor has it (without_avx512)


def without_avx512() -> None:
    """Build for this processor as if it had no AVX-512: AVX2's code and 8 lanes, where the
    processor has both. For `farm bench --avx2`, an AVX2 machine's figures estimated on an
    AVX-512 one; call it before the device opens (farm names the processor then)."""
    global _avx512
    _avx512 = False


def llvm_name(device) -> str | None:
    """The processor PoCL's LLVM named for `device` (a pyopencl Device), as its version ends:
    "HSTR: pthread-<arch>-<vendor>-<os>-<env>-<cpu>" (the cpu may hold a dash); None for
    another platform or a version not so made. Farm's own name does not change it."""
    if device.platform.name.strip() != PLATFORM or "HSTR:" not in device.version:
        return None
    host = device.version.split("HSTR:")[-1].split()
    return host[0].split("-", 5)[-1] if host and host[0].count("-") >= 5 else None


def replaced_name(device) -> str | None:
    """The name PoCL's CPU `device` builds for where farm gives it another: "generic" (LLVM
    does not know the processor), a name whose code lacks the AVX-512 the processor has
    (LLVM 14 names a Zen 4 znver3), or, after without_avx512, one whose code has AVX-512;
    None where it is left as it is."""
    name = llvm_name(device)
    if name == UNKNOWN.decode():
        return name
    if name and name not in AVX512_PROCESSORS and AVX512 <= set(_cpuinfo().get("flags", "").split()):
        return name
    if name in AVX512_PROCESSORS and not _avx512:
        return name
    return None


def name_processor(device) -> str | None:
    """Give PoCL's CPU `device` a processor name its compiler knows and whose code has the
    processor's widest vectors, where LLVM named none or one without them (replaced_name);
    the name given, or None where nothing was changed (a known processor, not PoCL, or a
    record not as expected: then an unknown processor's build fails and says why, as
    before, and a known one's builds for what LLVM named)."""
    if device.int_ptr in _named:
        return _named[device.int_ptr]
    replaced = replaced_name(device)
    if replaced is None:
        return None
    slot = _cpu_field(device.int_ptr, replaced.encode())
    if slot is None:
        if replaced == UNKNOWN.decode():
            log.warning("PoCL builds for an unknown processor ('generic') and its record is not as farm knows it: "
                        "kernels will not build; a newer PoCL or a known processor is needed")
        return None
    name = this_processor()
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    text = name.encode() + b"\0"
    copy = libc.malloc(len(text))  # PoCL's own was malloc'd: the record may free it
    if not copy:
        return None
    ctypes.memmove(copy, text, len(text))
    ctypes.c_uint64.from_address(slot).value = copy
    _named[device.int_ptr] = name
    log.info("PoCL's LLVM names this processor %s: building for %s", replaced, name)
    return name


def target_processor(device) -> str | None:
    """The processor PoCL's CPU `device` builds for: the name farm gave it, else LLVM's."""
    return _named.get(device.int_ptr) or llvm_name(device)


def vector_bits(device) -> int:
    """The widest vector registers in the code PoCL's CPU `device` builds (512 with AVX-512,
    256 with AVX2, else 128): what the processor has is not enough, LLVM 14 builds a Zen 4's
    code for znver3, AVX2's. Unknown where PoCL does not say what it builds for: 128."""
    name = target_processor(device)
    if name is None or name == UNKNOWN.decode() or name in WITHOUT_AVX:
        return 128
    if name in AVX512_PROCESSORS:
        return 512
    # Any other name LLVM 14 knows, or farm gave (x86-64-v3, znver3): AVX2's code where the processor has it.
    return 256 if "avx2" in _cpuinfo().get("flags", "").split() else 128


def lanes(device) -> int:
    """Paths a work item of PoCL's CPU `device` follows at once (kernels/lanes.h): as many
    as the vector registers of its code hold, 16 with AVX-512, 8 with AVX2, else one
    (farm.worker.render.cpu_lanes says why)."""
    bits = vector_bits(device)
    return 16 if bits >= 512 else 8 if bits >= 256 else 1


def this_processor() -> str:
    """The LLVM 14 name farm gives this processor (processor_name of its /proc/cpuinfo)."""
    return processor_name(_cpuinfo())


def processor_name(cpuinfo: dict[str, str]) -> str:
    """An LLVM 14 processor name for the processor /proc/cpuinfo describes (`_cpuinfo`)."""
    flags = set(cpuinfo.get("flags", "").split())
    try:
        family = int(cpuinfo.get("cpu family", "0"))
    except ValueError:
        family = 0
    if AVX512 <= flags:
        return "x86-64-v4"
    if cpuinfo.get("vendor_id") == "AuthenticAMD" and family >= 0x19 and {"avx2", "fma", "vaes"} <= flags:
        return "znver3"
    if {"avx2", "fma", "bmi1", "bmi2", "movbe", "f16c"} <= flags:
        return "x86-64-v3"
    if {"sse4_2", "popcnt", "ssse3", "cx16"} <= flags:
        return "x86-64-v2"
    return "x86-64"


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo, without AVX-512's flags after
    without_avx512; empty where there is none."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    if not _avx512 and "flags" in fields:
        fields["flags"] = " ".join(flag for flag in fields["flags"].split() if not flag.startswith("avx512"))
    return fields


def _cpu_field(record: int, current: bytes = UNKNOWN) -> int | None:
    """The address of the device record's processor-name field: the one pointer to `current`
    (the name it holds) right after a pointer to the target triple, in its first
    RECORD_BYTES; None unless exactly one such pair is there. Only memory this process maps
    readable is read."""
    spans = _readable()

    def readable(address: int, size: int) -> bool:
        return any(start <= address and address + size <= end for start, end in spans)

    def text_at(address: int, size: int) -> bytes:
        return ctypes.string_at(address, size) if address and readable(address, size) else b""

    raw = text_at(record, RECORD_BYTES)
    if not raw:
        return None
    pointers = struct.unpack(f"<{RECORD_BYTES // 8}Q", raw)
    found = [index for index in range(1, len(pointers))
             if text_at(pointers[index - 1], len(TRIPLE) + 1) == TRIPLE + b"\0"
             and text_at(pointers[index], len(current) + 1) == current + b"\0"]
    return record + 8 * found[0] if len(found) == 1 else None


def _readable() -> list[tuple[int, int]]:
    spans = []
    try:
        with open("/proc/self/maps", encoding="ascii") as maps:
            for line in maps:
                addresses, permissions = line.split()[:2]
                if permissions.startswith("r"):
                    start, end = (int(part, 16) for part in addresses.split("-"))
                    spans.append((start, end))
    except OSError:
        pass
    return spans
