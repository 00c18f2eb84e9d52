"""The real kernel on the real device (PoCL's CPU device where there is no GPU)."""

import re
from pathlib import Path

import numpy as np
import pytest

import farm.worker.render
from farm.buckets import split
from farm.exceptions import KernelBuildError
from farm.protocol import tiles
from farm.scene import layout, parse_scene
from farm.scene.pack import pack
from farm.worker.render import Renderer, build_options, kernel_dir, shared_defines, spread_stride

# Every number the host and the kernel share, by its name in the kernel: its only home is Python.
SHARED = {**layout.KERNEL_CONSTANTS, **tiles.KERNEL_CONSTANTS}


@pytest.fixture(scope="module")
def cornell(device, cornell_document):
    document = dict(cornell_document, film={"width": 96, "height": 72, "spp": 16})
    return Renderer(device, pack(parse_scene(document)))


def test_cornell_box_is_plausible(device, cornell_document):
    document = dict(cornell_document, film={"width": 72, "height": 72, "spp": 16})
    image = Renderer(device, pack(parse_scene(document))).render_frame()
    assert image.shape == (72, 72, 3) and image.dtype == np.float32
    assert np.isfinite(image).all() and (image >= 0).all()
    assert image.mean() > 0.05  # lit, not black
    width = image.shape[1]
    band = image[20:52]  # middle rows: walls, not floor or ceiling
    left, right = band[:, 2:10].mean(axis=(0, 1)), band[:, width - 10 : width - 2].mean(axis=(0, 1))
    assert left[0] > 2 * left[1] and left[0] > 2 * left[2], f"left wall not red: {left}"
    assert right[1] > 1.5 * right[0] and right[1] > 1.5 * right[2], f"right wall not green: {right}"
    light = image[6:14, 28:44].max(axis=(0, 1))
    assert (light > 1.0).all(), "the ceiling light is visible and bright"


@pytest.mark.parametrize("size", [1, 7, 16, 33])
def test_buckets_equal_the_whole_frame_bit_for_bit(cornell, size):
    whole = cornell.render_frame()
    tiled = np.full_like(whole, np.nan)
    for b in split(96, 72, size if size > 1 else 96):
        if size == 1 and b.index > 0:
            break
        tiled[b.y : b.y + b.height, b.x : b.x + b.width] = cornell.render(b.x, b.y, b.width, b.height)
    if size == 1:  # single pixels scattered over the frame
        for x, y in [(0, 0), (95, 71), (48, 3), (13, 60)]:
            assert np.array_equal(cornell.render(x, y, 1, 1)[0, 0], whole[y, x])
        return
    assert np.array_equal(tiled, whole)


def test_renders_repeat_exactly_and_the_seed_changes_them(device, cornell_document):
    def render(seed):
        document = dict(cornell_document, film={"width": 32, "height": 24, "spp": 4}, seed=seed)
        return Renderer(device, pack(parse_scene(document))).render_frame()

    a, b, c = render(1), render(1), render(2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert abs(a.mean() - c.mean()) < 0.1 * a.mean()  # same picture, other noise


def test_max_depth_one_shows_only_the_light(device, cornell_document):
    document = dict(cornell_document, film={"width": 48, "height": 36, "spp": 2}, max_depth=1)
    image = Renderer(device, pack(parse_scene(document))).render_frame()
    lit = image.max(axis=2) > 0
    assert 0 < lit.sum() < 0.05 * lit.size
    emission = np.array([17, 12, 4], np.float32)
    assert np.allclose(image[lit].max(axis=0), emission)
    coverage = image[lit] / emission  # edge pixels average light and darkness
    assert np.allclose(coverage, coverage[:, :1], rtol=1e-5)


def test_more_samples_mean_less_noise(device, cornell_document):
    def render(spp, seed):
        document = dict(cornell_document, film={"width": 32, "height": 32, "spp": spp}, seed=seed)
        return Renderer(device, pack(parse_scene(document))).render_frame()

    def noise(spp):  # two independent estimates differ only by noise
        return float((render(spp, 1) - render(spp, 2)).std())

    # 16x the samples: a quarter of the noise in theory; half leaves a wide margin
    assert noise(64) < 0.5 * noise(4)


def test_bucket_outside_the_frame_is_refused(cornell):
    with pytest.raises(ValueError, match="outside"):
        cornell.render(90, 0, 16, 16)


@pytest.mark.parametrize("name", ["cornell-box", "showcase", "textured-mesh", "depth-of-field", "gltf-example",
                                  "reference/materials", "reference/principled"])
def test_every_bundled_scene_renders_finite_non_negative_pixels(device, name):
    from farm.protocol.assets import FolderAssets
    from farm.scene.load import load_scene
    from tests.files import ROOT

    path = ROOT / "scenes" / f"{name}.json"
    scene, document = load_scene(path, spp=4)
    document["film"].update(width=40, height=24)
    scene = parse_scene(document, source=str(path))
    image = Renderer(device, pack(scene, FolderAssets(path.parent, scene.assets))).render_frame()
    assert np.isfinite(image).all() and (image >= 0).all() and image.mean() > 0.01


def test_scene_of_only_degenerate_triangles_shows_the_environment(device):
    document = {
        "version": 1, "camera": {"position": [0, 0, 5], "look_at": [0, 0, 0], "fov": 40},
        "film": {"width": 8, "height": 8, "spp": 2}, "materials": {"m": {}},
        "shapes": [{"type": "mesh", "material": "m", "vertices": [[0, 0, 0], [1, 0, 0], [2, 0, 0]],
                    "triangles": [[0, 1, 2]]}],
        "lights": [{"type": "environment", "radiance": [0.25, 0.5, 1]}],
    }
    packed = pack(parse_scene(document))
    assert len(packed.triangles) == 0
    assert np.allclose(Renderer(device, packed).render_frame(), [0.25, 0.5, 1])


def test_passes_change_no_bit_and_stop_between_passes(cornell, monkeypatch):
    whole = cornell.render(8, 8, 24, 16)
    monkeypatch.setattr("farm.defaults.PASS_SECONDS", 1e-9)  # one sample per pass
    asked = []

    def keep_going():
        asked.append(1)
        return False

    assert np.array_equal(cornell.render(8, 8, 24, 16, should_stop=keep_going), whole)
    assert len(asked) == 15, "one pass per sample, asked between them"
    assert cornell.render(8, 8, 24, 16, should_stop=lambda: True) is None


@pytest.mark.parametrize("count", [1, 2, 3, 64, 96 * 72, 4096, 1000003])
def test_spread_stride_renders_every_pixel_once(count):
    stride = spread_stride(count)
    assert 1 <= stride <= max(1, count - 1)
    assert len(np.unique((np.arange(count, dtype=np.int64) * stride) % count)) == count
    if count >= 64:  # the first half of the work items covers both halves of the bucket
        first = (np.arange(count // 2, dtype=np.int64) * stride) % count
        assert 0.4 < (first < count // 2).mean() < 0.6


def test_the_order_of_pixels_in_a_launch_changes_no_bit(cornell, monkeypatch):
    """Work items walk the bucket in a spread order on CPUs and row by row on GPUs."""
    spread = cornell.render(8, 4, 40, 24)
    monkeypatch.setattr("farm.worker.render.spread_stride", lambda count: 1)
    assert np.array_equal(cornell.render(8, 4, 40, 24), spread)
    monkeypatch.setattr("farm.defaults.LOCAL_SIZE", 64)  # another work-group size, too
    assert np.array_equal(cornell.render(8, 4, 40, 24), spread)


def test_device_specific_builds_give_the_same_bits(device, cornell, monkeypatch):
    """On PoCL the kernel uses clang's builtins for sqrt, floor, fabs, ... (kernels/builtins.h)
    and on CPUs follows 16 paths at once in vector lanes (kernels/lanes.h); a GPU driver gets
    neither (one path a work item). The program built without them, here, must render the
    same bits."""
    import pyopencl as cl

    tuned = cornell.render(0, 0, 48, 36)
    lanes = farm.worker.render.cpu_lanes(device)
    assert lanes in (1, 8, 16)
    assert {"-DFARM_CLANG_BUILTINS", f"-DLANES={lanes}"} - {"-DLANES=1"} <= set(farm.worker.render.device_defines(device))
    monkeypatch.setattr(farm.worker.render, "device_defines", lambda device: [])
    monkeypatch.setattr(farm.worker.render, "_programs", {})
    portable = Renderer(device, cornell.scene)
    options = portable.program.get_build_info(device.device, cl.program_build_info.OPTIONS)
    assert "FARM_CLANG_BUILTINS" not in options and "LANES" not in options and portable.lanes == 1
    assert np.array_equal(portable.render(0, 0, 48, 36), tuned)


def test_every_struct_field_is_checked_against_the_kernel(device):
    """types.h agrees with pack.py's dtypes field by field: names, offsets and sizes."""
    from farm.scene.layout import MATERIAL
    from farm.worker.render import STRUCTS, _check_struct_layout, _fields, struct_layout_source

    _, expected = struct_layout_source()
    assert len(expected) == sum(len(list(_fields(dtype))) + 1 for dtype in STRUCTS)
    assert ("Material", "emission.texture", MATERIAL.fields["emission"][1] + 16) in expected  # nested structs too
    _check_struct_layout(device, farm.worker.render.build_options(device))


def _swapped(dtype: np.dtype, first: str, second: str) -> np.dtype:
    names = [second if n == first else first if n == second else n for n in dtype.names]
    return np.dtype([(n, dtype.fields[o][0]) for n, o in zip(names, dtype.names)])


@pytest.mark.parametrize("change, message", [
    (lambda frame: _swapped(frame, "right", "up"), "field up of struct Frame is at byte 48 on .* but 32 on the host"),
    (lambda frame: np.dtype([("rigth" if n == "right" else n, frame.fields[n][0]) for n in frame.names]),
     "do not match kernels/types.h"),
    (lambda frame: np.dtype({"names": frame.names, "formats": [frame.fields[n][0] for n in frame.names],
                             "offsets": [frame.fields[n][1] for n in frame.names], "itemsize": frame.itemsize + 16}),
     "struct Frame is \\d+ bytes on .* but \\d+ on the host"),
])
def test_a_dtype_that_differs_from_its_struct_is_refused(device, monkeypatch, change, message):
    from farm.scene.layout import FRAME

    structs = tuple(change(FRAME) if dtype is FRAME else dtype for dtype in farm.worker.render.STRUCTS)
    monkeypatch.setattr(farm.worker.render, "STRUCTS", structs)
    with pytest.raises(KernelBuildError, match=message):
        farm.worker.render._check_struct_layout(device, farm.worker.render.build_options(device))


def test_the_scene_and_the_tile_give_the_kernel_different_names():
    assert set(layout.KERNEL_CONSTANTS).isdisjoint(tiles.KERNEL_CONSTANTS)
    assert all(type(value) in (int, float) for value in SHARED.values())


@pytest.mark.parametrize("aovs", [False, True])
def test_the_kernel_sees_every_shared_constant_as_the_host_has_it(device, aovs):
    """Each shared number read back from a kernel built on pathtrace.cl with the program's own
    options, so a copy in any file the program includes would show: an int as the int, a
    float as the float32 nearest the host's; and the sums' channels are the variant's."""
    import pyopencl as cl

    int_names = [name for name, value in SHARED.items() if isinstance(value, int)] + ["PIXEL_CHANNELS"]
    float_names = [name for name, value in SHARED.items() if isinstance(value, float)]
    lines = [f"    ints[{i}] = {name};" for i, name in enumerate(int_names)]
    lines += [f"    floats[{i}] = {name};" for i, name in enumerate(float_names)]
    source = ('#include "pathtrace.cl"\n__kernel void shared_constants(__global int *ints, __global float *floats) {\n'
              + "\n".join(lines) + "\n}\n")
    program = farm.worker.render._build(device, source, build_options(device, aovs=aovs), "the probe does not build")
    ints, floats = np.zeros(len(int_names), np.int32), np.zeros(len(float_names), np.float32)
    buffers = [cl.Buffer(device.context, cl.mem_flags.WRITE_ONLY, out.nbytes) for out in (ints, floats)]
    program.shared_constants(device.queue, (1,), None, *buffers)
    for out, buffer in zip((ints, floats), buffers):
        cl.enqueue_copy(device.queue, out, buffer)

    expected = {name: SHARED[name] for name in int_names[:-1]}
    expected["PIXEL_CHANNELS"] = tiles.AOV_CHANNELS if aovs else tiles.CHANNELS
    expected.update({name: float(np.float32(SHARED[name])) for name in float_names})
    seen = dict(zip(int_names + float_names, ints.tolist() + floats.tolist()))
    wrong = {name: f"kernel {seen[name]!r}, host {value!r}" for name, value in expected.items() if seen[name] != value}
    assert wrong == {}
    assert {"SUM_SCALE", "SAMPLE_MAX", "ALPHA_MIN", "LUMINANCE_R"} <= set(float_names)


def _kernel_sources() -> dict[str, str]:
    """Every OpenCL source of the program, comments removed."""
    sources = {}
    for path in sorted(Path(kernel_dir()).iterdir()):
        if path.suffix in (".cl", ".h"):
            sources[path.name] = re.sub(r"/\*.*?\*/|//[^\n]*", " ", path.read_text(), flags=re.S)
    return sources


def test_no_kernel_source_keeps_a_copy_of_a_shared_constant():
    """A #define of its own, behind an #ifndef or not, would let the kernel and the host
    disagree again; and a build without the host's value must stop at a guard naming where
    it comes from, not compile an `#if` that reads it as 0."""
    sources = _kernel_sources()
    assert "pathtrace.cl" in sources and "types.h" in sources
    for name in SHARED:
        defining = [file for file, text in sources.items() if re.search(rf"^\s*#\s*define\s+{name}\b", text, re.M)]
        assert defining == [], f"{name} is #defined in {', '.join(defining)}: its value comes from the host"
        guarded = [file for file, text in sources.items() if re.search(rf"(#\s*ifndef\s+|defined\s*\(\s*){name}\b", text)]
        assert guarded, f"no kernel source refuses to build without {name}"


def test_a_program_built_without_the_shared_constants_says_where_they_come_from(device):
    source = Path(kernel_dir(), farm.worker.render.KERNEL_FILE).read_text()
    options = [option for option in build_options(device) if option not in shared_defines()]
    with pytest.raises(KernelBuildError) as failure:
        farm.worker.render._build(device, source, options, "no shared constants")
    assert re.search(r"comes? from the host \(farm/(scene/layout|protocol/tiles)\.py", failure.value.log), failure.value.log


def test_shared_floats_are_written_as_float_literals():
    assert farm.worker.render.c_literal(float(tiles.SUM_SCALE)) == "16777216.0f"
    assert farm.worker.render.c_literal(layout.ALPHA_MIN) == "0.001f"
    assert farm.worker.render.c_literal(layout.STACK_SIZE) == "128"
    assert "-DSUM_SCALE=16777216.0f" in shared_defines() and "-DMATERIAL_PRINCIPLED=4" in shared_defines()
