import json
import math

import numpy as np
import pytest

from farm.exceptions import SceneError
from farm.scene import Box, Rectangle, parse_scene
from farm.scene.load import load_scene
from farm.scene.pack import pack
from tests.files import ROOT


def test_cornell_box_loads(cornell_document):
    scene = parse_scene(cornell_document)
    assert (scene.film.width, scene.film.height) == (256, 256)
    assert scene.camera.fov_axis == "y"
    assert {type(s) for s in scene.shapes} == {Rectangle, Box}
    assert scene.materials["light"].emissive and not scene.materials["red"].emissive
    assert len(scene.digest) == 64


def test_spp_override_changes_the_digest(write_scene, cornell_document):
    path = write_scene(cornell_document)
    a, _ = load_scene(path)
    b, document = load_scene(path, spp=3)
    assert b.film.spp == 3 and document["film"]["spp"] == 3
    assert a.digest != b.digest


def _broken(document, change):
    change(document)
    return document


CASES = [
    ("missing film", lambda d: d.pop("film"), "scene: missing field 'film'"),
    ("unknown top key", lambda d: d.update(colour="red"), "unknown field 'colour'"),
    ("unknown camera key", lambda d: d["camera"].update(zoom=2), "scene.camera: unknown field 'zoom'"),
    ("misspelt key", lambda d: d["camera"].update(lookat=d["camera"].pop("look_at")),
     "scene.camera: missing field 'look_at'; unknown field 'lookat' (allowed: "),
    ("string width", lambda d: d["film"].update(width="256"), "scene.film.width: expected an integer, got a string"),
    ("float spp", lambda d: d["film"].update(spp=1.5), "scene.film.spp: expected an integer"),
    ("zero width", lambda d: d["film"].update(width=0), "width (pixels) 0 is out of range"),
    ("million wide", lambda d: d["film"].update(width=1_000_000), "width (pixels) 1000000 is out of range"),
    ("bool number", lambda d: d["camera"].update(fov=True), "scene.camera.fov: expected a number, got a boolean"),
    ("fov 180", lambda d: d["camera"].update(fov=180), "between 0 and 180"),
    ("short vector", lambda d: d["camera"].update(position=[0, 1]), "expected a list of 3 values, got 2"),
    ("up parallel", lambda d: d["camera"].update(up=[0, 0, 1]), "scene.camera.up: up must not be zero or parallel"),
    ("same point", lambda d: d["camera"].update(look_at=d["camera"]["position"]), "position and look_at are the same"),
    ("unknown material", lambda d: d["shapes"][2].update(material="chrome"),
     "scene.shapes[2].material: unknown material 'chrome'"),
    ("unknown shape", lambda d: d["shapes"][0].update(type="torus"), "scene.shapes[0].type: 'torus' is not one of"),
    ("albedo above one", lambda d: d["materials"]["red"].update(reflectance=[1.5, 0, 0]), "out of range"),
    ("negative emission", lambda d: d["materials"]["light"].update(emission=[-1, 0, 0]), "out of range"),
    ("no shapes", lambda d: d.update(shapes=[]), "at least one shape"),
    ("bad version", lambda d: d.update(version=2), "unsupported scene format version 2"),
    ("zero scale", lambda d: d["shapes"][0]["transform"].update(scale=0), "scale must not be zero"),
    ("matrix and translate", lambda d: d["shapes"][0].update(transform={"matrix": [[1, 0, 0, 0]] * 4, "scale": 2}),
     "either matrix or"),
    ("max depth zero", lambda d: d.update(max_depth=0), "scene.max_depth"),
    ("negative seed", lambda d: d.update(seed=-1), "scene.seed"),
    ("sphere sheared", lambda d: d["shapes"].append(
        {"type": "sphere", "material": "white", "transform": {"scale": [1, 2, 1]}}), "may only translate, rotate"),
    ("mesh index out of range", lambda d: d["shapes"].append(
        {"type": "mesh", "material": "white", "vertices": [[0, 0, 0], [1, 0, 0], [0, 1, 0]], "triangles": [[0, 1, 3]]}),
     "vertex index 3 is out of range"),
]


@pytest.mark.parametrize("name,change,message", CASES, ids=[c[0] for c in CASES])
def test_invalid_scenes_name_the_problem(cornell_document, name, change, message):
    document = _broken(json.loads(json.dumps(cornell_document)), change)
    with pytest.raises(SceneError) as caught:
        parse_scene(document)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreadable_files_are_scene_errors(write_scene, tmp_path):
    with pytest.raises(SceneError, match="no such scene file"):
        load_scene(tmp_path / "nope.json")
    with pytest.raises(SceneError, match="invalid JSON at line 1 column 2"):
        load_scene(write_scene("{oops"))
    with pytest.raises(SceneError, match="expected an object, got a list"):
        load_scene(write_scene("[1, 2]"))
    with pytest.raises(SceneError, match="expected a finite number"):
        load_scene(write_scene('{"version": 1, "camera": {"position": [NaN, 0, 0], "look_at": [0,0,0], "fov": 40},'
                               '"film": {"width": 4, "height": 4, "spp": 1}, "materials": {}, "shapes": []}'))


def _scene(shapes, materials=None, **film):
    return {
        "version": 1,
        "camera": {"position": [0, 0, 5], "look_at": [0, 0, 0], "fov": 40},
        "film": {"width": film.get("width", 40), "height": film.get("height", 20), "spp": 1},
        "materials": materials or {"m": {"reflectance": [0.5, 0.5, 0.5]}, "lamp": {"emission": [1, 1, 1]}},
        "shapes": shapes,
    }


def test_rectangle_is_the_unit_square_facing_plus_z():
    packed = pack(parse_scene(_scene([{"type": "rectangle", "material": "m"}])))
    assert len(packed.triangles) == 2
    corners = packed.corners.transpose(1, 0, 2).reshape(-1, 3)  # corner 0 of each, then 1, then 2
    assert corners.min(axis=0).tolist() == [-1, -1, 0] and corners.max(axis=0).tolist() == [1, 1, 0]
    assert np.allclose(packed.triangle_data["n"][:, :3], [0, 0, 1])
    uv = np.concatenate([packed.triangle_data["uv01"][:, :2], packed.triangle_data["uv01"][:, 2:],
                         packed.triangle_data["uv2"][:, :2]])
    assert np.allclose(uv, (corners[:, :2] + 1) / 2)  # uv (0, 0) at (-1, -1), (1, 1) at (1, 1)


def test_box_faces_point_outwards_even_when_mirrored():
    for scale in (1, [-1, 1, 1]):
        shape = {"type": "box", "material": "m", "transform": {"scale": scale, "translate": [3, 0, 0]}}
        packed = pack(parse_scene(_scene([shape])))
        assert len(packed.triangles) == 12
        centroid = packed.corners.mean(axis=1)
        outward = np.einsum("ij,ij->i", packed.triangle_data["n"][:, :3], centroid - [3, 0, 0])
        assert (outward > 0).all()


def test_transform_scales_then_rotates_then_translates():
    shape = {"type": "mesh", "material": "m", "vertices": [[1, 0, 0], [0, 0, 0], [0, 1, 0]],
             "triangles": [[0, 1, 2]],
             "transform": {"scale": 2, "rotate": {"axis": [0, 0, 1], "angle": 90}, "translate": [10, 0, 0]}}
    packed = pack(parse_scene(_scene([shape])))
    # (1,0,0) -> scale (2,0,0) -> rotate 90 about z (0,2,0) -> translate (10,2,0)
    assert np.allclose(packed.corners[0, 0], [10, 2, 0])


def test_matrix_transform_and_sphere_transform():
    shape = {"type": "sphere", "material": "m", "radius": 0.5,
             "transform": {"matrix": [[2, 0, 0, 1], [0, 2, 0, 2], [0, 0, 2, 3], [0, 0, 0, 1]]}}
    packed = pack(parse_scene(_scene([shape])))
    assert np.allclose(packed.spheres["center_radius"][0], [1, 2, 3, 1.0])


def test_a_tiny_scale_is_a_transform_and_a_flat_one_is_singular():
    """Singular is relative to the matrix's own size: a millimetre stage's 5 cm part (a
    determinant of 1e-13) is a transform; a matrix that flattens an axis is refused."""
    tiny = [[5e-5, 0, 0, 0], [0, 5e-5, 0, 0], [0, 0, 5e-5, 0], [0, 0, 0, 1]]
    box = {"type": "box", "material": "m", "transform": {"matrix": tiny}}
    assert parse_scene(_scene([box])).shapes[0].transform[0][0] == 5e-5
    flat = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1e-13, 0], [0, 0, 0, 1]]
    with pytest.raises(SceneError, match="transform.matrix: the matrix is singular"):
        parse_scene(_scene([{**box, "transform": {"matrix": flat}}]))


def test_lights_are_chosen_by_power():
    shapes = [
        {"type": "sphere", "material": "lamp", "radius": 1, "center": [0, 0, -3]},
        {"type": "rectangle", "material": "lamp"},
        {"type": "rectangle", "material": "m", "transform": {"translate": [0, 0, -1]}},
    ]
    packed = pack(parse_scene(_scene(shapes)))
    assert len(packed.lights) == 3  # a sphere and two triangles
    areas = packed.lights["pick"][:, 2]
    assert np.allclose(sorted(areas), [2, 2, 4 * math.pi])
    pmf, cdf = packed.lights["pick"][:, 0], packed.lights["pick"][:, 1]
    assert np.isclose(pmf.sum(), 1) and cdf[-1] == 1 and np.allclose(pmf, areas / areas.sum())
    assert set(packed.triangle_data["info"][:, 1]) == {0, 1, -1}
    assert list(packed.spheres["info"][:, 1]) == [2]


@pytest.mark.parametrize("axis,expected", [("y", (2 * math.tan(math.radians(20)), math.tan(math.radians(20)))),
                                           ("x", (math.tan(math.radians(20)), math.tan(math.radians(20)) / 2))])
def test_fov_axis(axis, expected):
    document = _scene([{"type": "rectangle", "material": "m"}])
    document["camera"]["fov_axis"] = axis
    frame = pack(parse_scene(document)).frame[0]
    assert np.isclose(np.linalg.norm(frame["right"][:3]), expected[0])
    assert np.isclose(np.linalg.norm(frame["up"][:3]), expected[1])
    # right-handed: looking down -z with +y up, +x is to the right
    assert frame["right"][0] > 0 and frame["up"][1] > 0


MATERIAL_CASES = [
    ("unknown material type", {"type": "velvet"}, "'velvet' is not one of"),
    ("parameter of another type", {"type": "diffuse", "ior": 1.5}, "unknown field 'ior'"),
    ("roughness above one", {"type": "conductor", "roughness": 2}, "out of range"),
    ("unknown metal", {"type": "conductor", "metal": "Unobtainium"}, "is not one of"),
    ("metal and eta", {"type": "conductor", "metal": "Au", "eta": [1, 1, 1], "k": [1, 1, 1]}, "not both"),
    ("eta without k", {"type": "conductor", "eta": [1, 1, 1]}, "both eta and k"),
    ("unknown texture", {"reflectance": {"texture": "nope"}}, "unknown texture 'nope'"),
    ("principled's metallic above one", {"type": "principled", "metallic": 1.5}, "out of range"),
    ("channel on a colour", {"reflectance": {"texture": "c", "channel": "r"}}, "unknown field 'channel'"),
]


@pytest.mark.parametrize("name,material,message", MATERIAL_CASES, ids=[c[0] for c in MATERIAL_CASES])
def test_invalid_materials_name_the_problem(name, material, message):
    document = _scene([{"type": "sphere", "material": "m"}], materials={"m": material})
    document["textures"] = {"c": {"type": "checkerboard"}}
    with pytest.raises(SceneError) as caught:
        parse_scene(document)
    assert message in str(caught.value) and "materials.m" in str(caught.value)


LIGHT_CASES = [
    ("spot without direction", {"type": "spot", "position": [0, 0, 0], "intensity": [1, 1, 1]}, "either direction or look_at"),
    ("beam wider than cutoff", {"type": "spot", "position": [0, 0, 0], "direction": [0, -1, 0],
                                "intensity": [1, 1, 1], "cutoff_angle": 10, "beam_width": 20}, "beam_width"),
    ("zero sun direction", {"type": "sun", "direction": [0, 0, 0], "irradiance": [1, 1, 1]}, "must not be zero"),
    ("environment both", {"type": "environment", "radiance": [1, 1, 1], "file": "sky.hdr"}, "not both"),
    ("environment png", {"type": "environment", "file": "sky.png"}, "unsupported file type"),
    ("environment translated", {"type": "environment", "transform": {"translate": [1, 0, 0]}}, "may only rotate"),
]


@pytest.mark.parametrize("name,light,message", LIGHT_CASES, ids=[c[0] for c in LIGHT_CASES])
def test_invalid_lights_name_the_problem(name, light, message):
    document = _scene([{"type": "sphere", "material": "m"}])
    document["lights"] = [light]
    with pytest.raises(SceneError) as caught:
        parse_scene(document)
    assert message in str(caught.value) and "lights[0]" in str(caught.value)


def test_one_number_is_a_grey_wherever_a_colour_is_asked():
    document = _scene([{"type": "sphere", "material": "m"}])
    document["lights"] = [{"type": "environment", "radiance": 2}, {"type": "point", "position": [0, 1, 0], "intensity": 3},
                          {"type": "sun", "direction": [0, -1, 0], "irradiance": 0.5}]
    document["textures"] = {"c": {"type": "checkerboard", "color0": 0, "color1": 1}}
    environment, point, sun = parse_scene(document).lights
    assert environment.radiance == (2.0, 2.0, 2.0) and point.intensity == (3.0, 3.0, 3.0)
    assert sun.irradiance == (0.5, 0.5, 0.5)
    assert parse_scene(document).textures["c"].color1 == (1.0, 1.0, 1.0)


def test_two_environments_are_refused():
    document = _scene([{"type": "sphere", "material": "m"}])
    document["lights"] = [{"type": "environment"}, {"type": "environment"}]
    with pytest.raises(SceneError, match="at most one environment"):
        parse_scene(document)


def test_inline_mesh_with_normals_and_uvs_is_smooth():
    shape = {"type": "mesh", "material": "m", "vertices": [[0, 0, 0], [1, 0, 0], [0, 1, 0]],
             "triangles": [[0, 1, 2]], "normals": [[0, 0, 1], [0.1, 0, 1], [0, 0.1, 1]],
             "uvs": [[0, 0], [0.5, 0], [0, 0.5]]}
    packed = pack(parse_scene(_scene([shape])))
    assert packed.triangle_data["info"][0, 2] == 0 and len(packed.normals) == 1
    assert np.allclose(packed.normals["n1"][0, :3], np.array([0.1, 0, 1]) / np.linalg.norm([0.1, 0, 1]))
    assert np.allclose(packed.triangle_data["uv01"][0], [0, 0, 0.5, 0])
    flat = pack(parse_scene(_scene([dict(shape, face_normals=True)])))
    assert flat.triangle_data["info"][0, 2] == -1 and len(flat.normals) == 0
    with pytest.raises(SceneError, match="one normal per vertex"):
        parse_scene(_scene([dict(shape, normals=[[0, 0, 1]])]))


def test_plastic_internal_reflectance_is_integrated_not_guessed():
    from farm.scene.tables import diffuse_fresnel_reflectance, fresnel_dielectric

    assert fresnel_dielectric(np.array([1.0]), 1.5)[0] == pytest.approx(0.04)  # ((1.5-1)/(1.5+1))^2
    assert diffuse_fresnel_reflectance(1.0) == pytest.approx(0.0, abs=1e-9)
    # from inside glass, everything beyond the critical angle reflects: Fdr(1/1.5) is large
    assert 0.55 < diffuse_fresnel_reflectance(1 / 1.5) < 0.65
    assert 0.08 < diffuse_fresnel_reflectance(1.5) < 0.1


def test_rough_interface_tables_are_energy_conserving_and_smooth_in_the_limit():
    from farm.scene.tables import fresnel_dielectric, rough_interface

    mu = np.linspace(0.05, 1.0, 20)
    reflected, transmitted = rough_interface(mu, 1e-3, 1.5)
    assert np.allclose(reflected, fresnel_dielectric(mu, 1.5), atol=2e-3)  # a smooth interface
    assert np.allclose(transmitted, 1 - fresnel_dielectric(mu, 1.5), atol=2e-3)
    previous = np.ones_like(mu)
    for alpha in (0.1, 0.5, 1.0):  # masking loses more the rougher and the more grazing
        reflected, transmitted = rough_interface(mu, alpha, 1.5)
        total = reflected + transmitted
        assert (total <= previous + 1e-9).all() and total[-1] > 0.85
        previous = total
    # from inside, total internal reflection beyond the critical angle
    reflected, transmitted = rough_interface(np.array([0.2]), 1e-3, 1 / 1.5)
    assert transmitted[0] < 1e-3 and reflected[0] > 0.99


@pytest.mark.parametrize("name", ["cornell-box.json", "showcase.json", "textured-mesh.json", "gltf-example.glb"])
def test_the_client_parses_a_scene_file_once(name, monkeypatch):
    """load_scene parses the document once, then records its files' digests and its
    warnings in it: the scene it returns is the one the document parses to (what a worker
    gets), digest included."""
    from farm.scene import load

    calls = []
    real = load.parse_scene
    monkeypatch.setattr(load, "parse_scene", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    scene, document = load.load_scene(ROOT / "scenes" / name)
    assert len(calls) == 1
    again = parse_scene(document)
    assert (scene.digest, scene.assets, scene.warnings) == (again.digest, again.assets, again.warnings)
    assert scene.files() == again.files() and (bool(scene.assets) or name == "cornell-box.json")


def test_the_environments_guides_bound_the_bin_a_full_search_finds():
    """The kernel searches an environment's CDFs only between two guide entries
    (farm.scene.lights.environment_guides); for any u, the bin a search of the whole CDF
    finds (the last whose CDF is at most u, in float32) lies in that range. A map with a
    bright spot (bins of nearly all the probability), black rows and sides not powers of two;
    u at random, at each step's edge and a float below it."""
    from farm.scene.lights import environment_distribution, environment_guides

    height, width = 37, 101
    pixels = np.full((height, width, 3), 0.2, np.float32)
    pixels[5:7, 50:52] = 1e6
    pixels[20:25] = 0.0
    marginal, conditional, _, _ = environment_distribution(pixels)
    guide = environment_guides(marginal, conditional, height, width)
    rows, columns = int(guide[0]), int(guide[1])
    assert (rows, columns) == (64, 128)
    rng = np.random.default_rng(5)

    def check(cdf: np.ndarray, bins: int, table: np.ndarray, steps: int) -> None:
        edges = np.arange(steps, dtype=np.float32) / np.float32(steps)
        below = np.nextafter(edges[1:], np.float32(0))
        u = np.concatenate([(rng.integers(0, 1 << 24, 2000) * 2.0 ** -24).astype(np.float32), edges, below])
        found = np.clip(np.searchsorted(cdf[:bins], u, side="right") - 1, 0, bins - 1)
        at = np.minimum((u * np.float32(steps)).astype(np.int64), steps - 1)
        assert (table[at] <= found).all() and (found <= table[at + 1]).all()

    check(marginal, height, guide[2:2 + rows + 1], rows)
    for row in (0, 5, 6, 22, height - 1):
        start = 2 + rows + 1 + row * (columns + 1)
        check(conditional[row * (width + 1):(row + 1) * (width + 1)], width, guide[start:start + columns + 1], columns)
