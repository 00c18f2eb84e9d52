"""The path tracer against closed forms and against itself, on the real kernel (PoCL).

Tolerances come from the samples: pixels are independent estimates, so a mean over n of
them is within a few standard errors (std / sqrt(n)) of its expectation, plus float32
rounding. A wrong estimator (a missing cosine, a pdf off by a factor) misses by far more.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from farm.protocol.assets import FolderAssets
from farm.scene import parse_scene
from farm.scene.load import load_scene
from farm.scene.pack import pack
from tests import frames, rays

SIGMAS = 5.0  # a false alarm once in ~3.5 million runs per check


def render(document, device, folder=None, aovs=False) -> np.ndarray:
    if folder is not None:
        path = folder / "scene.json"
        path.write_text(json.dumps(document))
        scene, _ = load_scene(path)
        image = frames.reference(device, scene, FolderAssets(folder, scene.assets), aovs)
    else:
        image = frames.reference(device, document, aovs=aovs)
    return image.astype(np.float64)


def assert_mean(values, expected, what=""):
    values = np.asarray(values, np.float64).ravel()
    error = abs(values.mean() - expected)
    bound = SIGMAS * values.std(ddof=1) / math.sqrt(len(values)) + 1e-4 * max(abs(expected), 1.0)
    assert error <= bound, f"{what}: mean {values.mean():.5f}, expected {expected:.5f} (bound {bound:.5f})"


def camera_rays(document):
    """Unit directions through each pixel's corners and centre, as the kernel builds them
    (looking down -z from +z with +y up, fov across y)."""
    film, camera = document["film"], document["camera"]
    width, height = film["width"], film["height"]
    tan_y = math.tan(math.radians(camera["fov"]) / 2)
    tan_x = tan_y * width / height

    def directions(fx, fy):  # fx, fy: pixel coordinates (0 = left / top edge)
        sx = 2 * fx / width - 1
        sy = 1 - 2 * fy / height
        d = np.stack([sx * tan_x, sy * tan_y, -np.ones_like(sx)], axis=-1)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return directions, xs, ys


def sphere_mask(document, radius=1.0, outside=False):
    """Pixels whose whole footprint sees the unit sphere at the origin (or, with
    `outside`, misses it)."""
    origin = np.array(document["camera"]["position"], np.float64)
    directions, xs, ys = camera_rays(document)
    corners = []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        d = directions(xs + dx, ys + dy)
        b = d @ origin
        corners.append(b * b - (origin @ origin - radius * radius) > 0)
    return ~np.any(corners, axis=0) if outside else np.all(corners, axis=0)


def furnace(material, spp=64, width=32, max_depth=32, **extra):
    document = {
        "version": 1,
        "camera": {"position": [0, 0, 4], "look_at": [0, 0, 0], "fov": 30},
        "film": {"width": width, "height": width, "spp": spp},
        "materials": {"m": material},
        "shapes": [{"type": "sphere", "material": "m"}],
        "lights": [{"type": "environment", "radiance": [1, 1, 1]}],
        "max_depth": max_depth,
    }
    document.update(extra)
    return document


@pytest.mark.parametrize("albedo", [1.0, 0.5])
def test_white_furnace_diffuse_sphere_reflects_its_albedo(device, albedo):
    document = furnace({"reflectance": albedo})
    image = render(document, device)
    mask = sphere_mask(document)
    assert mask.sum() > 300
    assert_mean(image[mask], albedo, f"diffuse albedo {albedo}")
    assert_mean(image[sphere_mask(document, outside=True)], 1.0, "background")


@pytest.mark.parametrize("roughness", [0.0, 0.3])
def test_white_furnace_glass_sphere_is_invisible(device, roughness):
    document = furnace({"type": "dielectric", "ior": 1.5, "roughness": roughness}, max_depth=64)
    image = render(document, device)
    mask = sphere_mask(document)
    if roughness == 0.0:
        assert_mean(image[mask], 1.0, "smooth glass")
    else:  # single-scattering microfacets lose a little energy, never create any
        assert image[mask].mean() <= 1.0 + SIGMAS * image[mask].std() / math.sqrt(mask.sum())
        assert image[mask].mean() > 0.9


@pytest.mark.parametrize("roughness", [0.0, 0.5])
def test_glass_between_equal_indices_only_tints(device, roughness):
    # ior 1 is legal in glTF (KHR_materials_ior): light goes straight through, tinted on
    # the way in and on the way out, however rough the surface says it is
    document = furnace({"type": "dielectric", "ior": 1.0, "roughness": roughness, "transmittance": 0.5},
                       max_depth=64)
    image = render(document, device)
    assert_mean(image[sphere_mask(document)], 0.25, "glass of ior 1")


def ggx_albedo(mu: float, alpha: float, n: int = 400) -> float:
    """Directional albedo of a white GGX conductor (Fresnel 1, separable Smith masking) at
    view cosine mu, by quadrature over the outgoing hemisphere: what the kernel should get."""
    theta = (np.arange(n) + 0.5) / n * (np.pi / 2)
    phi = (np.arange(2 * n) + 0.5) / (2 * n) * (2 * np.pi)
    theta, phi = np.meshgrid(theta, phi, indexing="ij")
    wo = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    wi = np.array([math.sqrt(1 - mu * mu), 0.0, mu])
    h = wi + wo
    h /= np.linalg.norm(h, axis=-1, keepdims=True)
    a2 = alpha * alpha
    d = 1 / (np.pi * a2 * ((h[..., 0] ** 2 + h[..., 1] ** 2) / a2 + h[..., 2] ** 2) ** 2)

    def g1(v_z):
        tan2 = (1 - v_z**2) / v_z**2
        return 2 / (1 + np.sqrt(1 + a2 * tan2))

    integrand = d * g1(mu) * g1(wo[..., 2]) / (4 * mu) * np.sin(theta)
    return float(integrand.sum() * (np.pi / 2 / n) * (2 * np.pi / (2 * n)))


@pytest.mark.parametrize("roughness", [0.0, 0.3, 0.7, 1.0])
def test_white_furnace_rough_conductor_never_creates_energy(device, roughness):
    # eta = 0 makes the Fresnel term exactly 1: all loss is the microfacet model's own.
    document = furnace({"type": "conductor", "eta": [0, 0, 0], "k": [1, 1, 1], "roughness": roughness})
    image = render(document, device)[:, :, 0]
    values = image[sphere_mask(document)]
    if roughness == 0.0:
        assert np.allclose(values, 1.0, atol=1e-5)
        return
    bound = SIGMAS * values.std(ddof=1) / math.sqrt(len(values)) + 1e-4
    assert values.mean() <= 1.0 + bound, f"roughness {roughness}: {values.mean()} > 1"
    # Facing the camera, the sphere reflects the model's directional albedo at normal incidence.
    centre = image[14:18, 14:18].ravel()
    expected = ggx_albedo(0.995, roughness**2)
    bound = SIGMAS * centre.std(ddof=1) / math.sqrt(len(centre)) + 5e-3
    assert abs(centre.mean() - expected) <= bound, (centre.mean(), expected)


def test_white_furnace_plastic_never_creates_energy(device):
    image_values = []
    for roughness in (0.0, 0.4):
        document = furnace({"type": "plastic", "reflectance": 1.0, "roughness": roughness})
        image_values.append(render(document, device)[sphere_mask(document)])
    for values in image_values:
        assert values.mean() <= 1.0 + SIGMAS * values.std(ddof=1) / math.sqrt(len(values)) + 1e-4
        assert values.mean() > 0.8


def plane_under(light, albedo=0.5, width=24, spp=16):
    """A diffuse plane z = 0 (8 x 8 units) seen from above, lit only by `light`."""
    return {
        "version": 1,
        "camera": {"position": [0, 0, 6], "look_at": [0, 0, 0], "fov": 60},
        "film": {"width": width, "height": width, "spp": spp},
        "materials": {"m": {"reflectance": albedo}},
        "shapes": [{"type": "rectangle", "material": "m", "transform": {"scale": [4, 4, 1]}}],
        "lights": [light],
        "max_depth": 2,
    }


def plane_points(document, grid=8):
    """Plane hit points of a grid x grid of positions in each pixel: (h, w, grid^2, 3)."""
    origin = np.array(document["camera"]["position"], np.float64)
    directions, xs, ys = camera_rays(document)
    offsets = (np.arange(grid) + 0.5) / grid
    points = []
    for oy in offsets:
        for ox in offsets:
            d = directions(xs + ox, ys + oy)
            t = origin[2] / -d[..., 2]
            points.append(origin + d * t[..., None])
    return np.stack(points, axis=2)


def test_inverse_square_law_point_light(device):
    light_position = np.array([0.5, -0.3, 1.5])
    intensity = 10.0
    document = plane_under({"type": "point", "position": light_position.tolist(), "intensity": [intensity] * 3})
    image = render(document, device)[:, :, 0]
    points = plane_points(document)
    to_light = light_position - points
    r2 = (to_light**2).sum(axis=-1)
    cosine = to_light[..., 2] / np.sqrt(r2)
    expected = (0.5 / math.pi * intensity * cosine / r2).mean(axis=2)  # L = albedo/pi * I cos / r^2
    assert np.allclose(image, expected, rtol=5e-3), np.abs(image / expected - 1).max()
    # and not some other power of the distance: the ratio spans an order of magnitude
    assert expected.max() / expected.min() > 10


def test_sun_gives_albedo_over_pi_times_irradiance_times_cosine(device):
    angle = math.radians(30)
    direction = [math.sin(angle), 0.0, -math.cos(angle)]
    image = render(plane_under({"type": "sun", "direction": direction, "irradiance": [2, 4, 6]}), device)
    expected = 0.5 / math.pi * np.array([2, 4, 6]) * math.cos(angle)
    assert np.allclose(image, expected, rtol=1e-4)


def test_spot_light_is_a_point_light_inside_its_beam_and_dark_outside(device):
    position = np.array([0.0, 0.0, 2.0])
    spot = {"type": "spot", "position": position.tolist(), "direction": [0, 0, -1], "intensity": [5, 5, 5],
            "cutoff_angle": 30, "beam_width": 20}
    document = plane_under(spot, width=32)
    image = render(document, device)[:, :, 0]
    points = plane_points(document, grid=4)
    to_light = position - points
    angle = np.degrees(np.arccos(to_light[..., 2] / np.linalg.norm(to_light, axis=-1)))
    r2 = (to_light**2).sum(axis=-1)
    point_light = 0.5 / math.pi * 5 * (to_light[..., 2] / np.sqrt(r2)) / r2
    inside, outside = (angle < 20).all(axis=2), (angle > 30).all(axis=2)
    assert inside.sum() > 20 and outside.sum() > 20
    assert np.allclose(image[inside], point_light.mean(axis=2)[inside], rtol=5e-3)
    assert (image[outside] == 0).all()


def mis_scene(strategy, spp=64):
    return {
        "version": 1,
        "camera": {"position": [0, 1.5, 5], "look_at": [0, 0.5, 0], "fov": 40},
        "film": {"width": 32, "height": 24, "spp": spp},
        "materials": {
            "floor": {"reflectance": [0.6, 0.6, 0.6]},
            "metal": {"type": "conductor", "metal": "Au", "roughness": 0.4},
            "plastic": {"type": "plastic", "reflectance": [0.2, 0.3, 0.7], "roughness": 0.3},
            "lamp": {"emission": [8, 8, 8]},
            "panel": {"emission": [2, 3, 4]},
        },
        "shapes": [
            {"type": "rectangle", "material": "floor",
             "transform": {"scale": 4, "rotate": {"axis": [1, 0, 0], "angle": -90}}},
            {"type": "sphere", "material": "metal", "center": [-0.7, 0.6, 0], "radius": 0.6},
            {"type": "sphere", "material": "plastic", "center": [0.7, 0.5, 0.3], "radius": 0.5},
            {"type": "sphere", "material": "lamp", "center": [1.5, 2.5, 1.0], "radius": 0.3},
            {"type": "rectangle", "material": "panel",
             "transform": {"scale": 0.8, "rotate": {"axis": [1, 0, 0], "angle": 90}, "translate": [-1, 3, 0]}},
        ],
        "lights": [{"type": "environment", "radiance": [0.1, 0.1, 0.15]}],
        "max_depth": 3,
        "strategy": strategy,
    }


def assert_same_expectation(a, b, what):
    """Two unbiased renders of one scene: the per-pixel differences average to zero."""
    diff = (a - b).mean(axis=2).ravel()
    bound = SIGMAS * diff.std(ddof=1) / math.sqrt(len(diff)) + 1e-4 * np.abs(a).mean()
    assert abs(diff.mean()) <= bound, f"{what}: mean difference {diff.mean():.5f} > {bound:.5f}"


def test_light_sampling_bsdf_sampling_and_mis_converge_to_the_same_image(device):
    images = {strategy: render(mis_scene(strategy), device) for strategy in ("mis", "light", "bsdf")}
    assert images["mis"].mean() > 0.05
    assert_same_expectation(images["mis"], images["light"], "MIS vs light sampling")
    assert_same_expectation(images["mis"], images["bsdf"], "MIS vs BSDF sampling")
    assert_same_expectation(images["light"], images["bsdf"], "light vs BSDF sampling")
    # MIS is the point of it all: less noise than BSDF sampling alone.
    reference = render(mis_scene("mis", spp=1024), device)
    error = {k: np.sqrt(((v - reference) ** 2).mean()) for k, v in images.items()}
    assert error["mis"] < error["bsdf"]


def write_sky(path, width=64, height=32):
    """An EXR sky: dim blue gradient plus a small very bright sun."""
    import OpenEXR

    v = (np.arange(height) + 0.5) / height
    sky = np.zeros((height, width, 3), np.float32)
    sky[:] = (0.2 + 0.3 * (1 - v))[:, None, None] * np.array([0.5, 0.7, 1.0], np.float32)
    sky[6:8, 40:42] = 400.0
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {"RGB": sky}).write(str(path))


def test_environment_map_importance_and_uniform_sampling_agree(device, tmp_path):
    write_sky(tmp_path / "sky.exr")

    def scene(sampling, seed):
        document = furnace({"reflectance": 0.8}, spp=32, max_depth=2, seed=seed, strategy="light")
        document["lights"] = [{"type": "environment", "file": "sky.exr", "sampling": sampling}]
        return document

    images = {(s, seed): render(scene(s, seed), device, tmp_path) for s in ("importance", "uniform") for seed in (1, 2)}
    mask = sphere_mask(scene("uniform", 1))
    diff = (images["importance", 1] - images["uniform", 1])[mask].mean(axis=1)
    bound = SIGMAS * diff.std(ddof=1) / math.sqrt(len(diff))
    assert abs(diff.mean()) <= bound
    noise = {s: np.std((images[s, 1] - images[s, 2])[mask]) for s in ("importance", "uniform")}
    assert noise["importance"] < 0.5 * noise["uniform"], noise


def test_sobol_sampler_has_less_error_than_independent_at_equal_samples(device, make_document):
    reference = render(make_document(width=32, height=32, spp=1024, sampler="independent", seed=7), device)
    error = {}
    for sampler in ("independent", "sobol"):
        image = render(make_document(width=32, height=32, spp=16, sampler=sampler), device)
        error[sampler] = np.sqrt(((image - reference) ** 2).mean())
    assert error["sobol"] < error["independent"], error


def test_bvh_finds_the_same_nearest_hits_as_brute_force(device):
    rng = np.random.default_rng(3)
    centers = rng.uniform(-3, 3, (300, 3))
    vertices = (centers[:, None, :] + rng.normal(scale=0.4, size=(300, 3, 3))).reshape(-1, 3)
    spheres = [{"type": "sphere", "material": "m", "center": c.tolist(), "radius": float(r)}
               for c, r in zip(rng.uniform(-3, 3, (20, 3)), rng.uniform(0.1, 0.5, 20))]
    document = {
        "version": 1,
        "camera": {"position": [0, 0, 10], "look_at": [0, 0, 0], "fov": 40},
        "film": {"width": 4, "height": 4, "spp": 1},
        "materials": {"m": {"reflectance": 0.5}},
        "shapes": [{"type": "mesh", "material": "m", "vertices": vertices.tolist(),
                    "triangles": np.arange(900).reshape(300, 3).tolist()}] + spheres,
    }
    packed = pack(parse_scene(document))
    origins = rng.uniform(-4, 4, (5000, 3))
    directions = rng.normal(size=(5000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    t, prim = frames.renderer(device, packed).trace(origins, directions)
    expected = _brute_force(packed, origins, directions)
    hit = np.isfinite(expected)
    assert hit.sum() > 1000 and (~hit).sum() > 100
    assert np.array_equal(np.isfinite(t), hit)
    assert np.allclose(t[hit], expected[hit], rtol=1e-4, atol=1e-5)


def _brute_force(packed, o, d) -> np.ndarray:
    best = rays.nearest_hits(packed.corners.astype(np.float64), o, d)
    with np.errstate(all="ignore"):
        for sphere in packed.spheres["center_radius"].astype(np.float64):
            oc = o - sphere[:3]
            b = (oc * d).sum(axis=1)
            disc = b * b - ((oc * oc).sum(axis=1) - sphere[3] ** 2)
            root = np.sqrt(disc)
            t = np.where(-b - root > 0, -b - root, -b + root)
            best = np.where((disc >= 0) & (t > 0) & (t < best), t, best)
    return best


def facing_rectangle(material, textures, width=32, **camera):
    """A rectangle filling the view, lit head-on by a sun of irradiance pi: each pixel
    shows the albedo under it, exactly (L = albedo / pi * E)."""
    return {
        "version": 1,
        "camera": {"position": [0, 0, 3], "look_at": [0, 0, 0], "fov": 30, **camera},
        "film": {"width": width, "height": width, "spp": 16},
        "textures": textures,
        "materials": {"m": material},
        "shapes": [{"type": "rectangle", "material": "m"}],
        "lights": [{"type": "sun", "direction": [0, 0, -1], "irradiance": [math.pi] * 3}],
        "max_depth": 2,
    }


def quadrants(image):
    h, w = image.shape[:2]
    return {
        "top-left": image[: h // 2 - 2, : w // 2 - 2], "top-right": image[: h // 2 - 2, w // 2 + 2 :],
        "bottom-left": image[h // 2 + 2 :, : w // 2 - 2], "bottom-right": image[h // 2 + 2 :, w // 2 + 2 :],
    }


def test_checkerboard_starts_with_color0_at_uv_origin(device):
    textures = {"c": {"type": "checkerboard", "color0": [1, 0, 0], "color1": [0, 0, 1], "scale": [2, 2]}}
    image = render(facing_rectangle({"reflectance": {"texture": "c"}}, textures), device)
    parts = quadrants(image)
    assert np.allclose(parts["bottom-left"], [1, 0, 0], atol=1e-5)  # uv (0, 0): color0
    assert np.allclose(parts["bottom-right"], [0, 0, 1], atol=1e-5)
    assert np.allclose(parts["top-left"], [0, 0, 1], atol=1e-5)
    assert np.allclose(parts["top-right"], [1, 0, 0], atol=1e-5)


def test_a_textured_parameters_factor_and_bias_scale_and_shift_its_texels(device):
    """texel x factor + bias, per channel (UsdUVTexture's scale and bias), then clamped as
    the parameter is (a reflectance to [0, 1])."""
    textures = {"c": {"type": "checkerboard", "color0": [1, 0, 0], "color1": [0, 0, 1], "scale": [2, 2]}}
    shifted = {"texture": "c", "factor": [0.5, 0.5, 0.25], "bias": [0.25, 0.5, -0.5]}
    parts = quadrants(render(facing_rectangle({"reflectance": shifted}, textures), device))
    assert np.allclose(parts["bottom-left"], [0.75, 0.5, 0], atol=1e-5)  # color0: (1, 0, 0) x f + b, b's -0.5 clamped
    assert np.allclose(parts["bottom-right"], [0.25, 0.5, 0], atol=1e-5)  # color1: (0, 0, 1) x f + b


@pytest.mark.parametrize("colorspace,grey", [("auto", 0.21586050), ("linear", 128 / 255)])
def test_png_texture_upright_and_decoded_from_srgb(device, tmp_path, colorspace, grey):
    from PIL import Image

    pixels = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [128, 128, 128]]], np.uint8)
    Image.fromarray(pixels).save(tmp_path / "quad.png")
    textures = {"q": {"type": "image", "file": "quad.png", "filter": "nearest", "colorspace": colorspace}}
    image = render(facing_rectangle({"reflectance": {"texture": "q"}}, textures), device, tmp_path)
    parts = quadrants(image)
    # the image appears as it is drawn: its top-left texel at the top-left
    assert np.allclose(parts["top-left"], [1, 0, 0], atol=1e-5)
    assert np.allclose(parts["top-right"], [0, 1, 0], atol=1e-5)
    assert np.allclose(parts["bottom-left"], [0, 0, 1], atol=1e-5)
    assert np.allclose(parts["bottom-right"], grey, atol=1e-5)


def test_bilinear_filtering_blends_and_wrapping_repeats(device, tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0, 255]], np.uint8)).save(tmp_path / "ramp.png")
    textures = {"r": {"type": "image", "file": "ramp.png", "colorspace": "linear", "scale": [3, 1]}}
    image = render(facing_rectangle({"reflectance": {"texture": "r"}}, textures, width=64), device, tmp_path)
    row = image[32, :, 0]
    assert row.min() >= 0 and row.max() <= 1
    assert len(np.unique(np.round(row, 3))) > 10  # a ramp, not two flat halves
    # the texture repeats three times across the rectangle: the row is periodic
    period = 64 * 2 / 3 / (2 * 3 * math.tan(math.radians(15)))  # pixels per uv unit / 3
    assert abs(row[10] - row[10 + int(round(period))]) < 0.05


def test_thin_lens_keeps_the_focus_plane_sharp_and_blurs_the_rest(device):
    checks = {"c": {"type": "checkerboard", "color0": [1, 1, 1], "color1": [0, 0, 0], "scale": [8, 8]}}

    def image(aperture, focus):
        camera = {"aperture_radius": aperture, "focus_distance": focus} if aperture else {}
        document = facing_rectangle({"reflectance": {"texture": "c"}}, checks, width=48, **camera)
        document["film"]["spp"] = 64
        return render(document, device)[:, :, 0]

    pinhole, focused, blurred = image(0, None), image(0.3, 3.0), image(0.3, 1.5)
    assert np.abs(focused - pinhole).mean() < 0.01
    assert blurred.std() < 0.6 * pinhole.std()
    assert abs(blurred.mean() - pinhole.mean()) < 0.02  # blur moves light, it does not lose it


def test_textured_emitter_is_seen_and_sampled_consistently(device):
    """A checkerboard lamp: seen directly it shows its texture; light sampling (which must
    look the texture up at the sampled point) agrees with BSDF sampling on the floor."""

    def scene(strategy):
        return {
            "version": 1,
            "camera": {"position": [0, 2, 4], "look_at": [0, 0.8, 0], "fov": 50},
            "film": {"width": 32, "height": 32, "spp": 64},
            "textures": {"c": {"type": "checkerboard", "color0": [4, 1, 0], "color1": [0, 1, 4], "scale": [2, 2]}},
            "materials": {"floor": {"reflectance": 0.7}, "lamp": {"reflectance": 0, "emission": {"texture": "c"}}},
            "shapes": [
                {"type": "rectangle", "material": "floor",
                 "transform": {"scale": 3, "rotate": {"axis": [1, 0, 0], "angle": -90}}},
                {"type": "rectangle", "material": "lamp",
                 "transform": {"scale": 0.8, "rotate": {"axis": [1, 0, 0], "angle": 60}, "translate": [0, 1.6, -0.5]}},
            ],
            "max_depth": 2,
            "strategy": strategy,
        }

    images = {strategy: render(scene(strategy), device) for strategy in ("light", "bsdf")}
    assert_same_expectation(images["light"], images["bsdf"], "textured lamp: light vs BSDF sampling")
    lit = images["light"]
    assert lit[:, :, 0].max() > 3.9 and lit[:, :, 2].max() > 3.9  # both squares visible directly
    floor = lit[24:, :, :].mean(axis=(0, 1))
    assert floor[0] > 0.01 and floor[2] > 0.01  # and both colours reach the floor


def test_sphere_lights_sampled_by_their_cone_agree_with_bsdf_sampling(device):
    """A big lamp just above the floor: the cone it subtends is wide and changes fast."""

    def scene(strategy):
        return {
            "version": 1,
            "camera": {"position": [0, 2.5, 4], "look_at": [0, 0, 0], "fov": 45},
            "film": {"width": 32, "height": 32, "spp": 64},
            "materials": {"floor": {"type": "plastic", "reflectance": 0.6, "roughness": 0.5},
                          "lamp": {"reflectance": 0, "emission": [3, 3, 3]}},
            "shapes": [
                {"type": "rectangle", "material": "floor",
                 "transform": {"scale": 3, "rotate": {"axis": [1, 0, 0], "angle": -90}}},
                {"type": "sphere", "material": "lamp", "center": [0.3, 0.62, 0], "radius": 0.6},
            ],
            "max_depth": 2,
            "strategy": strategy,
        }

    images = {strategy: render(scene(strategy), device) for strategy in ("light", "bsdf", "mis")}
    assert_same_expectation(images["light"], images["bsdf"], "sphere lamp: light vs BSDF sampling")
    assert_same_expectation(images["mis"], images["bsdf"], "sphere lamp: MIS vs BSDF sampling")


@pytest.mark.parametrize("strategy", ["light", "mis"])
def test_sphere_light_irradiance_matches_the_closed_form(device, strategy):
    """A diffuse plane under a spherical lamp wholly above its horizon receives
    E = pi L (r / d)^2 cos(theta) (d: distance to the centre, theta: its angle to the normal)."""
    center, radius, radiance = np.array([0.3, 0.0, 1.5]), 0.6, 3.0
    document = plane_under({"type": "sun", "direction": [0, 0, -1], "irradiance": [0, 0, 0]}, spp=64)
    document["lights"] = []
    document["materials"]["lamp"] = {"reflectance": 0, "emission": [radiance] * 3}
    document["shapes"].append({"type": "sphere", "material": "lamp", "center": center.tolist(), "radius": radius})
    document["strategy"] = strategy
    image = render(document, device)[:, :, 0]
    points = plane_points(document, grid=4)
    to_center = center - points
    distance = np.linalg.norm(to_center, axis=-1)
    expected = (0.5 / math.pi * math.pi * radiance * (radius / distance) ** 2 * to_center[..., 2] / distance).mean(axis=2)
    # pixels that see the plane, not the lamp (the lamp covers the middle of the frame)
    ys, xs = np.mgrid[0:24, 0:24] - 11.5
    plane = np.hypot(xs, ys) > 6
    ratio = image[plane] / expected[plane]
    assert_mean(ratio, 1.0, f"{strategy}: image / closed form")


def test_arc_tangent_and_arc_cosine_in_plain_arithmetic_are_accurate(device):
    """kernels/sampling.h spells out atan2 and acos (environment lookups, sphere uvs, spot
    falloff) so every device gives the same bits: within 4e-7 radians of the true angle,
    signs and quadrants right, and the same bits whichever sqrt and fabs it is built with."""
    import pyopencl as cl

    from farm.worker.render import kernel_dir

    source = """#include "sampling.h"
    __kernel void angles(__global const float *x, __global const float *y, __global float *out) {
        int i = get_global_id(0);
        out[2 * i] = atan2_f(y[i], x[i]);
        out[2 * i + 1] = acos_f(clamp_f(x[i], -1.0f, 1.0f));
    }"""
    rng = np.random.default_rng(7)
    edges = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 0.4142135, 2.4142137, 1e-30, -1e30]
    x = np.concatenate([rng.uniform(-1, 1, 100_000), rng.normal(size=100_000) * 100, edges]).astype(np.float32)
    y = np.concatenate([rng.uniform(-1, 1, 100_000), rng.normal(size=100_000), edges[::-1]]).astype(np.float32)
    flags = cl.mem_flags
    buffers = [cl.Buffer(device.context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=a) for a in (x, y)]
    results = []
    for extra in (["-DFARM_CLANG_BUILTINS"], []):  # as on PoCL, and as on any other device
        program = cl.Program(device.context, source).build(options=["-I", kernel_dir(), "-cl-std=CL1.2", *extra])
        out = np.empty(2 * len(x), np.float32)
        out_buffer = cl.Buffer(device.context, flags.WRITE_ONLY, out.nbytes)
        program.angles(device.queue, (len(x),), None, *buffers, out_buffer)
        cl.enqueue_copy(device.queue, out, out_buffer)
        results.append(out)
    assert np.array_equal(results[0], results[1])
    atan2, acos = results[0][0::2].astype(np.float64), results[0][1::2].astype(np.float64)
    assert np.abs(atan2 - np.arctan2(y.astype(np.float64), x.astype(np.float64))).max() < 4e-7
    assert np.abs(acos - np.arccos(np.clip(x.astype(np.float64), -1, 1))).max() < 4e-7
    assert acos[x == 1.0].max() == 0.0 and (acos[x == -1.0] == np.float32(math.pi)).all()


def _png(path, rgba: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.asarray(rgba, np.uint8)).save(path)


def _lit_quad(material, textures, sun_direction):
    """A 2 x 2 quad facing +z filling the view, lit only by a sun of irradiance pi."""
    return {
        "version": 1,
        "camera": {"position": [0, 0, 3], "look_at": [0, 0, 0], "fov": 20},
        "film": {"width": 16, "height": 16, "spp": 4},
        "textures": textures,
        "materials": {"m": material},
        "shapes": [{"type": "rectangle", "material": "m"}],
        "lights": [{"type": "sun", "direction": sun_direction, "irradiance": math.pi}],
        "max_depth": 2,
    }


@pytest.mark.parametrize("channel,axis", [(0, 0), (1, 1)])
def test_a_normal_map_tilts_the_shading_normal_along_the_tangent_frame(device, tmp_path, channel, axis):
    # The map tilts the normal 60 degrees towards +u (red) or +v (green); the rectangle's u
    # runs along +x and v along +y. A sun from 60 degrees on that side then meets the
    # tilted normal head on: a diffuse 0.5 gives 0.5, where the flat quad gives 0.25 and
    # a frame turned the wrong way gives 0.
    texel = [128, 128, 255]
    texel[channel], texel[2] = 238, 191  # (sin 60, cos 60) encoded as (n + 1) / 2 in 8 bits
    _png(tmp_path / "normals.png", np.full((2, 2, 3), texel))
    decoded = np.array(texel) / 255.0 * 2.0 - 1.0
    tilt = decoded / np.linalg.norm(decoded)
    towards = np.zeros(3)
    towards[axis], towards[2] = math.sin(math.radians(60)), math.cos(math.radians(60))
    document = _lit_quad({"reflectance": 0.5, "normal_map": {"texture": "n"}},
                         {"n": {"type": "image", "file": "normals.png", "filter": "nearest"}}, (-towards).tolist())
    image = render(document, device, tmp_path)
    assert np.allclose(image, 0.5 * float(tilt @ towards), atol=2e-4)
    flat = _lit_quad({"reflectance": 0.5}, {}, (-towards).tolist())
    assert np.allclose(render(flat, device), 0.25, atol=2e-4)


def test_alpha_cuts_out_the_surface_for_camera_and_shadow_rays(device, tmp_path):
    # left half of the occluder transparent (alpha 0), right half opaque (255)
    rgba = np.zeros((2, 2, 4))
    rgba[:, 1, 3] = 255
    _png(tmp_path / "cut.png", rgba)
    document = {
        "version": 1,
        "camera": {"position": [0, 0, 3], "look_at": [0, 0, 0], "fov": 20},
        "film": {"width": 16, "height": 16, "spp": 4},
        "textures": {"cut": {"type": "image", "file": "cut.png", "filter": "nearest"}},
        "materials": {"ground": {"reflectance": 0.5},
                      "occluder": {"reflectance": 0.0, "alpha": {"texture": "cut", "channel": "a"}, "alpha_cutoff": 0.5}},
        "shapes": [{"type": "rectangle", "material": "ground", "transform": {"scale": 4}},
                   {"type": "rectangle", "material": "occluder", "transform": {"scale": 4, "translate": [0, 0, 0.5]}}],
        "lights": [{"type": "sun", "direction": [0, 0, -1], "irradiance": math.pi}],
        "max_depth": 2,
    }
    image = render(document, device, tmp_path)
    # through the cut-out half the camera sees the ground, lit through it too (shadow rays
    # pass the hole): 0.5; the opaque half is black
    assert np.allclose(image[:, :7], 0.5, atol=2e-4) and np.allclose(image[:, 9:], 0.0)
    document["materials"]["occluder"]["alpha"] = 0.2  # all of it below the cutoff: the occluder is gone
    assert np.allclose(render(document, device, tmp_path), 0.5, atol=2e-4)


def test_aovs_have_their_documented_values(device):
    """A diffuse quad of known albedo facing the camera, seen partly through a mirror:
    albedo and normal are those of the first hit that is not a mirror (world space, facing
    the viewer), depth the camera ray's distance to the first hit, variance from the spread
    of the samples, the material id that of the first hit of sample 0 (+1, over the spp);
    the radiance is the same bits with or without AOVs."""
    document = _lit_quad({"reflectance": [0.3, 0.5, 0.7]}, {}, [0, 0, -1])
    document["film"]["spp"] = 8
    image = render(document, device, aovs=True)
    assert np.array_equal(image[..., :3], render(document, device))
    albedo, normal, depth, square = image[..., 3:6], image[..., 6:9], image[..., 9], image[..., 10]
    assert np.allclose(albedo, [0.3, 0.5, 0.7], atol=1e-6)
    assert np.allclose(normal, [0, 0, 1], atol=1e-6)
    # pixel centre rays of a 20-degree view at distance 3: depth 3 / cos(angle to the axis)
    directions, xs, ys = camera_rays(document)
    centre = directions(xs + 0.5, ys + 0.5)
    assert np.allclose(depth, 3.0 / centre[..., 2] * -1, rtol=2e-3)
    luminance = image[..., :3] @ [0.2126, 0.7152, 0.0722]
    assert np.allclose(square, luminance**2, rtol=1e-4)  # a sun on a flat diffuse quad: every sample alike
    assert (image[..., 11] == np.float32(1 / 8)).all()  # material 0, plus 1, once over 8 samples
    # the quad made a mirror, a diffuse wall behind the camera: albedo and normal are the
    # wall's, seen in the mirror (its normal facing the ray coming from the mirror), the depth
    # still the mirror's
    mirrored = copy.deepcopy(document)
    mirrored["max_depth"] = 4
    mirrored["materials"] = {"mirror": {"type": "conductor", "eta": [0, 0, 0], "k": [1, 1, 1]},
                             "wall": {"reflectance": [0.6, 0.2, 0.1]}}
    mirrored["shapes"] = [{"type": "rectangle", "material": "mirror", "transform": {"scale": 4}},
                          {"type": "rectangle", "material": "wall",
                           "transform": {"scale": 40, "rotate": {"axis": [0, 1, 0], "angle": 180}, "translate": [0, 0, 6]}}]
    seen = render(mirrored, device, aovs=True)
    assert np.allclose(seen[..., 3:6], [0.6, 0.2, 0.1], atol=1e-6)
    assert np.allclose(seen[..., 6:9], [0, 0, -1], atol=1e-5)
    assert np.allclose(seen[..., 9], depth, rtol=1e-5)
    assert (seen[..., 11] == np.float32(1 / 8)).all()  # the mirror's id (0): the first hit, mirror or not
