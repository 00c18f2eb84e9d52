"""glTF 2.0 scenes: converted on the client into the farm's scene format, geometry and
embedded images read by workers from the .glb (or .bin) through the asset path."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from farm.exceptions import SceneError
from farm.protocol.assets import FolderAssets
from farm.scene import parse_scene
from farm.scene.load import load_scene
from farm.scene.model import TextureRef
from farm.scene.pack import pack
from farm.worker.render import Renderer
from tests import frames
from tests.files import ROOT, QUAD_INDICES, QUAD_NORMALS, QUAD_POSITIONS, QUAD_UVS, TETRA, build_gltf, png_bytes, write_glb

@pytest.fixture
def glb(tmp_path):
    document, binary = build_gltf()
    path = tmp_path / "model.glb"
    write_glb(path, document, binary)
    return path


def test_a_glb_becomes_a_scene_of_the_farm(glb):
    scene, document = load_scene(glb)
    assert list(scene.assets) == ["model.glb"]  # one file travels: geometry and image are inside it
    assert (scene.film.width, scene.film.height, scene.film.spp) == (960, 480, 64)  # the camera's 2:1
    assert scene.camera.fov == pytest.approx(np.degrees(0.7)) and scene.camera.position == (0, 2, 6)
    floor, metal = scene.materials["model.glb:floor"], scene.materials["model.glb:gold"]
    assert floor.kind == "principled" and floor.roughness == pytest.approx(0.6) and floor.metallic == 0.0
    assert floor.reflectance.factor == (0.5, 0.8, 1.0)
    assert metal.kind == "principled" and metal.reflectance == (1.0, 0.8, 0.3) and metal.metallic == 1.0
    assert metal.emission == pytest.approx((0.2, 0.2, 0.2))
    point, sun = scene.lights
    assert point.position == (0, 3, 0) and point.intensity == pytest.approx((20, 18, 16))
    assert sun.irradiance == pytest.approx((2, 2, 2))
    assert sun.direction == pytest.approx((0, -np.sqrt(0.5), -np.sqrt(0.5)), abs=1e-6)
    texture = scene.textures["model.glb:texture0"]
    assert texture.range is not None and texture.filter == "nearest" and texture.wrap == "clamp"
    assert len(scene.shapes) == 3  # the floor, and the tetrahedron twice


def test_node_transforms_place_every_instance(glb):
    scene, _ = load_scene(glb)
    packed = pack(scene, FolderAssets(glb.parent, scene.assets))
    corners = packed.corners.reshape(-1, 3).astype(np.float64)
    angle = np.radians(45)  # the parent: translate (0, 0.5, 0), rotate 45 degrees about y, scale 2
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    for local in ([0.3, 0, 0], [-0.6, 0, 0]):  # each child's own translation, then the parent's
        expected = (TETRA + local) @ (2 * rotation).T + [0, 0.5, 0]
        assert any(np.allclose(corners[i:i + 12], expected, atol=1e-5)
                   for i in range(0, len(corners) - 11, 3))


def test_the_same_scene_written_as_json_packs_and_renders_identically(glb, tmp_path, device):
    """The glTF converted is the farm's own format: written out by hand (inline triangles,
    the image as a file, the uvs flipped: glTF's v runs down the image) it packs to the
    same arrays."""
    scene, _ = load_scene(glb)
    (tmp_path / "checker.png").write_bytes(png_bytes())
    floor_texture = {"type": "image", "file": "checker.png", "filter": "nearest", "wrap": "clamp"}
    by_hand = {
        "version": 1,
        "camera": {"position": [0, 2, 6], "look_at": list(np.add([0, 2, 6], _forward(scene))),
                   "up": list(scene.camera.up), "fov": float(np.degrees(0.7))},
        "film": {"width": 96, "height": 48, "spp": 4},
        "textures": {"checker": floor_texture},
        "materials": {
            "floor": {"type": "principled", "base_color": {"texture": "checker", "factor": [0.5, 0.8, 1.0]},
                      "metallic": 0, "roughness": 0.6},
            "gold": {"type": "principled", "base_color": [1.0, 0.8, 0.3], "metallic": 1, "roughness": 0.3,
                     "emission": [0.2, 0.2, 0.2]},
        },
        "shapes": [
            {"type": "mesh", "material": "floor", "vertices": QUAD_POSITIONS.tolist(), "normals": QUAD_NORMALS.tolist(),
             "uvs": (QUAD_UVS * [1, -1] + [0, 1]).tolist(), "triangles": QUAD_INDICES.reshape(-1, 3).tolist()},
        ] + [
            {"type": "mesh", "material": "gold", "vertices": TETRA.tolist(),
             "triangles": np.arange(12).reshape(-1, 3).tolist(), "transform": {"matrix": shape.transform}}
            for shape in scene.shapes[1:]
        ],
        "lights": [{"type": "point", "position": [0, 3, 0], "intensity": list(scene.lights[0].intensity)},
                   {"type": "sun", "direction": list(scene.lights[1].direction), "irradiance": [2, 2, 2]}],
    }
    json_path = tmp_path / "by-hand.json"
    json_path.write_text(json.dumps(by_hand))
    from_json, _ = load_scene(json_path)
    from_gltf, _ = load_scene(glb, resolution=(96, 48), spp=4)
    packed_json = pack(from_json, FolderAssets(tmp_path, from_json.assets))
    packed_gltf = pack(from_gltf, FolderAssets(tmp_path, from_gltf.assets))
    for name in ("triangles", "triangle_data", "normals", "texels", "lights", "frame"):
        assert np.array_equal(getattr(packed_json, name), getattr(packed_gltf, name)), name
    assert np.array_equal(frames.reference(device, packed_json), frames.reference(device, packed_gltf))


def _forward(scene):
    return np.subtract(scene.camera.look_at, scene.camera.position).tolist()


def test_a_glb_renders_on_the_farm_bit_identically(farm, glb, device):
    scene, document = load_scene(glb, resolution=(48, 24), spp=4)
    assets = FolderAssets(glb.parent, scene.assets)
    reference = frames.reference(device, scene, assets)
    assert reference.max() > 0
    run = farm.render(scene, document, bucket_size=16, assets=assets)
    assert np.array_equal(run.film.pixels, reference)


def test_gltf_with_separate_files_and_a_json_scene_including_it(tmp_path):
    document, binary = build_gltf(embed_image=False)
    (tmp_path / "model").mkdir()
    document["buffers"][0]["uri"] = "model%20data.bin"  # URIs are percent-encoded
    (tmp_path / "model" / "model data.bin").write_bytes(binary)
    (tmp_path / "model" / "checker.png").write_bytes(png_bytes())
    (tmp_path / "model" / "model.gltf").write_text(json.dumps(document))
    scene, _ = load_scene(tmp_path / "model" / "model.gltf")
    assert sorted(scene.assets) == ["checker.png", "model data.bin"]
    wrapper = {"version": 1, "include": [{"file": "model/model.gltf", "transform": {"translate": [0, 1, 0]}}],
               "film": {"width": 32, "height": 32, "spp": 1}}
    (tmp_path / "scene.json").write_text(json.dumps(wrapper))
    included, sent = load_scene(tmp_path / "scene.json")
    assert sorted(included.assets) == ["model/checker.png", "model/model data.bin"]
    assert included.shapes[0].transform[1][3] == 1.0  # the include's placement
    assert "include" not in sent and included.camera.position == (0, 3, 6)


@pytest.mark.parametrize("change,message", [
    (lambda d, b: d["buffers"][0].update(uri="data:application/octet-stream;base64,AAAA"), "data: URI"),
    (lambda d, b: d["buffers"][0].update(uri="../outside.bin"), "leads outside the scene's folder"),
    (lambda d, b: d["buffers"][0].update(uri="/etc/passwd"), "only relative file names"),
    (lambda d, b: d["accessors"][0].update(sparse={"count": 1}), "accessor 0 is sparse"),
    (lambda d, b: d["nodes"][2].update(children=[1]), "cycle"),
    (lambda d, b: d["asset"].update(version="1.0"), "glTF version 1.0"),
    (lambda d, b: d.update(extensionsRequired=["KHR_draco_mesh_compression"]), "KHR_draco_mesh_compression"),
    (lambda d, b: d["accessors"][0].update(componentType=5121), "is not one this farm reads"),
    (lambda d, b: d["meshes"].clear(), "malformed glTF"),
])
def test_broken_gltf_is_one_clear_error(tmp_path, change, message):
    document, binary = build_gltf()
    change(document, binary)
    path = tmp_path / "broken.glb"
    write_glb(path, document, binary)
    with pytest.raises(SceneError, match=message):
        load_scene(path)


def test_a_worker_rechecks_binary_layouts_against_the_bytes(glb):
    """A document from Redis may lie about where the geometry is: the worker reads only
    inside the file, and only indices that exist."""
    scene, document = load_scene(glb)
    assets = FolderAssets(glb.parent, scene.assets)
    size = glb.stat().st_size
    for part, change, message in [
        ("positions", {"offset": size - 8}, "lie outside the file"),
        ("indices", {"count": 7}, "do not make"),
    ]:
        broken = json.loads(json.dumps(document))
        broken["shapes"][0]["binary"][part].update(change)
        with pytest.raises(SceneError, match=message):
            pack(parse_scene(broken), assets)
    broken = json.loads(json.dumps(document))
    broken["textures"]["model.glb:texture0"]["range"] = [size - 4, 100]
    with pytest.raises(SceneError, match="outside the file"):
        pack(parse_scene(broken), assets)


def _data_uri(kind: str, data: bytes) -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _embedded() -> tuple[dict, bytes]:
    """glTF-Embedded, the standard export variant: the buffer and the image as data: URIs."""
    document, binary = build_gltf(embed_image=False)
    document["buffers"][0]["uri"] = _data_uri("application/octet-stream", binary)
    document["images"][0] = {"uri": _data_uri("image/png", png_bytes())}
    return document, binary


@pytest.mark.parametrize("suffix", [".gltf", ".glb"])
def test_embedded_data_uris_travel_in_the_file_and_pack_like_the_glb(glb, tmp_path, suffix):
    document, binary = _embedded()
    path = tmp_path / "embedded" / f"model{suffix}"
    path.parent.mkdir()
    if suffix == ".glb":  # a .glb may embed too: then without a BIN chunk
        write_glb(path, document, b"")
    else:
        path.write_text(json.dumps(document))
    scene, _ = load_scene(path)
    assert list(scene.assets) == [path.name]  # nothing written beside it, nothing else to send
    ours = pack(scene, FolderAssets(path.parent, scene.assets))
    reference, _ = load_scene(glb)
    theirs = pack(reference, FolderAssets(glb.parent, reference.assets))
    for name in ("triangles", "triangle_data", "normals", "texels"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name


def test_broken_base64_is_one_clear_error(tmp_path):
    document, _ = _embedded()
    document["buffers"][0]["uri"] = document["buffers"][0]["uri"][:60] + "!" + document["buffers"][0]["uri"][61:]
    path = tmp_path / "broken.gltf"
    path.write_text(json.dumps(document))
    scene, _ = load_scene(path)
    with pytest.raises(SceneError, match="invalid base64"):
        pack(scene, FolderAssets(tmp_path, scene.assets))


def _metallic_roughness_png() -> bytes:
    """Two texels as glTF packs them: roughness in green, metallic in blue; the left one a
    dielectric, the right one a metal."""
    pixels = np.array([[[0, 128, 0], [0, 128, 255]]], np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_metallic_is_read_per_texel_and_blends_in_the_kernel(tmp_path, device):
    document, binary = build_gltf(embed_image=False)
    document["images"] = [{"uri": "checker.png"}, {"uri": "metal-rough.png"}]
    document["textures"].append({"source": 1, "sampler": 0})
    document["materials"][1]["pbrMetallicRoughness"].update(metallicRoughnessTexture={"index": 1}, roughnessFactor=1.0)
    (tmp_path / "model.bin").write_bytes(binary)
    document["buffers"][0]["uri"] = "model.bin"
    (tmp_path / "checker.png").write_bytes(png_bytes())
    (tmp_path / "metal-rough.png").write_bytes(_metallic_roughness_png())
    (tmp_path / "model.gltf").write_text(json.dumps(document))
    scene, _ = load_scene(tmp_path / "model.gltf")
    gold = scene.materials["model.gltf:gold"]
    assert gold.kind == "principled" and gold.metallic.channel == 2 and gold.roughness.channel == 1
    assert not any("metallic" in warning for warning in scene.warnings)
    renderer = frames.renderer(device, scene, FolderAssets(tmp_path, scene.assets))
    rng = np.random.default_rng(3)
    wi, wo = (np.abs(rng.normal(size=(64, 3))) + [0, 0, 0.2] for _ in range(2))
    wi, wo = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (wi, wo))
    index = list(scene.materials).index("model.gltf:gold")
    by_texel = [renderer.eval_bsdf(index, uv, wi, wo)[0] for uv in ((0.25, 0.5), (0.75, 0.5))]
    for metallic, values in zip((0.0, 1.0), by_texel):  # each texel is the constant material it encodes
        constant = {"version": 1, "camera": {"position": [0, 0, 1], "look_at": [0, 0, 0], "fov": 40},
                    "film": {"width": 1, "height": 1, "spp": 1}, "shapes": [{"type": "sphere", "material": "m"}],
                    "materials": {"m": {"type": "principled", "base_color": [1.0, 0.8, 0.3], "metallic": metallic,
                                        "roughness": 128 / 255}}}
        expected = frames.renderer(device, constant).eval_bsdf(0, (0.5, 0.5), wi, wo)[0]
        np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-7)
    assert not np.allclose(by_texel[0], by_texel[1])


def test_every_extension_not_rendered_is_named_in_one_warning(tmp_path):
    document, binary = build_gltf()
    document["materials"][0]["extensions"] = {"KHR_materials_sheen": {}, "KHR_materials_clearcoat": {}}
    document["extensionsUsed"] += ["KHR_materials_sheen", "KHR_materials_clearcoat", "KHR_materials_volume"]
    document["materials"][0]["occlusionTexture"] = {"index": 0}
    path = tmp_path / "extended.glb"
    write_glb(path, document, binary)
    scene, _ = load_scene(path)
    named = [w for w in scene.warnings if "extensions not rendered" in w]
    assert len(named) == 1
    assert "KHR_materials_clearcoat, KHR_materials_sheen, KHR_materials_volume" in named[0]
    assert any("occlusionTexture ignored (a path tracer" in w for w in scene.warnings)


def _without_lights(document: dict) -> dict:
    document.pop("extensions")
    document["extensionsUsed"].remove("KHR_lights_punctual")
    for node in document["nodes"]:
        node.pop("extensions", None)
    return document


def test_an_emissive_map_does_not_turn_the_sky_off(tmp_path):
    document, binary = build_gltf()
    _without_lights(document)
    document["materials"][1].update(emissiveTexture={"index": 0}, emissiveFactor=[1, 1, 1])
    path = tmp_path / "glow.glb"
    write_glb(path, document, binary)
    scene, _ = load_scene(path)
    assert scene.environment is not None and scene.environment.radiance == (1.0, 1.0, 1.0)
    assert any("emissive materials add to it" in w for w in scene.warnings)
    # a scene file's own emitters are its lighting: no sky is added to those
    (tmp_path / "lamp.json").write_text(json.dumps({
        "version": 1, "include": [{"file": "glow.glb"}],
        "materials": {"lamp": {"emission": [5, 5, 5]}},
        "shapes": [{"type": "sphere", "material": "lamp", "center": [0, 4, 0], "radius": 0.5}]}))
    lamp_lit, _ = load_scene(tmp_path / "lamp.json")
    assert lamp_lit.environment is None


def test_ior_one_is_glass_that_only_tints(tmp_path):
    document, binary = build_gltf()
    document["materials"][0]["extensions"] = {"KHR_materials_transmission": {"transmissionFactor": 1.0},
                                              "KHR_materials_ior": {"ior": 1.0}}
    path = tmp_path / "thin.glb"
    write_glb(path, document, binary)
    scene, _ = load_scene(path)
    floor = scene.materials["thin.glb:floor"]
    assert floor.kind == "dielectric" and floor.ior == 1.0


def test_a_model_without_a_camera_fills_the_frame(tmp_path):
    document, binary = build_gltf()
    document["scenes"][0]["nodes"].remove(3)  # the camera's node
    path = tmp_path / "no-camera.glb"
    write_glb(path, document, binary)
    scene, _ = load_scene(path)
    assert any("no camera" in w for w in scene.warnings)
    packed = pack(scene, FolderAssets(tmp_path, scene.assets))
    vertices = packed.corners.reshape(-1, 3).astype(np.float64)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    points = np.array([[(low, high)[(i >> k) & 1][k] for k in range(3)] for i in range(8)])  # the model's box
    camera = scene.camera
    forward = np.subtract(camera.look_at, camera.position)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, camera.up)
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    relative = points - camera.position
    depth = relative @ forward
    tan_y = np.tan(np.radians(camera.fov) / 2)
    tan_x = tan_y * scene.film.width / scene.film.height
    reach = max(np.max(np.abs(relative @ right) / depth) / tan_x, np.max(np.abs(relative @ up) / depth) / tan_y)
    assert 0.85 < reach < 1.0  # the model's box spans the frame, all of it inside


def test_texture_transform_places_the_texture_as_the_extension_says(tmp_path):
    """KHR_texture_transform as the implementations and the Khronos sample model agree:
    st = offset + R S uv in glTF's uvs, R = [[cos, sin], [-sin, cos]]. The farm flips v
    both ways, so its lookup at a farm uv must be the flipped glTF lookup."""
    document, binary = build_gltf()
    transform = {"offset": [0.25, -0.5], "rotation": 0.4, "scale": [2.0, 0.5]}
    document["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["extensions"] = \
        {"KHR_texture_transform": transform}
    document["extensionsUsed"].append("KHR_texture_transform")
    path = tmp_path / "placed.glb"
    write_glb(path, document, binary)
    scene, _ = load_scene(path)
    assert not any("extensions not rendered" in w for w in scene.warnings)
    packed = pack(scene, FolderAssets(tmp_path, scene.assets))
    entry = packed.textures[0]
    rng = np.random.default_rng(5)
    for uv in rng.uniform(-1, 2, (20, 2)):
        a, b, c, d = entry["transform"]
        st = np.array([a * uv[0] + b * uv[1], c * uv[0] + d * uv[1]]) + entry["offset"][:2]
        u_g, v_g = uv[0], 1.0 - uv[1]
        cos, sin = np.cos(0.4), np.sin(0.4)
        x, y = 2.0 * u_g, 0.5 * v_g
        expected_g = np.array([0.25 + cos * x + sin * y, -0.5 - sin * x + cos * y])
        assert np.allclose(st, [expected_g[0], 1.0 - expected_g[1]], atol=1e-5)


def test_a_second_uv_set_is_read_where_a_texture_asks_for_it(tmp_path):
    document, binary = build_gltf()
    second = np.array([[0.5, 0.25], [0.75, 0.25], [0.75, 0.5], [0.5, 0.5]], np.float32)
    offset = len(binary)
    binary += second.tobytes()
    document["bufferViews"].append({"buffer": 0, "byteOffset": offset, "byteLength": second.nbytes})
    document["accessors"].append({"bufferView": len(document["bufferViews"]) - 1, "componentType": 5126,
                                  "count": 4, "type": "VEC2"})
    document["buffers"][0]["byteLength"] = len(binary)
    document["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_1"] = len(document["accessors"]) - 1
    document["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["texCoord"] = 1
    path = tmp_path / "two-sets.glb"
    write_glb(path, document, binary)
    scene, _ = load_scene(path)
    texture = scene.textures["two-sets.glb:texture0"]
    assert texture.uv_set == 1
    packed = pack(scene, FolderAssets(tmp_path, scene.assets))
    floor = packed.triangle_data[packed.triangle_data["info"][:, 3] >= 0]
    assert len(floor) == 2  # the quad's two triangles carry the second set, nothing else does
    extras = packed.extras[floor["info"][:, 3]]
    flipped = second * [1, -1] + [0, 1]  # the farm's v runs up
    corners = QUAD_INDICES.reshape(-1, 3)
    for triangle, row in zip(corners, extras):
        assert np.allclose(row["uv1_01"], np.concatenate([flipped[triangle[0]], flipped[triangle[1]]]))
        assert np.allclose(row["uv1_2"][:2], flipped[triangle[2]])


# Khronos glTF sample models, by their authors (tests/models/*/SOURCE.md: source, license)
MODELS = Path(__file__).resolve().parent / "models"
REAL_MODELS = [
    "BoxTextured/BoxTextured.gltf",  # glTF-Embedded: buffer and texture as data: URIs
    "TextureTransformTest/TextureTransformTest.gltf",  # KHR_texture_transform, no normals
    "AlphaBlendModeTest/AlphaBlendModeTest.glb",  # MASK cut-outs, BLEND, normal maps, a camera
    "ClearCoatTest/ClearCoatTest.gltf",  # normal maps, metallic-roughness texture, emission
]


def _centre_ray_hits(renderer: Renderer, frame: np.void, width: int, height: int) -> np.ndarray:
    """Whether each pixel's centre ray meets the scene (the kernel's traversal, no shading)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    sx, sy = 2.0 * (xs + 0.5) / width - 1.0, 1.0 - 2.0 * (ys + 0.5) / height
    directions = (frame["forward"][:3] + sx[..., None] * frame["right"][:3] + sy[..., None] * frame["up"][:3])
    directions = directions.reshape(-1, 3)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origins = np.broadcast_to(frame["origin"][:3], directions.shape)
    distance, _ = renderer.trace(origins, directions)
    return np.isfinite(distance).reshape(height, width)


# Three of them go through the farm; AlphaBlendModeTest (2048-pixel maps, seconds to decode
# each time a process packs the scene) renders in this process, to keep the suite's time.
ON_THE_FARM = REAL_MODELS[:2] + REAL_MODELS[3:]


@pytest.mark.parametrize("name", REAL_MODELS, ids=[n.split("/")[0] for n in REAL_MODELS])
def test_real_models_render_on_the_farm(farm, device, name):
    path = MODELS / name
    scene, document = load_scene(path, resolution=(48, 36), spp=4)
    assets = FolderAssets(path.parent, scene.assets)
    renderer = frames.renderer(device, scene, assets)
    if name in ON_THE_FARM:
        image = farm.render(scene, document, bucket_size=16, assets=assets).film.pixels
    else:
        image = renderer.render_frame()
    assert np.isfinite(image).all()
    hits = _centre_ray_hits(renderer, renderer.scene.frame[0], 48, 36)
    # Every model is lit by the default white sky of radiance 1: a pixel none of whose
    # samples meets the model is exactly 1.
    covered = ~np.all(image == 1.0, axis=2)
    assert hits.mean() > 0.15, "the model should fill a good part of the frame"
    # where the centre ray meets the model the pixel shows it; elsewhere only a pixel next
    # to one that does (its jittered samples reach over the model's edge)
    assert covered[hits].mean() > 0.97
    near = np.pad(hits, 1)
    near = np.max([near[1 + dy:near.shape[0] - 1 + dy, 1 + dx:near.shape[1] - 1 + dx]
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    assert near[covered].mean() > 0.97
    assert image[covered].mean() > 0.05, "not black"


def test_the_bundled_example_is_what_generate_assets_makes_and_converts_without_loss():
    """scenes/gltf-example.glb is the project's own (scenes/generate_assets.py writes it,
    byte for byte) and uses nothing the conversion has to warn about."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_assets", ROOT / "scenes" / "generate_assets.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    path = ROOT / "scenes" / "gltf-example.glb"
    assert generator.gltf_example() == path.read_bytes()
    scene, _ = load_scene(path)
    assert scene.warnings == ()
    kinds = {material.kind for material in scene.materials.values()}
    assert kinds == {"principled", "dielectric"}
    assert any(m.normal_map is not None for m in scene.materials.values())
    assert any(m.alpha_cutoff > 0 for m in scene.materials.values())
    assert any(isinstance(m.metallic, TextureRef) for m in scene.materials.values())


def test_the_client_checks_a_gltf_mesh_where_it_lies_without_decoding_it(glb, tmp_path, monkeypatch):
    import farm.scene.files
    from farm.scene.files import check_files

    scene, document = load_scene(glb)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the client decoded a binary mesh")

    monkeypatch.setattr(farm.scene.files, "load_binary", no_decoding)
    check_files(scene, FolderAssets(glb.parent, scene.assets))  # a sound file passes
    broken = json.loads(json.dumps(document))
    layout = broken["shapes"][0]["binary"]
    layout["indices"]["offset"] = layout["positions"]["offset"]  # floats read as indices: far too large
    with pytest.raises(SceneError, match="an index refers to vertex"):
        check_files(parse_scene(broken), FolderAssets(glb.parent, scene.assets))
    broken["shapes"][0]["binary"]["positions"]["offset"] = glb.stat().st_size
    with pytest.raises(SceneError, match="lie outside the file"):
        check_files(parse_scene(broken), FolderAssets(glb.parent, scene.assets))


def test_camera_picks_a_gltf_camera_by_its_nodes_name_over_a_json_scenes_own(tmp_path):
    document, binary = build_gltf()
    document["nodes"][3]["name"] = "front"
    document["nodes"].append({"camera": 0, "name": "top", "translation": [0, 9, 0]})
    document["scenes"][0]["nodes"].append(len(document["nodes"]) - 1)
    write_glb(tmp_path / "model.glb", document, binary)
    _, first = load_scene(tmp_path / "model.glb")
    _, top = load_scene(tmp_path / "model.glb", camera="top")
    assert first["camera"]["position"] == pytest.approx([0, 2, 6]) and top["camera"]["position"] == pytest.approx([0, 9, 0])
    (tmp_path / "scene.json").write_text(json.dumps({"version": 1, "include": [{"file": "model.glb"}], "camera": {
        "position": [1, 1, 1], "look_at": [0, 0, 0], "up": [0, 1, 0], "fov": 40}}))
    _, own = load_scene(tmp_path / "scene.json")
    _, picked = load_scene(tmp_path / "scene.json", camera="top")
    assert own["camera"]["position"] == [1, 1, 1] and picked["camera"]["position"] == pytest.approx([0, 9, 0])
    with pytest.raises(SceneError, match=r"no camera 'side'; its cameras: front, top$"):
        load_scene(tmp_path / "model.glb", camera="side")
    del document["nodes"][3]["name"]  # unnamed, as its camera: listed and picked as its node
    write_glb(tmp_path / "model.glb", document, binary)
    _, unnamed = load_scene(tmp_path / "model.glb", camera="node 3")
    assert unnamed["camera"]["position"] == pytest.approx([0, 2, 6])
