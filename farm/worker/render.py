"""Render buckets of one packed scene on one OpenCL device. Knows nothing of Celery.

The program is built once per process and device; a scene's buffers are uploaded once
per Renderer; each bucket is one kernel launch with a fixed work-group shape, so a pixel
runs the same code whatever the bucket size.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections import OrderedDict

import numpy as np

from farm import defaults
from farm.exceptions import KernelBuildError
from farm.buckets import Bucket
from farm.protocol import identity, tiles
from farm.protocol.identity import KERNEL_FILE, kernel_dir
from farm.protocol.plans import Plan
from farm.protocol.tiles import AOV_CHANNELS, CHANNELS, MAX_SAMPLES, mean_of
from farm.scene import layout
from farm.scene.layout import (
    FRAME, INSTANCE, LIGHT, MATERIAL, MOTION, NODE, SHADING_NORMALS, SPHERE, TEXTURE, TRIANGLE_DATA, TRIANGLE_PACK,
)
from farm.scene.pack import PackedScene
from farm.worker.device import OCLGRIND, Device

log = logging.getLogger(__name__)

POCL_PLATFORM = "Portable Computing Language"  # its compiler is clang, whose builtins it inlines
STRUCTS = (NODE, INSTANCE, MOTION, TRIANGLE_PACK, TRIANGLE_DATA, SHADING_NORMALS, SPHERE, MATERIAL, TEXTURE, LIGHT, FRAME)
STRUCT_NAMES = (
    "Node", "Instance", "Motion", "TrianglePack", "TriangleData", "ShadingNormals", "Sphere", "Material", "Texture", "Light",
    "Frame",
)
# Device buffers of arrays that later scenes share (a shot's bottom levels, farm.scene.instances),
# by context and array: a later frame uploads only what changed. The array is kept with its
# buffer, so its id is not reused while the entry lives.
SHARED_BUFFERS = 10  # the five shared arrays of the two scenes a library keeps (farm.worker.scenes)
_shared: OrderedDict[tuple[int, int], tuple[np.ndarray, object]] = OrderedDict()

_programs: dict[tuple, object] = {}


def kernel_identity(device: Device) -> str:
    """Which kernel a worker runs on `device` (farm.protocol.identity.kernel_identity): two
    workers of one identity render the same bits."""
    return identity.kernel_identity(identity.sources_digest(), build_options(device), device.platform, device.kind)


def shared_defines() -> list[str]:
    """The numbers the host and the kernel must agree on, as -D build options: the scene's
    enumerations and limits (farm.scene.layout) and the tile's channels and fixed point
    (farm.protocol.tiles). kernels/ keeps no copy, and refuses to build without them."""
    constants = {**layout.KERNEL_CONSTANTS, **tiles.KERNEL_CONSTANTS}
    return [f"-D{name}={c_literal(value)}" for name, value in constants.items()]


def c_literal(value: int | float) -> str:
    """An int as itself; a float as Python's shortest decimal for it with C's f suffix, so
    the kernel reads the float32 nearest it (16777216.0f, 0.001f)."""
    if isinstance(value, float):
        return f"{value!r}f"
    return str(int(value))


def device_defines(device: Device) -> list[str]:
    """Build options that change how the kernel computes on this device, never a bit of what:
    clang's builtins on PoCL (kernels/builtins.h), paths in lanes on CPUs (kernels/lanes.h)."""
    defines = []
    if device.platform == POCL_PLATFORM:
        defines.append("-DFARM_CLANG_BUILTINS")
    if device.kind == "CPU":  # paths side by side in a work item's vector lanes (kernels/lanes.h)
        lanes = cpu_lanes(device)
        if lanes > 1:
            defines.append(f"-DLANES={lanes}")
    return defines


# Paths a work item follows at once on a CPU (kernels/lanes.h), whose OpenCL compilers do not
# vectorise across work items; a GPU's work items are its lanes (one path each). 16 fills
# AVX-512: on this project's Zen 5 (256x256, 64 spp), 8 lanes gave the Cornell box 4.61-4.63
# M samples/s against 4.80-4.89 at 16, the showcase alike.
CPU_LANES = 16


def cpu_lanes(device: Device) -> int:
    """Paths a work item of this CPU device follows at once. On PoCL, as many as the vector
    registers of the code it builds hold: 16 with AVX-512, 8 with AVX2, one without. LLVM 14
    cannot build 16 lanes in AVX2's code (measured on a Zen 4, built for znver3: the
    intrinsics' 512-bit arguments are passed in memory, "Intrinsic has incorrect argument
    type"; with the lanes' sqrt written lane by lane instead, its code generator crashes). A
    processor with AVX-512 gets AVX-512's code (farm.worker.pocl, a Zen 4 too, which LLVM 14
    builds for znver3: 16 lanes there are 1.07-1.16x 8). Other CPU platforms: CPU_LANES."""
    if device.platform != POCL_PLATFORM:
        return CPU_LANES
    from farm.worker import pocl

    return pocl.lanes(device.device)


# The block of pixels a work item renders, by its lanes: kernels/lanes.h's BLOCK_W x BLOCK_H.
BLOCKS = {1: (1, 1), 8: (4, 2), 16: (4, 4)}


def build_program(device: Device, cut_outs: bool = False, aovs: bool = False, instances: bool = False,
                  motion: bool = False):
    """Build (or fetch from this process's cache) the path tracing program for `device`;
    with `cut_outs`, the variant whose rays test alpha coverage (FARM_CUT_OUTS), which
    scenes without cut-out materials do not pay for (a uniform branch still costs PoCL's
    vectorised work groups, measured 3-4% on the Cornell box); with `aovs`, the variant
    that also writes the AOVs (FARM_AOVS), which changes no bit of the radiance; with
    `instances`, the two-level walk of scenes with instances (FARM_INSTANCES); with `motion`,
    the variant whose samples have times in an open shutter (FARM_MOTION)."""
    key = (id(device.context), cut_outs, aovs, instances, motion)
    if key in _programs:
        return _programs[key]
    with open(f"{kernel_dir()}/{KERNEL_FILE}", encoding="utf-8") as source_file:
        source = source_file.read()
    options = build_options(device, cut_outs, aovs, instances, motion)
    started = time.perf_counter()
    program = _build(device, source, options, f"OpenCL program failed to build on {device.name}")
    _check_struct_layout(device, options)
    variant = (" with alpha cut-outs" * cut_outs + " with AOVs" * aovs + " with instances" * instances
               + " with motion blur" * motion)
    log.info("built %s%s for %s in %.2fs", KERNEL_FILE, variant, device.name, time.perf_counter() - started)
    _programs[key] = program
    return program


def build_options(device: Device, cut_outs: bool = False, aovs: bool = False, instances: bool = False,
                  motion: bool = False) -> list[str]:
    """The options build_program builds the program of `device` and that variant with."""
    import pyopencl as cl

    options = ["-I", kernel_dir(), "-cl-std=CL1.2"]
    if device.platform == OCLGRIND:
        # Oclgrind interprets the IR and knows no llvm.bitreverse, which clang's optimiser
        # makes of reverse_bits_v (sampler.h); the unoptimised IR is also what its checks read
        # closest to the source. No bit changes: nothing is fast-math, FP_CONTRACT is off.
        options.append("-cl-opt-disable")
    if device.device.single_fp_config & cl.device_fp_config.CORRECTLY_ROUNDED_DIVIDE_SQRT:
        options.append("-cl-fp32-correctly-rounded-divide-sqrt")
    options += shared_defines() + device_defines(device)
    if cut_outs:
        options.append("-DFARM_CUT_OUTS")
    if aovs:
        options.append("-DFARM_AOVS")
    if instances:
        options.append("-DFARM_INSTANCES")
    if motion:
        options.append("-DFARM_MOTION")
    return options


def _build(device: Device, source: str, options: list[str], failure: str):
    """The program of `source` built for `device`, or KernelBuildError(`failure`) carrying
    the compiler's own messages."""
    import pyopencl as cl

    program = cl.Program(device.context, source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cl.CompilerWarning)
            program.build(options=options)
    except cl.RuntimeError as exc:
        try:  # the compiler's own messages, not just pyopencl's summary
            build_log = program.get_build_info(device.device, cl.program_build_info.LOG)
        except cl.Error:
            build_log = str(exc)
        raise KernelBuildError(failure, str(build_log)) from None
    return program


def struct_layout_source() -> tuple[str, list[tuple[str, str, int]]]:
    """OpenCL C that writes the offset of every field of every shared struct, then its size,
    and what the host's dtypes say each should be, in the same order. A field the C struct
    lacks fails the build; one at another offset (say two float4s swapped) or another size
    fails the comparison. pyopencl's match_dtype_to_c_struct does the same, for structs it
    writes itself."""
    lines, expected = [], []
    for name, dtype in zip(STRUCT_NAMES, STRUCTS):
        lines.append(f"    {{ {name} s; __private char *base = (__private char *)&s;")
        for path, offset in _fields(dtype):
            lines.append(f"      out[{len(expected)}] = (int)((__private char *)&s.{path} - base);")
            expected.append((name, path, offset))
        lines.append(f"      out[{len(expected)}] = (int)sizeof({name}); }}")
        expected.append((name, "", dtype.itemsize))
    source = '#include "types.h"\n__kernel void struct_layout(__global int *out) {\n' + "\n".join(lines) + "\n}\n"
    return source, expected


def _fields(dtype: np.dtype, prefix: str = "", base: int = 0):
    """(C member path, byte offset) of every leaf field of a structured dtype."""
    for name in dtype.names:
        field_dtype, offset = dtype.fields[name][:2]
        if field_dtype.names:
            yield from _fields(field_dtype, f"{prefix}{name}.", base + offset)
        else:
            yield f"{prefix}{name}", base + offset


def _check_struct_layout(device: Device, options: list[str]) -> None:
    """Refuse to run if a numpy dtype and its C struct in kernels/types.h disagree in any
    field's name or offset, or in size, on this device's compiler."""
    import pyopencl as cl

    source, expected = struct_layout_source()
    program = _build(device, source, options, f"the host's structs do not match kernels/types.h on {device.name} "
                                              "(a field missing or renamed)")
    out = np.zeros(len(expected), np.int32)
    buffer = cl.Buffer(device.context, cl.mem_flags.WRITE_ONLY, out.nbytes)
    program.struct_layout(device.queue, (1,), None, buffer)
    cl.enqueue_copy(device.queue, out, buffer)
    for (name, path, host), found in zip(expected, out):
        if host != found:
            what = f"field {path} of struct {name} is at byte {found}" if path else f"struct {name} is {found} bytes"
            raise KernelBuildError(f"{what} on {device.name} but {host} on the host (farm/scene/pack.py)")


def spread_stride(count: int) -> int:
    """The stride nearest count / golden ratio that is coprime with `count`: work item i
    renders pixel (i * stride) mod count, so consecutive work items land far apart (a
    rank-1 lattice) and every pixel is rendered exactly once."""
    stride = max(1, round(count * 0.6180339887498949))
    while math.gcd(stride, count) != 1:
        stride += 1
    return stride % count or 1


class Renderer:
    """One scene uploaded to one device, ready to render any bucket of its frame."""

    def __init__(self, device: Device, scene: PackedScene, aovs: bool = False):
        import pyopencl as cl

        self.device = device
        self.scene = scene
        cut_outs = len(scene.materials) > 0 and bool((scene.materials["ior"][:, 2] > 0).any())
        motion = bool(scene.frame["origin1"][0][3] > 0)  # an open shutter (farm.scene.motion)
        instances = len(scene.instances) > 0
        self.program = build_program(device, cut_outs, aovs, instances, motion)
        # the kernel's variant, by what it adds
        self.variant = tuple(name for name, on in (("aovs", aovs), ("cut-outs", cut_outs), ("instances", instances),
                                                   ("motion", motion)) if on)
        self.channels = AOV_CHANNELS if aovs else CHANNELS
        self.kernel = cl.Kernel(self.program, "render_bucket")
        # the paths a work item follows, as the program was built (kernels/lanes.h)
        self.lanes = next((int(option[len("-DLANES="):]) for option in device_defines(device)
                           if option.startswith("-DLANES=")), 1)
        flags = cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR

        def upload(name: str, array: np.ndarray):
            if len(array) == 0:  # OpenCL has no empty buffers; the kernel never reads this one
                array = np.zeros(1, array.dtype)
            if name not in scene.shared:
                return cl.Buffer(device.context, flags, hostbuf=array)
            key = (id(device.context), id(array))
            if key not in _shared:
                _shared[key] = (array, cl.Buffer(device.context, flags, hostbuf=array))
                while len(_shared) > SHARED_BUFFERS:
                    _shared.popitem(last=False)
            _shared.move_to_end(key)
            return _shared[key][1]

        self.buffers = {name: upload(name, array) for name, array in scene.buffers().items()}
        self._sums = None  # the tile's running sums, between passes
        self._out_size = 0
        # Seconds per sample per pixel of the last pass: sizes a bucket's first pass, so a
        # bucket that fits in PASS_SECONDS is one launch; the first bucket starts at 1 spp.
        self._pass_rate: float | None = None

    def render(self, x: int, y: int, width: int, height: int, should_stop=None,
               plan: Plan | None = None) -> np.ndarray | None:
        """Radiance of the pixels in [x, x+width) x [y, y+height), as (height, width, 3) float32
        means of all the frame's samples (with AOVs, (height, width, AOV_CHANNELS): see
        farm.protocol.tiles).

        With `plan`, only the samples it gives each pixel are taken, and the tile holds their
        int64 fixed-point sums (the client adds them to the frame's): a progressive round, a
        noise target's round. The sums are exact, so any split of a pixel's samples over
        calls, passes or machines adds up to the same bits, and mean_of them is the mean.

        With `should_stop` (a callable), the samples are taken in passes of about
        PASS_SECONDS and `should_stop()` is asked between passes; if it answers true the
        render ends there and None is returned.
        """
        import pyopencl as cl

        if width <= 0 or height <= 0 or x < 0 or y < 0 or x + width > self.scene.width or y + height > self.scene.height:
            raise ValueError(f"bucket {x},{y} {width}x{height} is outside the {self.scene.width}x{self.scene.height} frame")
        sums = np.empty((height, width, self.channels), np.int64)
        if self._out_size < sums.nbytes:
            self._sums = cl.Buffer(self.device.context, cl.mem_flags.READ_WRITE, sums.nbytes)
            self._out_size = sums.nbytes
        bucket_plan = plan or Plan.uniform(self.scene.width, self.scene.height, 0, self.scene.spp)
        ranges = bucket_plan.pixel_ranges(Bucket(0, x, y, width, height))
        busy = ranges[..., 1] > ranges[..., 0]
        first, last = (int(ranges[..., 0][busy].min()), int(ranges[..., 1][busy].max())) if busy.any() else (0, 0)
        if last > MAX_SAMPLES:
            raise ValueError(f"sample {last} is past the limit of {MAX_SAMPLES} samples per pixel")
        pixels = width * height
        gpu = self.device.kind == "GPU"
        block_width, block_height = BLOCKS[self.lanes]  # a work item's pixels (kernels/lanes.h)
        local_size = defaults.GPU_LOCAL_SIZE if gpu else max(1, defaults.LOCAL_SIZE // self.lanes)
        items = -(-width // block_width) * -(-height // block_height)
        global_size = -(-items // local_size) * local_size
        stride = 1 if gpu else spread_stride(items)
        cells_y, cells_x = bucket_plan.ranges.shape[:2]
        ranges_buffer = cl.Buffer(self.device.context, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR,
                                  hostbuf=np.ascontiguousarray(bucket_plan.ranges, np.int32))
        head = (np.int32(x), np.int32(y), np.int32(width), np.int32(height), np.int32(stride),
                np.int32(bucket_plan.cell), np.int32(cells_x), ranges_buffer)

        def pass_size() -> int:
            if should_stop is None:
                return max(1, last - first)
            if self._pass_rate is None:
                return 1
            return max(1, int(defaults.PASS_SECONDS / max(self._pass_rate * pixels, 1e-9)))

        done, pass_spp, accumulate = first, pass_size(), 0
        while True:  # one launch at least: it zeroes the sums of pixels without samples
            end = min(last, done + pass_spp)
            started = time.perf_counter()
            self.kernel.set_args(*self.buffers.values(), *head, np.int32(done), np.int32(end), np.int32(accumulate),
                                 self._sums)
            cl.enqueue_nd_range_kernel(self.device.queue, self.kernel, (global_size,), (local_size,))
            self.device.queue.finish()
            self._pass_rate = (time.perf_counter() - started) / (max(1, end - done) * pixels)
            done, accumulate = end, 1
            if done >= last:
                break
            if should_stop is not None:
                if should_stop():
                    return None
                pass_spp = pass_size()
        cl.enqueue_copy(self.device.queue, sums, self._sums)
        return sums if plan is not None else mean_of(sums, self.scene.spp)

    def trace(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit distance (inf for none) and primitive index (-1) of each ray."""
        import pyopencl as cl

        rays = np.ascontiguousarray(np.concatenate([origins, directions], axis=1), np.float32)
        count = len(rays)
        t_out = np.empty(count, np.float32)
        prim_out = np.empty(count, np.int32)
        mf = cl.mem_flags
        ray_buffer = cl.Buffer(self.device.context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=rays)
        t_buffer = cl.Buffer(self.device.context, mf.WRITE_ONLY, t_out.nbytes)
        prim_buffer = cl.Buffer(self.device.context, mf.WRITE_ONLY, prim_out.nbytes)
        b = self.buffers
        cl.Kernel(self.program, "trace_rays")(
            self.device.queue, (count,), None, b["frame"], b["top"], b["instances"], b["motions"], b["nodes"],
            b["packs"], b["triangle_data"], b["extras"],
            b["spheres"], b["materials"], b["textures"], b["texels"], ray_buffer, t_buffer, prim_buffer,
        )
        cl.enqueue_copy(self.device.queue, t_out, t_buffer)
        cl.enqueue_copy(self.device.queue, prim_out, prim_buffer)
        return t_out, prim_out

    def eval_bsdf(self, material: int, uv: tuple[float, float], wi: np.ndarray, wo: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """f(wi, wo) |cos wo| (n x 3) and the sampling density of wo (n) of material number
        `material` at `uv`, for directions in the local frame (z the shading normal)."""
        import pyopencl as cl

        pairs = np.ascontiguousarray(np.concatenate([wi, wo], axis=1), np.float32)
        out = np.empty((len(pairs), 6), np.float32)
        mf = cl.mem_flags
        pair_buffer = cl.Buffer(self.device.context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=pairs)
        out_buffer = cl.Buffer(self.device.context, mf.WRITE_ONLY, out.nbytes)
        b = self.buffers
        items = max(1, -(-len(pairs) // self.lanes))  # LANES pairs a work item
        cl.Kernel(self.program, "eval_bsdf")(self.device.queue, (items,), None, b["materials"], b["textures"], b["texels"],
                               np.int32(material), np.float32(uv[0]), np.float32(uv[1]), np.int32(len(pairs)),
                               pair_buffer, out_buffer)
        cl.enqueue_copy(self.device.queue, out, out_buffer)
        return out[:, :3], out[:, 3]

    def render_frame(self) -> np.ndarray:
        """The whole frame in one launch: the reference every bucketed render must equal."""
        return self.render(0, 0, self.scene.width, self.scene.height)
