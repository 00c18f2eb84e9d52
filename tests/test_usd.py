"""USD stages (issue 32): stages written here with the `pxr` API, converted on the client
(farm.scene.usd) into the scene document every worker reads, and rendered by the kernel."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from farm.exceptions import SceneError
from farm.scene.load import load_scene
from tests.frames import reference

pxr = pytest.importorskip("pxr", reason="usd-core is not installed (pip install 'farm[usd]')")
from pxr import Sdf, Usd, UsdGeom, UsdLux, UsdShade  # noqa: E402


def _stage(path, up: str = "Y", meters: float = 1.0):
    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z if up == "Z" else UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, meters)
    return stage


def _preview(stage, path: str, **inputs) -> UsdShade.Material:
    material = UsdShade.Material.Define(stage, path)
    shader = UsdShade.Shader.Define(stage, f"{path}/Surface")
    shader.CreateIdAttr("UsdPreviewSurface")
    for name, value in inputs.items():
        kind = Sdf.ValueTypeNames.Color3f if isinstance(value, tuple) else Sdf.ValueTypeNames.Float
        shader.CreateInput(name, kind).Set(value)
    material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
    return material


def _bind(prim, material) -> None:
    UsdShade.MaterialBindingAPI.Apply(prim).Bind(material)


def test_a_z_up_stage_in_centimetres_is_converted_to_metres_y_up_its_polygons_triangulated(tmp_path):
    stage = _stage(tmp_path / "floor.usda", up="Z", meters=0.01)
    floor = UsdGeom.Mesh.Define(stage, "/World/Floor")
    floor.CreatePointsAttr([(-100, -100, 0), (100, -100, 0), (100, 100, 0), (0, 150, 0), (-100, 100, 0)])
    floor.CreateFaceVertexCountsAttr([5])
    floor.CreateFaceVertexIndicesAttr([0, 1, 2, 3, 4])
    floor.CreateSubdivisionSchemeAttr("none")
    _bind(floor.GetPrim(), _preview(stage, "/World/Red", diffuseColor=(0.8, 0.1, 0.1), roughness=0.25, metallic=1.0))
    proxy = UsdGeom.Sphere.Define(stage, "/World/Proxy")  # a proxy beside the render geometry: left out
    proxy.CreatePurposeAttr(UsdGeom.Tokens.proxy)
    stage.GetRootLayer().Save()

    scene, document = load_scene(tmp_path / "floor.usda")
    (shape,) = document["shapes"]
    vertices = np.array(shape["vertices"])
    assert len(shape["triangles"]) == 3  # a pentagon, fanned
    assert np.allclose(vertices[:, 1], 0) and np.allclose(np.abs(vertices[:, [0, 2]]).max(), 1.5)
    assert np.allclose(sorted(set(map(tuple, vertices.round(6)))),  # the stage's +y is the document's -z
                       sorted({(-1, 0, 1), (1, 0, 1), (1, 0, -1), (0, 0, -1.5), (-1, 0, -1)}))
    material = document["materials"][shape["material"]]
    assert material["type"] == "principled" and material["metallic"] == 1.0
    assert np.allclose(material["base_color"], (0.8, 0.1, 0.1)) and material["roughness"] == pytest.approx(0.25)
    # nothing lights it: the uniform sky, said in a warning; no subdivision warning for a "none" mesh
    assert document["lights"] == [{"type": "environment", "radiance": [1.0, 1.0, 1.0]}]
    assert not any("subdivision" in w for w in scene.warnings)


def test_a_stage_renders_as_the_same_scene_written_as_farm_json(tmp_path, device):
    """A sphere, a cube, a sun and a camera as a stage and as the document a user would write:
    the same image, within float32's rounding of the stage's values."""
    stage = _stage(tmp_path / "pair.usda")
    ball = UsdGeom.Sphere.Define(stage, "/Ball")
    ball.CreateRadiusAttr(0.5)
    UsdGeom.XformCommonAPI(ball).SetTranslate((-0.6, 0.5, 0))
    _bind(ball.GetPrim(), _preview(stage, "/Gold", diffuseColor=(0.9, 0.6, 0.2), roughness=0.3, metallic=1.0))
    box = UsdGeom.Cube.Define(stage, "/Box")
    box.CreateSizeAttr(0.8)
    UsdGeom.XformCommonAPI(box).SetTranslate((0.6, 0.4, 0))
    _bind(box.GetPrim(), _preview(stage, "/Grey", diffuseColor=(0.5, 0.5, 0.5)))
    sun = UsdLux.DistantLight.Define(stage, "/Sun")
    sun.CreateIntensityAttr(3.0)
    sun.CreateAngleAttr(0.0)
    UsdGeom.XformCommonAPI(sun).SetRotate((-60, 0, 0))  # its -z turned towards -y
    camera = UsdGeom.Camera.Define(stage, "/Camera")
    camera.CreateFocalLengthAttr(50)
    camera.CreateVerticalApertureAttr(24)
    camera.CreateHorizontalApertureAttr(32)
    UsdGeom.XformCommonAPI(camera).SetTranslate((0, 0.5, 5))
    stage.GetRootLayer().Save()
    _, converted = load_scene(tmp_path / "pair.usda", spp=16, resolution=(48, 36))

    theta = math.radians(-60)
    written = {
        "version": 1, "film": {"width": 48, "height": 36, "spp": 16},
        "camera": {"position": [0, 0.5, 5], "look_at": [0, 0.5, 4], "up": [0, 1, 0],
                   "fov": math.degrees(2 * math.atan(12 / 50)), "fov_axis": "y"},
        "materials": {"gold": {"type": "principled", "base_color": [0.9, 0.6, 0.2], "metallic": 1.0,
                               "roughness": 0.3, "ior": 1.5},
                      "grey": {"type": "principled", "base_color": [0.5, 0.5, 0.5], "metallic": 0.0,
                               "roughness": 0.5, "ior": 1.5}},
        "shapes": [{"type": "sphere", "material": "gold", "center": [-0.6, 0.5, 0], "radius": 0.5},
                   {"type": "box", "material": "grey", "transform": {"scale": 0.4, "translate": [0.6, 0.4, 0]}}],
        "lights": [{"type": "sun", "direction": [0, math.sin(theta), -math.cos(theta)], "irradiance": [3, 3, 3]}],
    }
    ours, theirs = reference(device, converted), reference(device, written)
    assert ours.mean() > 0.01, "the scene is lit"
    assert np.abs(ours - theirs).max() < 1e-3, np.abs(ours - theirs).max()
    assert converted["camera"]["fov"] == pytest.approx(written["camera"]["fov"])


def test_an_emitter_lands_in_the_frame_where_the_camera_model_says(tmp_path, device):
    """A small bright sphere at a known place of a Z-up stage in centimetres, seen by a
    camera of known focal length and apertures: its pixel is where a pinhole puts it."""
    stage = _stage(tmp_path / "dot.usda", up="Z", meters=0.01)
    dot = UsdGeom.Sphere.Define(stage, "/Dot")
    dot.CreateRadiusAttr(4)
    UsdGeom.XformCommonAPI(dot).SetTranslate((60, 0, 30))  # metres: (0.6, 0.3) right of and above the axis
    _bind(dot.GetPrim(), _preview(stage, "/Glow", diffuseColor=(0, 0, 0), emissiveColor=(50.0, 50.0, 50.0)))
    camera = UsdGeom.Camera.Define(stage, "/Camera")
    camera.CreateFocalLengthAttr(35)
    camera.CreateHorizontalApertureAttr(36)
    camera.CreateVerticalApertureAttr(24)
    UsdGeom.XformCommonAPI(camera).SetTranslate((0, -400, 0))  # 4 m back along the stage's -y
    UsdGeom.XformCommonAPI(camera).SetRotate((90, 0, 0))  # its -z turned to the stage's +y
    stage.GetRootLayer().Save()
    width, height = 120, 80
    _, document = load_scene(tmp_path / "dot.usda", spp=4, resolution=(width, height))
    image = reference(device, document).sum(axis=2)
    row, column = np.unravel_index(np.argmax(image), image.shape)
    # a pinhole: x on the film = f X / Z, the film 36 x 24 mm across the frame
    expected_x = width / 2 + (35 * 0.6 / 4.0) / 36 * width
    expected_y = height / 2 - (35 * 0.3 / 4.0) / 24 * height
    assert abs(column + 0.5 - expected_x) <= 1.5 and abs(row + 0.5 - expected_y) <= 1.5, (row, column)


def test_geom_subsets_keep_their_own_materials_and_face_varying_values_their_corners(tmp_path):
    stage = _stage(tmp_path / "subsets.usda")
    mesh = UsdGeom.Mesh.Define(stage, "/Strip")
    mesh.CreatePointsAttr([(0, 0, 0), (1, 0, 0), (2, 0, 0), (0, 1, 0), (1, 1, 0), (2, 1, 0)])
    mesh.CreateFaceVertexCountsAttr([4, 4])
    mesh.CreateFaceVertexIndicesAttr([0, 1, 4, 3, 1, 2, 5, 4])
    mesh.CreateSubdivisionSchemeAttr("catmullClark")
    st = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray,
                                                  UsdGeom.Tokens.faceVarying)
    st.Set([(0, 0), (0.5, 0), (0.5, 1), (0, 1), (0.5, 0), (1, 0), (1, 1), (0.5, 1)])
    _bind(mesh.GetPrim(), _preview(stage, "/Blue", diffuseColor=(0.1, 0.1, 0.9)))
    second = UsdGeom.Subset.CreateGeomSubset(mesh, "second", UsdGeom.Tokens.face, [1], "materialBind")
    _bind(second.GetPrim(), _preview(stage, "/Green", diffuseColor=(0.1, 0.9, 0.1)))
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "subsets.usda")
    first, other = document["shapes"]
    assert first["material"].endswith("/Blue") and other["material"].endswith("/Green")
    assert np.array(first["vertices"])[:, 0].max() == 1 and np.array(other["vertices"])[:, 0].min() == 1
    assert np.array(first["uvs"])[:, 0].max() == pytest.approx(0.5) and np.array(other["uvs"])[:, 0].min() == 0.5
    assert any("1 subdivision surface(s) rendered as their control cages" in w for w in scene.warnings)


def test_a_stage_without_usd_core_is_refused_in_one_line(tmp_path, monkeypatch):
    stage = _stage(tmp_path / "any.usda")
    UsdGeom.Sphere.Define(stage, "/Ball")
    stage.GetRootLayer().Save()
    monkeypatch.setitem(sys.modules, "pxr", None)  # import pxr fails, as where usd-core is not installed
    with pytest.raises(SceneError, match=r"any\.usda: reading USD needs usd-core: pip install 'farm\[usd\]'"):
        load_scene(tmp_path / "any.usda")


def test_what_production_stages_do_is_read_as_they_mean_it(tmp_path):
    """From a review of the first slice: points written only as time samples, a point
    instancer's prototypes under it, a `full` binding, a material's interface input,
    `primvars:normals` over `normals`, a prim scaled to nothing, faces of two corners, a
    camera with an fStop and no focus distance."""
    stage = _stage(tmp_path / "production.usda")
    stage.SetStartTimeCode(1)
    stage.SetEndTimeCode(10)
    cache = UsdGeom.Mesh.Define(stage, "/Cache")  # a Houdini or Maya cache: samples only
    cache.GetPointsAttr().Set([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)], 1.0)
    cache.GetPointsAttr().Set([(5, 0, 0), (6, 0, 0), (6, 1, 0), (5, 1, 0)], 10.0)
    cache.CreateFaceVertexCountsAttr([4, 2])
    cache.CreateFaceVertexIndicesAttr([0, 1, 2, 3, 0, 1])
    normals = UsdGeom.PrimvarsAPI(cache).CreatePrimvar("normals", Sdf.ValueTypeNames.Normal3fArray,
                                                       UsdGeom.Tokens.vertex)
    normals.Set([(0, 0, 1)] * 4)
    cache.CreateNormalsAttr([(0, 0, -1)] * 4)  # the primvar wins
    material = UsdShade.Material.Define(stage, "/Looks/Paint")
    interface = material.CreateInput("base", Sdf.ValueTypeNames.Color3f)
    interface.Set((0.2, 0.7, 0.3))
    shader = UsdShade.Shader.Define(stage, "/Looks/Paint/Surface")
    shader.CreateIdAttr("UsdPreviewSurface")
    shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(interface)
    material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
    UsdShade.MaterialBindingAPI.Apply(cache.GetPrim()).Bind(material, materialPurpose=UsdShade.Tokens.full)
    instancer = UsdGeom.PointInstancer.Define(stage, "/Forest")
    UsdGeom.Sphere.Define(stage, "/Forest/Prototypes/Tree")
    gone = UsdGeom.Sphere.Define(stage, "/Flat")
    UsdGeom.XformCommonAPI(gone).SetScale((0, 0, 0))
    camera = UsdGeom.Camera.Define(stage, "/Camera")
    camera.CreateFStopAttr(2.8)
    UsdGeom.XformCommonAPI(camera).SetTranslate((0.5, 0.5, 5))
    stage.GetRootLayer().Save()
    assert instancer
    scene, document = load_scene(tmp_path / "production.usda")
    (shape,) = document["shapes"]  # the cache's quad only: no prototype, nothing scaled to nothing
    assert np.array(shape["vertices"])[:, 0].max() == 1.0, "read at the stage's start"
    assert len(shape["triangles"]) == 2 and np.allclose(shape["normals"], [0, 0, 1])
    assert np.allclose(document["materials"][shape["material"]]["base_color"], (0.2, 0.7, 0.3))
    assert "aperture_radius" not in document["camera"]
    said = " ".join(scene.warnings)
    for words in ("point instancers are not rendered", "scaled to nothing", "fewer than three corners",
                  "fStop without a focusDistance", "read at its start time code"):
        assert words in said, words


def test_a_malformed_stage_is_refused_in_one_line(tmp_path):
    (tmp_path / "broken.usda").write_text("#usda 1.0\ndef Mesh \"M\" {\n  point3f[] points = [(0, 0\n")
    (tmp_path / "noise.usdc").write_bytes(bytes(range(256)) * 8)
    for name in ("broken.usda", "noise.usdc"):
        with pytest.raises(SceneError) as raised:
            load_scene(tmp_path / name)
        assert str(raised.value).startswith(f"{name}: cannot read the USD stage") and "\n" not in str(raised.value)
