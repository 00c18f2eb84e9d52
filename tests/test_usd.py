"""USD stages (issue 32): stages written here with the `pxr` API, converted on the client
(farm.scene.usd) into the scene document every worker reads, and rendered by the kernel."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from farm.exceptions import SceneError
from farm.protocol.assets import FolderAssets
from farm.scene.load import load_scene
from tests.files import ROOT
from tests.frames import reference

pxr = pytest.importorskip("pxr", reason="usd-core is not installed (pip install 'farm[usd]')")
from pxr import Sdf, Usd, UsdGeom, UsdLux, UsdShade  # noqa: E402


def _corners(shape: dict) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A converted mesh's triangles in the document's space, a vertex per corner, from the
    stage's mesh file (a generated file): vertices, unit normals (or None), uvs (or None)."""
    from farm.scene.mesh import load_binary

    assert shape["file"].startswith("<generated>/") and "vertices" not in shape
    mesh = load_binary(shape["file"], FolderAssets(".").read(shape["file"]), shape["binary"])
    matrix = np.array(shape["transform"]["matrix"])
    vertices = mesh.vertices @ matrix[:3, :3].T + matrix[:3, 3]
    normals = None
    if mesh.normals is not None:
        normals = mesh.normals @ np.linalg.inv(matrix[:3, :3])  # rows: n' = inverse(M)^T n
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return vertices, normals, mesh.uvs


def _stage(path, up: str = "Y", meters: float = 1.0, frames: tuple[int, int] | None = None, fps: float | None = None):
    """A new stage; `frames`: its start and end time codes, `fps` its time codes a second."""
    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z if up == "Z" else UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, meters)
    if frames is not None:
        stage.SetStartTimeCode(frames[0])
        stage.SetEndTimeCode(frames[1])
    if fps is not None:
        stage.SetTimeCodesPerSecond(fps)
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
    vertices, _, _ = _corners(shape)
    assert len(vertices) == 3 * 3  # a pentagon, fanned
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
    """A sphere, a cube, a mirrored floor with authored normals (a mesh: the stage's mesh
    file), a sun and a camera as a stage and as the document a user would write: the same
    image, within float32's rounding of the stage's values."""
    stage = _stage(tmp_path / "pair.usda")
    ball = UsdGeom.Sphere.Define(stage, "/Ball")
    ball.CreateRadiusAttr(0.5)
    UsdGeom.XformCommonAPI(ball).SetTranslate((-0.6, 0.5, 0))
    _bind(ball.GetPrim(), _preview(stage, "/Gold", diffuseColor=(0.9, 0.6, 0.2), roughness=0.3, metallic=1.0))
    box = UsdGeom.Cube.Define(stage, "/Box")
    box.CreateSizeAttr(0.8)
    UsdGeom.XformCommonAPI(box).SetTranslate((0.6, 0.4, 0))
    _bind(box.GetPrim(), _preview(stage, "/Grey", diffuseColor=(0.5, 0.5, 0.5)))
    floor = UsdGeom.Mesh.Define(stage, "/Floor")
    floor.CreatePointsAttr([(-1, 0, -1), (1, 0, -1), (1, 0, 1), (-1, 0, 1)])
    floor.CreateFaceVertexCountsAttr([4])
    floor.CreateFaceVertexIndicesAttr([0, 3, 2, 1])
    floor.CreateNormalsAttr([(0, 1, 0)] * 4)
    floor.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    floor.CreateSubdivisionSchemeAttr("none")
    UsdGeom.XformCommonAPI(floor).SetScale((-2, 1, 2))  # mirrored: its front stays up
    _bind(floor.GetPrim(), UsdShade.Material(stage.GetPrimAtPath("/Grey")))
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
    scene, converted = load_scene(tmp_path / "pair.usda", spp=16, resolution=(48, 36))

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
                   {"type": "box", "material": "grey", "transform": {"scale": 0.4, "translate": [0.6, 0.4, 0]}},
                   {"type": "mesh", "material": "grey", "vertices": [[2, 0, -2], [-2, 0, -2], [-2, 0, 2], [2, 0, 2]],
                    "triangles": [[0, 1, 2], [0, 2, 3]], "normals": [[0, 1, 0]] * 4}],
        "lights": [{"type": "sun", "direction": [0, math.sin(theta), -math.cos(theta)], "irradiance": [3, 3, 3]}],
    }
    ours, theirs = reference(device, converted, FolderAssets(tmp_path, scene.assets)), reference(device, written)
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
    (first_vertices, _, first_uvs), (other_vertices, _, other_uvs) = _corners(first), _corners(other)
    assert first_vertices[:, 0].max() == 1 and other_vertices[:, 0].min() == 1
    assert first_uvs[:, 0].max() == pytest.approx(0.5) and other_uvs[:, 0].min() == 0.5
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
    stage = _stage(tmp_path / "production.usda", frames=(1, 10))
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
    (shape,) = document["shapes"]  # the cache's quad only: no prototype (no instances), nothing scaled to nothing
    vertices, normals, _ = _corners(shape)
    assert vertices[:, 0].max() == 1.0, "read at the stage's start"
    assert len(vertices) == 2 * 3 and np.allclose(normals, [0, 0, 1])
    assert np.allclose(document["materials"][shape["material"]]["base_color"], (0.2, 0.7, 0.3))
    assert "aperture_radius" not in document["camera"]
    said = " ".join(scene.warnings)
    for words in ("scaled to nothing", "fewer than three corners", "fStop without a focusDistance"):
        assert words in said, words
    assert "deforming" not in said and len(shape["morph"]["targets"]) == 10 - 1  # it deforms: a key a time code


def test_a_malformed_stage_is_refused_in_one_line(tmp_path):
    (tmp_path / "broken.usda").write_text("#usda 1.0\ndef Mesh \"M\" {\n  point3f[] points = [(0, 0\n")
    (tmp_path / "noise.usdc").write_bytes(bytes(range(256)) * 8)
    for name in ("broken.usda", "noise.usdc"):
        with pytest.raises(SceneError) as raised:
            load_scene(tmp_path / name)
        assert str(raised.value).startswith(f"{name}: cannot read the USD stage") and "\n" not in str(raised.value)
    stage = _stage(tmp_path / "units.usda", meters=-1.0)
    UsdGeom.Sphere.Define(stage, "/Ball")
    stage.GetRootLayer().Save()
    with pytest.raises(SceneError, match=r"^units.usda: metersPerUnit is -1.0: not a positive number$"):
        load_scene(tmp_path / "units.usda")


def _grid(stage, path: str, side: int) -> UsdGeom.Mesh:
    """A flat grid of side x side quads in the xy plane, one unit across."""
    mesh = UsdGeom.Mesh.Define(stage, path)
    ticks = np.linspace(-0.5, 0.5, side + 1)
    mesh.CreatePointsAttr([(float(x), float(y), 0.0) for y in ticks for x in ticks])
    corner = (np.arange(side)[:, None] * (side + 1) + np.arange(side)[None, :]).reshape(-1)
    quads = np.stack([corner, corner + 1, corner + side + 2, corner + side + 1], axis=1)
    mesh.CreateFaceVertexCountsAttr([4] * len(quads))
    mesh.CreateFaceVertexIndicesAttr(quads.reshape(-1).tolist())
    mesh.CreateSubdivisionSchemeAttr("none")
    return mesh


def test_a_stage_of_many_triangles_travels_as_a_mesh_file_not_in_the_document(tmp_path):
    """125,000 triangles: inline, the document would be about 15 MB and pass
    FARM_MAX_SCENE_BYTES; the meshes go in one generated file, named by its content, which
    the scene records and uploads as any file it names."""
    from farm.protocol.assets import digest_of

    stage = _stage(tmp_path / "big.usda")
    _grid(stage, "/Floor", 250)
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "big.usda")
    (shape,) = document["shapes"]
    assert len(json.dumps(document)) < 5_000
    vertices, _, _ = _corners(shape)
    assert len(vertices) == 3 * 125_000 and np.allclose(vertices.min(axis=0), [-0.5, -0.5, 0])
    data = FolderAssets(tmp_path).read(shape["file"])
    assert scene.assets == {shape["file"]: digest_of(data)} and shape["file"].endswith(f"{digest_of(data)}.bin")


def test_scenegraph_instances_share_their_prototypes_triangles(tmp_path):
    """400 instances of a 512-triangle prototype: the mesh file holds it once, and the packed
    scene keeps its triangles once, placed 400 times (the kernel's two-level walk)."""
    from farm.scene.pack import pack

    stage = _stage(tmp_path / "instances.usda")
    _grid(stage, "/Prototypes/Tile/Mesh", 16)
    for i in range(400):
        tile = stage.DefinePrim(f"/World/Tile{i}", "Xform")
        tile.GetReferences().AddInternalReference("/Prototypes/Tile")
        tile.SetInstanceable(True)
        UsdGeom.XformCommonAPI(tile).SetTranslate((float(i % 20) * 1.1, float(i // 20) * 1.1, 0.0))
    stage.GetPrimAtPath("/Prototypes").SetSpecifier(Sdf.SpecifierClass)  # a class: not drawn itself
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "instances.usda")
    assert len(document["shapes"]) == 400
    assert len({json.dumps(shape["binary"]) for shape in document["shapes"]}) == 1
    assert FolderAssets(tmp_path).size(document["shapes"][0]["file"]) == 512 * 3 * 12  # float32 xyz a corner
    packed = pack(scene, FolderAssets(tmp_path, scene.assets))
    assert len(packed.triangles) == 512 and len(packed.instances) == 400


def test_camera_picks_a_stages_camera_by_prim_path_and_names_them_when_wrong(tmp_path):
    stage = _stage(tmp_path / "cameras.usda")
    UsdGeom.Sphere.Define(stage, "/Ball")
    for name, z in (("Wide", 5.0), ("Close", 2.0)):
        camera = UsdGeom.Camera.Define(stage, f"/Cameras/{name}")
        UsdGeom.XformCommonAPI(camera).SetTranslate((0.0, 0.0, z))
    stage.GetRootLayer().Save()
    _, first = load_scene(tmp_path / "cameras.usda")
    _, close = load_scene(tmp_path / "cameras.usda", camera="/Cameras/Close")
    assert first["camera"]["position"] == pytest.approx([0, 0, 5]) and close["camera"]["position"] == pytest.approx([0, 0, 2])
    with pytest.raises(SceneError, match=r"no camera '/Close'; its cameras: /Cameras/Wide, /Cameras/Close$"):
        load_scene(tmp_path / "cameras.usda", camera="/Close")


def test_cylinders_cones_capsules_and_planes_become_triangles_of_their_true_size(tmp_path):
    """Each along its own axis, of its own size: the tessellation's box is the surface's,
    every triangle faces the way its normals point (outwards), and a cylinder's area is the
    true one within the polygon's 0.2%. Prims of one size share one block of the mesh file."""
    stage = _stage(tmp_path / "implicit.usda")

    def made(kind: str, path: str, **attributes):
        prim = getattr(UsdGeom, kind).Define(stage, path)
        for name, value in attributes.items():
            getattr(prim, f"Create{name}Attr")(value)
        return prim

    made("Cylinder", "/Cylinder", Radius=0.5, Height=2.0, Axis="X")
    twin = made("Cylinder", "/Twin", Radius=0.5, Height=2.0, Axis="X")
    UsdGeom.XformCommonAPI(twin).SetTranslate((0.0, 5.0, 0.0))
    made("Cone", "/Cone", Radius=1.0, Height=3.0, Axis="Y")
    made("Capsule", "/Capsule", Radius=0.25, Height=1.0)  # along Z, the default
    made("Plane", "/Plane", Width=4.0, Length=2.0, Axis="Y")  # width along x, length along z
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "implicit.usda")
    shapes = {name: shape for name, shape in zip(("cylinder", "twin", "cone", "capsule", "plane"), document["shapes"])}
    assert len(document["shapes"]) == 5 and shapes["cylinder"]["binary"] == shapes["twin"]["binary"]
    boxes = {"cylinder": ([-1, -0.5, -0.5], [1, 0.5, 0.5]), "cone": ([-1, -1.5, -1], [1, 1.5, 1]),
             "capsule": ([-0.25, -0.25, -0.75], [0.25, 0.25, 0.75]), "plane": ([-2, 0, -1], [2, 0, 1])}
    for name, (lower, upper) in boxes.items():
        vertices, normals, _ = _corners(shapes[name])
        assert np.allclose(vertices.min(axis=0), lower, atol=1e-6) and np.allclose(vertices.max(axis=0), upper, atol=1e-6), name
        corners = vertices.reshape(-1, 3, 3)
        facing = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        assert ((facing * normals.reshape(-1, 3, 3).sum(axis=1)).sum(axis=1) >= 0).all(), name
        assert np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-6)
    corners = _corners(shapes["cylinder"])[0].reshape(-1, 3, 3)
    area = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum() / 2
    assert area == pytest.approx(2 * math.pi * 0.5 * 2 + 2 * math.pi * 0.25, rel=2e-3)
    assert not any("not rendered" in warning for warning in scene.warnings)


def test_time_sampled_transforms_place_each_frame_where_usd_does(tmp_path):
    """A cube sliding and turning, under a parent that rises, and a camera dollying: each
    frame of `--frames` (time code F at F / timeCodesPerSecond seconds) poses them as USD's
    own local-to-world matrix at F says; the shot spans the stage's time range."""
    from farm.scene import parse_scene

    stage = _stage(tmp_path / "shot.usda", up="Z", meters=0.01, frames=(1, 24), fps=24)
    parent = UsdGeom.Xform.Define(stage, "/Rig")
    lift = parent.AddTranslateOp()
    lift.Set((0, 0, 0), 1)
    lift.Set((0, 0, 100), 24)
    cube = UsdGeom.Cube.Define(stage, "/Rig/Box")
    cube.CreateSizeAttr(50)
    slide, turn = cube.AddTranslateOp(), cube.AddRotateZOp()
    slide.Set((0, 0, 0), 1)
    slide.Set((200, 0, 0), 24)
    turn.Set(0, 1)
    turn.Set(270, 24)  # more than half a turn between the keys: the frames in between keep USD's path
    camera = UsdGeom.Camera.Define(stage, "/Camera")
    dolly = camera.AddTranslateOp()
    dolly.Set((0, -500, 100), 1)
    dolly.Set((0, -300, 100), 24)
    camera.AddRotateXOp().Set(90)
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "shot.usda")
    assert scene.animation == pytest.approx((1 / 24, 1.0))
    frame = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]]) @ np.diag([0.01, 0.01, 0.01, 1])
    for code in (1, 7, 12.5, 24):
        posed = parse_scene(json.loads(json.dumps(document)), time=code / 24)
        usd_cube = frame @ np.array(cube.ComputeLocalToWorldTransform(Usd.TimeCode(code))).T @ np.diag([25, 25, 25, 1])
        assert np.allclose(posed.shapes[0].transform, usd_cube, atol=1e-9 if code == int(code) else 1e-2), code
        usd_camera = frame @ np.array(camera.ComputeLocalToWorldTransform(Usd.TimeCode(code))).T
        assert np.allclose(posed.camera.position, usd_camera[:3, 3], atol=1e-9 if code == int(code) else 1e-2)


def test_a_point_instancers_instances_share_their_prototypes(tmp_path):
    """1,000 instances of two prototypes (a 512-triangle tile and a sphere), each placed by
    its position, orientation and scale as USD computes it, one hidden by invisibleIds: the
    tile's triangles are packed once, under 500 placements."""
    from pxr import Gf, Vt

    from farm.scene.pack import pack

    stage = _stage(tmp_path / "forest.usda")
    forest = UsdGeom.PointInstancer.Define(stage, "/Forest")
    UsdGeom.XformCommonAPI(forest).SetTranslate((0.0, 1.0, 0.0))
    _grid(stage, "/Forest/Prototypes/Tile", 16)
    UsdGeom.Sphere.Define(stage, "/Forest/Prototypes/Ball").CreateRadiusAttr(0.25)
    forest.CreatePrototypesRel().SetTargets(["/Forest/Prototypes/Tile", "/Forest/Prototypes/Ball"])
    count = 1000
    forest.CreateProtoIndicesAttr([i % 2 for i in range(count)])
    forest.CreatePositionsAttr([Gf.Vec3f(i % 40, i // 40, 0) for i in range(count)])
    forest.CreateOrientationsAttr(Vt.QuathArray([Gf.Quath(Gf.Rotation(Gf.Vec3d(0, 0, 1), i).GetQuat())
                                                 for i in range(count)]))
    forest.CreateScalesAttr([Gf.Vec3f(1 + i % 3, 1 + i % 3, 1 + i % 3) for i in range(count)])
    forest.CreateInvisibleIdsAttr([7])
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "forest.usda")
    tiles = [shape for shape in document["shapes"] if shape["type"] == "mesh"]
    balls = [shape for shape in document["shapes"] if shape["type"] == "sphere"]
    assert len(tiles) == 500 and len(balls) == 499 and len({json.dumps(t["binary"]) for t in tiles}) == 1
    placements = forest.ComputeInstanceTransformsAtTime(Usd.TimeCode.Default(), Usd.TimeCode.Default(),
                                                        UsdGeom.PointInstancer.IncludeProtoXform,
                                                        UsdGeom.PointInstancer.IgnoreMask)
    world = np.array(forest.ComputeLocalToWorldTransform(Usd.TimeCode.Default())).T
    assert np.allclose(tiles[5]["transform"]["matrix"], world @ np.array(placements[10]).T)
    ball = world @ np.array(placements[9]).T
    # balls: instances 1, 3, 5, 9 (7 is hidden), ...
    assert np.allclose(balls[3]["center"], ball[:3, 3]) and balls[3]["radius"] == pytest.approx(0.25 * (1 + 9 % 3), rel=2e-3)
    packed = pack(scene, FolderAssets(tmp_path, scene.assets))
    assert len(packed.triangles) == 512 and len(packed.instances) == 500 + 1  # and the world, holding the balls


def test_opacity_and_normal_maps_become_the_farms_cut_outs_and_normal_maps(tmp_path):
    """UsdPreviewSurface's opacity with an opacityThreshold is the farm's alpha cut-out (the
    same rule: below the threshold no surface), a texture's alpha channel included; its
    `normal` from a UsdUVTexture in USD's encoding (scale 2, bias -1) a tangent-space normal
    map read as data; a mesh with it packs (tangents from its uvs)."""
    from PIL import Image

    from farm.scene.pack import pack

    Image.fromarray(np.full((4, 4, 4), (128, 128, 255, 40), np.uint8)).save(tmp_path / "bumps.png")
    stage = _stage(tmp_path / "leaf.usda")
    leaf = _grid(stage, "/Leaf", 2)
    UsdGeom.PrimvarsAPI(leaf).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex).Set(
        [(x / 2, y / 2) for y in range(3) for x in range(3)])
    material = _preview(stage, "/Leafy", diffuseColor=(0.2, 0.6, 0.1), opacityThreshold=0.5)
    surface = UsdShade.Shader(stage.GetPrimAtPath("/Leafy/Surface"))
    texture = UsdShade.Shader.Define(stage, "/Leafy/Bumps")
    texture.CreateIdAttr("UsdUVTexture")
    texture.CreateInput("file", Sdf.ValueTypeNames.Asset).Set("bumps.png")
    texture.CreateInput("scale", Sdf.ValueTypeNames.Float4).Set((2, 2, 2, 1))
    texture.CreateInput("bias", Sdf.ValueTypeNames.Float4).Set((-1, -1, -1, 0))
    rgb = texture.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
    surface.CreateInput("normal", Sdf.ValueTypeNames.Normal3f).ConnectToSource(rgb)
    alpha = UsdShade.Shader.Define(stage, "/Leafy/Cut")
    alpha.CreateIdAttr("UsdUVTexture")
    alpha.CreateInput("file", Sdf.ValueTypeNames.Asset).Set("bumps.png")
    surface.CreateInput("opacity", Sdf.ValueTypeNames.Float).ConnectToSource(
        alpha.CreateOutput("a", Sdf.ValueTypeNames.Float))
    _bind(leaf.GetPrim(), material)
    glass = _preview(stage, "/Veil", diffuseColor=(1.0, 1.0, 1.0), opacity=0.3)  # no threshold: blends in USD
    veil = _grid(stage, "/Curtain", 1)
    _bind(veil.GetPrim(), glass)
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "leaf.usda")
    leafy, veiled = (document["materials"][shape["material"]] for shape in document["shapes"])
    assert leafy["alpha"] == {"texture": "leaf.usda:/Leafy/Cut", "channel": "a"} and leafy["alpha_cutoff"] == 0.5
    assert leafy["normal_map"] == {"texture": "leaf.usda:/Leafy/Bumps", "factor": 1.0}
    assert document["textures"]["leaf.usda:/Leafy/Bumps"]["colorspace"] == "linear"
    assert veiled["alpha"] == pytest.approx(0.3) and veiled["alpha_cutoff"] == 0.5
    assert any("/Veil: opacity without an opacityThreshold" in w for w in scene.warnings)
    assert not any("not rendered" in w for w in scene.warnings)
    packed = pack(scene, FolderAssets(tmp_path, scene.assets))
    assert len(packed.extras) == 8  # the leaf's triangles carry tangents; the veil's do not


def test_a_rotated_dome_turns_its_map_as_usd_does(tmp_path):
    """USD's latitude-longitude map is OpenEXR's, as the kernel's: a dome turned 90 degrees
    about +y brings the map's centre (+z) to +x; a DomeLight_1 on a Z-up stage has its pole
    on the stage's up axis, which the document's +y is."""
    (tmp_path / "sky.hdr").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 4\n" + bytes([128, 128, 128, 129]) * 8)
    stage = _stage(tmp_path / "turned.usda")
    UsdGeom.Sphere.Define(stage, "/Ball")
    dome = UsdLux.DomeLight.Define(stage, "/Sky")
    dome.CreateTextureFileAttr("sky.hdr")
    UsdGeom.XformCommonAPI(dome).SetRotate((0, 90, 0))
    stage.GetRootLayer().Save()
    _, document = load_scene(tmp_path / "turned.usda")
    (sky,) = document["lights"]
    turn = np.array(sky["transform"]["matrix"])[:3, :3]
    assert np.allclose(turn @ [0, 0, 1], [1, 0, 0]) and np.allclose(turn @ [0, 1, 0], [0, 1, 0])

    stage = _stage(tmp_path / "z_up.usda", up="Z")
    UsdGeom.Sphere.Define(stage, "/Ball")
    UsdLux.DomeLight_1.Define(stage, "/Sky").CreateTextureFileAttr("sky.hdr")
    stage.GetRootLayer().Save()
    _, document = load_scene(tmp_path / "z_up.usda")
    (sky,) = document["lights"]
    pole = np.array(sky.get("transform", {"matrix": np.eye(4).tolist()})["matrix"])[:3, :3] @ [0, 1, 0]
    assert np.allclose(pole, [0, 1, 0])


def test_a_turning_dome_turns_its_map_each_frame(tmp_path):
    """A dome keyed from 0 to 90 degrees about +y over a shot: each frame's map is turned as
    USD turns the dome then (its centre, +z, towards +x); a dome on a rig node in a document
    gives its own turn as a matrix (one line otherwise)."""
    from farm.scene import parse_scene

    (tmp_path / "sky.hdr").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 4\n" + bytes([128, 128, 128, 129]) * 8)
    stage = _stage(tmp_path / "turning.usda", frames=(1, 3), fps=24)
    UsdGeom.Sphere.Define(stage, "/Ball")
    dome = UsdLux.DomeLight.Define(stage, "/Sky")
    dome.CreateTextureFileAttr("sky.hdr")
    spin = dome.AddRotateYOp()
    spin.Set(0.0, 1)
    spin.Set(90.0, 3)
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "turning.usda")
    assert not any("stays where it is at the start" in w for w in scene.warnings)
    for code, degrees in ((1, 0.0), (2, 45.0), (3, 90.0)):
        sky = parse_scene(json.loads(json.dumps(document)), time=code / 24).environment
        turn = np.array(sky.transform)[:3, :3]
        angle = math.radians(degrees)
        assert np.allclose(turn @ [0, 0, 1], [math.sin(angle), 0, math.cos(angle)], atol=1e-9), code
    document["lights"][0]["transform"] = {"rotate": {"axis": [0, 1, 0], "angle": 10}}
    with pytest.raises(SceneError, match=r"lights\[0\].transform: a dome turned by a rig node gives its own turn as a "
                                         r"matrix"):
        parse_scene(document, time=0.0)


def test_a_usdz_packages_textures_are_read_in_place_and_travel_as_files(tmp_path):
    """A .usdz holding its stage and its texture: the texture is read out of the package by
    USD's resolver and travels as a generated file, so the scene packs and renders it."""
    from PIL import Image
    from pxr import UsdUtils

    from farm.scene.pack import pack

    Image.fromarray(np.full((4, 4, 3), (200, 20, 20), np.uint8)).save(tmp_path / "red.png")
    stage = _stage(tmp_path / "model.usda")
    quad = _grid(stage, "/Quad", 1)
    UsdGeom.PrimvarsAPI(quad).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex).Set(
        [(0, 0), (1, 0), (0, 1), (1, 1)])
    material = _preview(stage, "/Paint", roughness=0.5)
    texture = UsdShade.Shader.Define(stage, "/Paint/Red")
    texture.CreateIdAttr("UsdUVTexture")
    texture.CreateInput("file", Sdf.ValueTypeNames.Asset).Set("red.png")
    UsdShade.Shader(stage.GetPrimAtPath("/Paint/Surface")).CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f) \
        .ConnectToSource(texture.CreateOutput("rgb", Sdf.ValueTypeNames.Float3))
    _bind(quad.GetPrim(), material)
    stage.GetRootLayer().Save()
    package = tmp_path / "package"
    package.mkdir()
    assert UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(tmp_path / "model.usda")), str(package / "model.usdz"))
    scene, document = load_scene(package / "model.usdz")
    (texture_entry,) = document["textures"].values()
    assert texture_entry["file"].startswith("<generated>/") and texture_entry["file"].endswith(".png")
    assert texture_entry["file"] in scene.assets and not any("not a file under" in w for w in scene.warnings)
    packed = pack(scene, FolderAssets(package, scene.assets))
    assert len(packed.texels) == 4 * 4 * 3 and np.allclose(packed.texels[:3], [0.5776, 0.0070, 0.0070], atol=1e-4)  # sRGB 200, 20, 20


USD_WG = ROOT / "tests" / "models" / "usd-wg"  # real stages from the USD Working Group (SOURCE.md there)


def test_a_payload_over_a_reference_composes_as_usd_says(device):
    """usd-wg's composition puzzle: the prim's payload and reference disagree on the ball's
    radius; the document has what usd-core composes, in metres (the stage is in centimetres)."""
    path = USD_WG / "PayloadAndReference" / "shot.usda"
    stage = Usd.Stage.Open(str(path))
    composed = UsdGeom.Sphere(stage.GetPrimAtPath("/World/Character")).GetRadiusAttr().Get()
    scene, document = load_scene(path, spp=4, resolution=(24, 24))
    (ball,) = document["shapes"]
    assert ball["type"] == "sphere" and ball["radius"] == pytest.approx(composed * 0.01) and composed == 14
    image = reference(device, document)
    assert image[12, 12].mean() > 0.05, "the ball fills the middle of the framed frame"


def test_the_usd_wg_utah_teapot_renders_its_default_variants(device):
    """usd-wg's Teapot: a payload, a sublayer of materials, model and shading variants (Utah,
    CeramicLimeGreen by default) and a primvar reader of displayColor feeding the preview
    surface: the triangles and the colour USD composes, the subdivision cage said once."""
    path = USD_WG / "Teapot" / "Teapot.usd"
    stage = Usd.Stage.Open(str(path), Usd.Stage.LoadAll)
    geometry = UsdGeom.Mesh(stage.GetPrimAtPath("/Teapot/Geometry"))
    triangles = sum(count - 2 for count in geometry.GetFaceVertexCountsAttr().Get())
    colour = UsdGeom.PrimvarsAPI(geometry).FindPrimvarWithInheritance("displayColor").ComputeFlattened()[0]
    scene, document = load_scene(path, spp=4, resolution=(32, 24))
    (teapot,) = document["shapes"]
    assert teapot["binary"]["positions"]["count"] == 3 * triangles
    material = document["materials"][teapot["material"]]
    assert np.allclose(material["base_color"], colour) and material["roughness"] == pytest.approx(0.125)
    assert sum("rendered as their control cages" in w for w in scene.warnings) == 1
    assert not any("network is not rendered" in w for w in scene.warnings)
    image = reference(device, document, FolderAssets(path.parent, scene.assets))
    middle = image[10:14, 14:18].mean(axis=(0, 1))
    assert middle[1] > middle[2] and middle[1] > 0.05, "lime green in the middle of the frame"


def test_moving_suns_and_point_lights_are_placed_each_frame(tmp_path):
    """A DistantLight turning and a point-like SphereLight sliding: each frame's sun points
    along the light's -z and the point light stands where USD puts them."""
    from farm.scene import parse_scene

    stage = _stage(tmp_path / "lights.usda", frames=(0, 10))
    UsdGeom.Sphere.Define(stage, "/Ball")
    sun = UsdLux.DistantLight.Define(stage, "/Sun")
    turn = sun.AddRotateXOp()
    turn.Set(-10, 0)
    turn.Set(-80, 10)
    bulb = UsdLux.SphereLight.Define(stage, "/Bulb")
    bulb.CreateTreatAsPointAttr(True)
    slide = bulb.AddTranslateOp()
    slide.Set((0, 2, 0), 0)
    slide.Set((4, 2, 0), 10)
    stage.GetRootLayer().Save()
    _, document = load_scene(tmp_path / "lights.usda")
    for code in (0, 5, 10):
        posed = parse_scene(json.loads(json.dumps(document)), time=code / 24)
        sun_light, point = sorted(posed.lights, key=lambda light: type(light).__name__, reverse=True)
        angle = math.radians(-10 - 7 * code)
        direction = np.array(sun_light.direction) / np.linalg.norm(sun_light.direction)
        assert np.allclose(direction, [0, math.sin(angle), -math.cos(angle)], atol=1e-9), code  # -z turned about x
        assert np.allclose(point.position, [0.4 * code, 2, 0], atol=1e-9), code


def test_a_preview_surface_is_the_same_material_as_its_gltf_twin(tmp_path):
    """UsdPreviewSurface and glTF's metallic-roughness model, written with the same values,
    become the same farm material (so they render alike)."""
    import base64
    import struct

    stage = _stage(tmp_path / "twin.usda")
    quad = _grid(stage, "/Quad", 1)
    _bind(quad.GetPrim(), _preview(stage, "/Brass", diffuseColor=(0.8, 0.5, 0.2), metallic=0.75, roughness=0.3))
    stage.GetRootLayer().Save()
    _, from_usd = load_scene(tmp_path / "twin.usda")
    positions = struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0)
    gltf = {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
            "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "material": 0}]}],
            "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [0.8, 0.5, 0.2, 1.0], "metallicFactor": 0.75,
                                                    "roughnessFactor": 0.3}}],
            "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                           "min": [0, 0, 0], "max": [1, 1, 0]}],
            "bufferViews": [{"buffer": 0, "byteLength": 36}],
            "buffers": [{"byteLength": 36, "uri": "data:application/octet-stream;base64," + base64.b64encode(positions).decode()}]}
    (tmp_path / "twin.gltf").write_text(json.dumps(gltf))
    _, from_gltf = load_scene(tmp_path / "twin.gltf")
    (usd_material,), (gltf_material,) = from_usd["materials"].values(), from_gltf["materials"].values()
    assert usd_material.keys() == gltf_material.keys()
    for key, value in usd_material.items():
        assert value == (pytest.approx(gltf_material[key], abs=1e-7) if key != "type" else gltf_material[key]), key


def test_texture_wrap_modes_are_read(tmp_path):
    """wrapS and wrapT: mirror and clamp as the farm's; a mode it lacks (black), or two that
    differ, as the nearest one with a warning."""
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "dark.png")
    stage = _stage(tmp_path / "wraps.usda")
    for number, (s_mode, t_mode) in enumerate((("mirror", "mirror"), ("clamp", "clamp"), ("black", "black"),
                                                ("repeat", "mirror"), (None, None))):
        quad = _grid(stage, f"/Quad{number}", 1)
        material = _preview(stage, f"/Look{number}")
        texture = UsdShade.Shader.Define(stage, f"/Look{number}/Dark")
        texture.CreateIdAttr("UsdUVTexture")
        texture.CreateInput("file", Sdf.ValueTypeNames.Asset).Set("dark.png")
        for axis, mode in (("wrapS", s_mode), ("wrapT", t_mode)):
            if mode:
                texture.CreateInput(axis, Sdf.ValueTypeNames.Token).Set(mode)
        UsdShade.Shader(stage.GetPrimAtPath(f"/Look{number}/Surface")).CreateInput(
            "diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(texture.CreateOutput("rgb", Sdf.ValueTypeNames.Float3))
        _bind(quad.GetPrim(), material)
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "wraps.usda")
    wraps = [document["textures"][f"wraps.usda:/Look{n}/Dark"].get("wrap", "repeat") for n in range(5)]
    assert wraps == ["mirror", "clamp", "clamp", "repeat", "repeat"]
    said = " ".join(scene.warnings)
    assert "wraps black, black read as clamp" in said and "wraps repeat, mirror read as repeat" in said


def test_small_parts_zero_scales_and_keys_scaled_to_nothing(tmp_path):
    """From the review: a 5 cm part of a millimetre stage is a transform (its determinant,
    1e-13, is tiny, not singular); a point instancer's instance scaled to nothing is left out
    (USD's way to hide one); a key whose scale is zero on an axis still poses as USD does."""
    from pxr import Gf

    from farm.scene import parse_scene

    stage = _stage(tmp_path / "small.usda", meters=0.001, frames=(1, 3))
    bolt = _grid(stage, "/Bolt", 1)
    UsdGeom.XformCommonAPI(bolt).SetScale((50.0, 50.0, 50.0))
    pop = UsdGeom.Cube.Define(stage, "/Pop")
    turn, grow = pop.AddRotateXOp(), pop.AddScaleOp()
    turn.Set(90.0)
    grow.Set(Gf.Vec3f(1, 1, 1), 1)
    grow.Set(Gf.Vec3f(1, 0, 1), 3)
    forest = UsdGeom.PointInstancer.Define(stage, "/Forest")
    UsdGeom.Sphere.Define(stage, "/Forest/Tree")
    forest.CreatePrototypesRel().SetTargets(["/Forest/Tree"])
    forest.CreateProtoIndicesAttr([0, 0, 0])
    forest.CreatePositionsAttr([(0, 0, 0), (5, 0, 0), (10, 0, 0)])
    forest.CreateScalesAttr([(1, 1, 1), (0, 0, 0), (1, 1, 1)])
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "small.usda")
    assert [shape["type"] for shape in document["shapes"]] == ["mesh", "box", "sphere", "sphere"]
    assert not any("sheared" in w for w in scene.warnings)
    frame = np.diag([0.001, 0.001, 0.001, 1.0])
    for code in (1, 2):  # 2: halfway to the key of zero scale, whose rotation must still be right
        posed = parse_scene(json.loads(json.dumps(document)), time=code / 24)
        usd_box = frame @ np.array(pop.ComputeLocalToWorldTransform(Usd.TimeCode(code))).T
        assert np.allclose(posed.shapes[1].transform, usd_box, atol=1e-12), code
    flat = parse_scene(json.loads(json.dumps(document)), time=3 / 24)  # at the key itself the box is flat: hidden
    assert flat.shown == (0, 2, 3)


def test_a_key_scaled_to_nothing_on_an_axis_decomposes_into_a_rotation_that_rebuilds_it():
    """farm.scene.usd_time keys translation, rotation and scale: where an axis's scale is
    zero the nearest orthonormal matrix may be a reflection, which is no rotation; the
    keys must rebuild the matrix all the same (the review's 1,030 failures in 2,000)."""
    from farm.scene import rig
    from farm.scene.usd_time import _trs

    rng = np.random.default_rng(0)
    for _ in range(500):
        quaternion = rng.normal(size=4)
        matrix = np.eye(4)
        scale = rng.random(3) + 0.1
        scale[rng.integers(3)] = 0.0
        matrix[:3, :3] = np.array(rig.local_matrix([0, 0, 0], quaternion, [1, 1, 1]))[:3, :3] @ np.diag(scale)
        translation, rotation, keyed_scale, sheared = _trs(matrix)
        assert not sheared and np.allclose(rig.local_matrix(translation, rotation, keyed_scale), matrix, atol=1e-9)


def test_a_zooming_lens_is_keyed_each_time_code(tmp_path):
    """A camera's time-sampled focal length and focus: each frame's field of view and focus
    distance are the lens's at its time code (a pinhole where it has no fStop)."""
    from farm.scene import parse_scene

    stage = _stage(tmp_path / "zoom.usda", frames=(1, 3))
    UsdGeom.Sphere.Define(stage, "/Ball")
    camera = UsdGeom.Camera.Define(stage, "/Camera")
    UsdGeom.XformCommonAPI(camera).SetTranslate((0, 0, 5))
    camera.CreateVerticalApertureAttr(24.0)
    zoom = camera.CreateFocalLengthAttr()
    zoom.Set(50.0, 1)
    zoom.Set(25.0, 3)
    focus = camera.CreateFocusDistanceAttr()
    focus.Set(5.0, 1)
    focus.Set(3.0, 3)
    camera.CreateFStopAttr(2.0)
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "zoom.usda")
    assert not any("fStop without" in w or "framing the model" in w for w in scene.warnings)
    for code, focal, distance in ((1, 50.0, 5.0), (2, 37.5, 4.0), (3, 25.0, 3.0)):
        posed = parse_scene(json.loads(json.dumps(document)), time=code / 24).camera
        assert posed.fov == pytest.approx(math.degrees(2 * math.atan(12 / focal))), code
        assert posed.focus_distance == pytest.approx(distance) and posed.aperture_radius == pytest.approx(focal * 0.1 / 4)


def test_a_texture_reading_another_uv_set_gets_the_meshes_second_uvs(tmp_path):
    """A UsdUVTexture whose st comes from a UsdPrimvarReader_float2 of another primvar (a
    lightmap's `st1`): the texture reads the farm's second uv set, which the mesh carries
    from that primvar."""
    from PIL import Image

    from farm.scene.pack import pack

    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "light.png")
    stage = _stage(tmp_path / "lightmap.usda")
    quad = _grid(stage, "/Quad", 1)
    primvars = UsdGeom.PrimvarsAPI(quad)
    primvars.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex).Set(
        [(0, 0), (1, 0), (0, 1), (1, 1)])
    primvars.CreatePrimvar("st1", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex).Set(
        [(0.5, 0.25), (0.75, 0.25), (0.5, 0.5), (0.75, 0.5)])
    material = _preview(stage, "/Baked")
    reader = UsdShade.Shader.Define(stage, "/Baked/Reader")
    reader.CreateIdAttr("UsdPrimvarReader_float2")
    reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("st1")
    texture = UsdShade.Shader.Define(stage, "/Baked/Light")
    texture.CreateIdAttr("UsdUVTexture")
    texture.CreateInput("file", Sdf.ValueTypeNames.Asset).Set("light.png")
    texture.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(
        reader.CreateOutput("result", Sdf.ValueTypeNames.Float2))
    UsdShade.Shader(stage.GetPrimAtPath("/Baked/Surface")).CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f) \
        .ConnectToSource(texture.CreateOutput("rgb", Sdf.ValueTypeNames.Float3))
    _bind(quad.GetPrim(), material)
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "lightmap.usda")
    assert document["textures"]["lightmap.usda:/Baked/Light"]["uv_set"] == 1
    (shape,) = document["shapes"]
    assert "uvs1" in shape["binary"] and not any("uv set" in w for w in scene.warnings)
    packed = pack(scene, FolderAssets(tmp_path, scene.assets))
    second = np.concatenate([packed.extras["uv1_01"].reshape(-1, 2, 2), packed.extras["uv1_2"][:, None, :2]], axis=1)
    assert len(packed.extras) == 2 and np.allclose(second.min(axis=(0, 1)), [0.5, 0.25]) \
        and np.allclose(second.max(axis=(0, 1)), [0.75, 0.5])


def test_a_deforming_mesh_is_posed_each_frame_as_usd_interpolates_its_points(tmp_path, monkeypatch):
    """Time-sampled points (a character's skin, a cloth or a cache), under a moving parent,
    with time-sampled normals: each frame's mesh is where USD puts its points then, at a
    whole time code and between keys (a shutter's moment), held before the first key and
    after the last; a mesh whose point count changes stays as it starts, said in a warning."""
    from farm.scene import parse_scene
    from farm.scene.files import shape_meshes

    stage = _stage(tmp_path / "cloth.usda", up="Z", meters=0.01, frames=(1, 4), fps=24)
    parent = UsdGeom.Xform.Define(stage, "/Rig")
    lift = parent.AddTranslateOp()
    lift.Set((0, 0, 0), 1)
    lift.Set((0, 0, 300), 4)
    cloth = UsdGeom.Mesh.Define(stage, "/Rig/Cloth")
    cloth.CreateFaceVertexCountsAttr([4])
    cloth.CreateFaceVertexIndicesAttr([0, 1, 2, 3])
    cloth.GetPointsAttr().Set([(0, 0, 0), (100, 0, 0), (100, 100, 0), (0, 100, 0)], 1.0)
    cloth.GetPointsAttr().Set([(0, 0, 0), (100, 0, 60), (100, 100, 60), (0, 100, 0)], 4.0)  # USD lerps 2 and 3
    normals = UsdGeom.PrimvarsAPI(cloth).CreatePrimvar("normals", Sdf.ValueTypeNames.Normal3fArray,
                                                       UsdGeom.Tokens.vertex)
    normals.Set([(0, 0, 1)] * 4, 1.0)
    normals.Set([(-0.5145, 0, 0.8575)] * 4, 4.0)
    fluid = UsdGeom.Mesh.Define(stage, "/Fluid")
    fluid.CreateFaceVertexCountsAttr([3])
    fluid.CreateFaceVertexIndicesAttr([0, 1, 2])
    fluid.GetPointsAttr().Set([(0, 0, 0), (1, 0, 0), (0, 1, 0)], 1.0)
    fluid.GetPointsAttr().Set([(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)], 3.0)
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "cloth.usda")
    assert scene.animation == pytest.approx((1 / 24, 4 / 24))
    cloth_shape, fluid_shape = document["shapes"]
    assert cloth_shape["morph"]["times"] == pytest.approx([1 / 24, 2 / 24, 3 / 24, 4 / 24])
    assert "morph" not in fluid_shape
    assert any("/Fluid: its point count changes over time: rendered as it is at the start" in w for w in scene.warnings)
    frame = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]]) @ np.diag([0.01, 0.01, 0.01, 1])
    assets = FolderAssets(".")
    for code in (0, 1, 2, 2.5, 4, 7):
        posed = parse_scene(json.loads(json.dumps(document)), time=code / 24)
        mesh = shape_meshes(posed, assets, shapes=posed.shapes[:1])[0]
        matrix = np.array(posed.shapes[0].transform, float)
        placed = mesh.vertices @ matrix[:3, :3].T + matrix[:3, 3]
        moment = Usd.TimeCode(min(max(code, 1), 4))
        world = frame @ np.array(cloth.ComputeLocalToWorldTransform(moment)).T
        points = np.array(cloth.GetPointsAttr().Get(moment), float)
        usd = points @ world[:3, :3].T + world[:3, 3]
        assert {tuple(p) for p in np.round(placed, 4)} == {tuple(p) for p in np.round(usd, 4)}, code
        usd_normal = np.array(normals.Get(moment)[0], float) @ np.linalg.inv(world[:3, :3])
        turned = mesh.normals @ np.linalg.inv(matrix[:3, :3])
        assert np.allclose(turned / np.linalg.norm(turned, axis=1, keepdims=True),
                           usd_normal / np.linalg.norm(usd_normal), atol=1e-3), code
    for damage, words in ((lambda m: m["times"].reverse(), r"shapes\[0\].morph.times: key times must increase"),
                          (lambda m: m["targets"].pop(), r"shapes\[0\].morph.targets: expected a list of 3 values, got 2"),
                          (lambda m: m.update(weights=[1.0]), r"shapes\[0\].morph: unknown field 'weights' \(allowed: targets, times\)")):
        damaged = json.loads(json.dumps(document))  # from anyone with broker access: one line naming it
        damage(damaged["shapes"][0]["morph"])
        with pytest.raises(SceneError, match=words):
            parse_scene(damaged, time=0.1)
    big = _stage(tmp_path / "big.usda", frames=(1, 4))  # 3,200 triangles over 4 time codes: 4 x 115 kB of corners
    grid = _grid(big, "/Grid", 40)
    start = np.array(grid.GetPointsAttr().Get(), float)
    grid.GetPointsAttr().Set(start.tolist(), 1.0)
    grid.GetPointsAttr().Set((start * 2).tolist(), 4.0)
    big.GetRootLayer().Save()
    monkeypatch.setattr("farm.defaults.MAX_ASSET_BYTES", 300_000)
    with pytest.raises(SceneError, match=r"big.usda: its meshes pass 293.0 KiB \(FARM_MAX_ASSET_BYTES\) at /Grid "
                                         r"\(a deforming mesh keeps its corners for every time code\)"):
        load_scene(tmp_path / "big.usda")


def test_prims_shown_and_hidden_over_a_shot_by_visibility_or_a_scale_of_nothing(tmp_path):
    """Animators hide a prim by keying its visibility or scaling it to nothing: each frame
    leaves out what is hidden at its moment, and shows what is shown, even a prim hidden or
    scaled to nothing at the stage's start; a shutter's end where a shape is hidden keeps it
    where the frame's moment puts it."""
    from farm.scene import parse_scene
    from farm.scene.motion import frame_scenes

    stage = _stage(tmp_path / "shot.usda", frames=(1, 3), fps=24)
    pop = UsdGeom.Cube.Define(stage, "/Pop")  # scaled from nothing and back: how a prim pops in
    grow = pop.AddScaleOp()
    for code, scale in ((1, 0), (2, 1), (3, 0)):
        grow.Set((scale, scale, scale), code)
    blink = UsdGeom.Sphere.Define(stage, "/Blink")
    for code, seen in ((1, "invisible"), (2, "inherited"), (3, "invisible")):
        blink.GetVisibilityAttr().Set(seen, code)
    parent = UsdGeom.Xform.Define(stage, "/Parent")  # inherited: its child goes and stays gone
    parent.GetVisibilityAttr().Set("inherited", 1)
    parent.GetVisibilityAttr().Set("invisible", 2)
    _grid(stage, "/Parent/Plate", 2)
    UsdGeom.Cube.Define(stage, "/Static")
    lamp = UsdLux.SphereLight.Define(stage, "/Lamp")  # an emissive sphere: a shape, shown as one
    sun = UsdLux.DistantLight.Define(stage, "/Sun")  # the document's sun: as at the start
    for light in (lamp, sun):
        light.GetVisibilityAttr().Set("inherited", 1)
        light.GetVisibilityAttr().Set("invisible", 2)
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "shot.usda")
    assert [shape["type"] for shape in document["shapes"]] == ["box", "sphere", "mesh", "box", "sphere"]
    assert not any("scaled to nothing" in w for w in scene.warnings)
    assert [light["type"] for light in document["lights"]] == ["sun"]
    assert any("/Sun: a light's time-sampled visibility is read at the start" in w for w in scene.warnings)
    for code, shown in ((1, (2, 3, 4)), (1.5, (0, 2, 3, 4)), (2, (0, 1, 3)), (3, (3,))):
        posed = parse_scene(json.loads(json.dumps(document)), time=code / 24)
        assert posed.shown == shown, code
        assert len(posed.shapes) == len(shown) and set(posed.moving) <= set(range(len(shown)))
    frame, ends = frame_scenes(json.loads(json.dumps(document)), 2 / 24, (-0.5 / 24, 0.5 / 24))
    assert frame.shown == (0, 1, 3) and [end.shown for end in ends] == [(0, 1, 3), (0, 1, 3)]
    assert ends[0].shapes[1] == frame.shapes[1]  # hidden at the open (held from 1): the frame's sphere


def test_a_hidden_shape_and_damaged_visibility_keys_in_a_document(tmp_path):
    """`hidden` leaves a shape out (the others keep their order, a moving one its motion);
    visibility keys from anyone with broker access are checked: one line naming the field."""
    from farm.scene import parse_scene

    document = json.loads((ROOT / "scenes" / "animated-cornell-box.json").read_text())
    moving = parse_scene(json.loads(json.dumps(document)), time=0.0).moving
    first = moving[0]
    document["shapes"][0]["hidden"] = True
    scene = parse_scene(json.loads(json.dumps(document)), time=0.0)
    assert scene.shown[0] == 1 and scene.moving[0] == first - 1
    for value, words in (("yes", r"shapes\[0\].hidden: expected true or false"),):
        document["shapes"][0]["hidden"] = value
        with pytest.raises(SceneError, match=words):
            parse_scene(json.loads(json.dumps(document)), time=0.0)
    del document["shapes"][0]["hidden"]
    for keys, words in (({"times": [1.0, 0.5], "visible": [True, False]}, r"visibility.times: key times must increase"),
                        ({"times": [0.0], "visible": ["no"]}, r"visibility.visible\[0\]: expected true or false"),
                        ({"times": [0.0]}, r"visibility: missing")):
        document["shapes"][0]["visibility"] = keys
        with pytest.raises(SceneError, match=words):
            parse_scene(json.loads(json.dumps(document)), time=0.0)


def test_lights_brighten_dim_and_change_colour_frame_by_frame(tmp_path):
    """Time-sampled intensity, exposure and colour: a rect light's emission, a sun's
    irradiance, a point-like sphere's intensity and a dome's radiance are each frame's as USD
    gives them (linear between keys, as USD interpolates them), normalize and the sun's disc
    applied as at the start; a light's keys in a document are checked (one line)."""
    from farm.scene import parse_scene

    stage = _stage(tmp_path / "lights.usda", frames=(1, 3), fps=24)
    UsdGeom.Sphere.Define(stage, "/Ball")
    panel = UsdLux.RectLight.Define(stage, "/Panel")
    panel.CreateWidthAttr(2.0)
    panel.CreateHeightAttr(0.5)
    panel.CreateNormalizeAttr(True)
    panel.GetIntensityAttr().Set(10.0, 1)
    panel.GetIntensityAttr().Set(30.0, 3)
    sun = UsdLux.DistantLight.Define(stage, "/Sun")
    sun.CreateIntensityAttr(2.0)
    sun.GetExposureAttr().Set(0.0, 1)
    sun.GetExposureAttr().Set(2.0, 3)
    bulb = UsdLux.SphereLight.Define(stage, "/Bulb")
    bulb.CreateTreatAsPointAttr(True)
    bulb.CreateRadiusAttr(0.1)
    bulb.GetColorAttr().Set((1, 0, 0), 1)
    bulb.GetColorAttr().Set((0, 0, 1), 3)
    dome = UsdLux.DomeLight.Define(stage, "/Sky")
    dome.GetIntensityAttr().Set(1.0, 1)
    dome.GetIntensityAttr().Set(0.0, 3)
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "lights.usda")
    solid = 2 * math.pi * (1 - math.cos(math.radians(0.53 / 2)))  # the sun's disc, USD's default angle
    for code in (1, 1.5, 2, 3):
        posed = parse_scene(json.loads(json.dumps(document)), time=code / 24)
        panel_intensity = 10 + 10 * (code - 1)
        emitter = next(m for name, m in posed.materials.items() if name.endswith("/Panel"))
        assert np.allclose(emitter.emission, [panel_intensity / (2 * 0.5)] * 3), code  # normalized by its area
        sun_light = next(light for light in posed.lights if type(light).__name__ == "SunLight")
        if code == int(code):  # USD lerps the exposure, the document the irradiance: equal at the keys
            assert np.allclose(sun_light.irradiance, [2 * 2 ** (code - 1) * solid] * 3), code
        point = next(light for light in posed.lights if type(light).__name__ == "PointLight")
        colour = np.array(bulb.GetColorAttr().Get(Usd.TimeCode(code)), float)
        assert np.allclose(point.intensity, colour * math.pi * 0.1 ** 2), code
        sky = posed.environment
        assert np.allclose(sky.radiance, [1 - (code - 1) / 2] * 3), code
    document["lights"][0]["keyframes"][1]["irradiance"] = "bright"
    with pytest.raises(SceneError, match=r"scene.lights\[0\].keyframes\[1\].irradiance: expected a number"):
        parse_scene(document, time=0.0)


def test_a_textures_scale_and_bias_become_the_parameters_factor_and_bias(tmp_path):
    """UsdUVTexture's `scale` and `bias` (texel x scale + bias): a colour's per channel, a
    scalar's (roughness from the texture's g) its channel's."""
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "dark.png")
    stage = _stage(tmp_path / "biased.usda")
    quad = _grid(stage, "/Quad", 1)
    material = _preview(stage, "/Look")
    texture = UsdShade.Shader.Define(stage, "/Look/Dark")
    texture.CreateIdAttr("UsdUVTexture")
    texture.CreateInput("file", Sdf.ValueTypeNames.Asset).Set("dark.png")
    texture.CreateInput("scale", Sdf.ValueTypeNames.Float4).Set((0.5, 0.5, 0.25, 1))
    texture.CreateInput("bias", Sdf.ValueTypeNames.Float4).Set((0.25, 0.125, 0.5, 0))
    surface = UsdShade.Shader(stage.GetPrimAtPath("/Look/Surface"))
    surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(
        texture.CreateOutput("rgb", Sdf.ValueTypeNames.Float3))
    surface.CreateInput("roughness", Sdf.ValueTypeNames.Float).ConnectToSource(
        texture.CreateOutput("g", Sdf.ValueTypeNames.Float))
    _bind(quad.GetPrim(), material)
    stage.GetRootLayer().Save()
    scene, document = load_scene(tmp_path / "biased.usda")
    look = document["materials"]["biased.usda:/Look"]
    assert look["base_color"]["factor"] == [0.5, 0.5, 0.25] and look["base_color"]["bias"] == [0.25, 0.125, 0.5]
    assert look["roughness"]["channel"] == "g" and look["roughness"]["factor"] == 0.5
    assert look["roughness"]["bias"] == 0.125
    assert not any("texture bias" in w for w in scene.warnings), scene.warnings


def test_a_missing_texture_stops_submit_as_a_gltfs_does_unless_allowed(tmp_path):
    """A texture or dome map USD cannot find (no such file under the stage's folder) is the
    scene's missing file, named in one line; with --allow-missing the map is turned off."""
    stage = _stage(tmp_path / "missing.usda")
    quad = _grid(stage, "/Quad", 1)
    material = _preview(stage, "/Look")
    texture = UsdShade.Shader.Define(stage, "/Look/Wood")
    texture.CreateIdAttr("UsdUVTexture")
    texture.CreateInput("file", Sdf.ValueTypeNames.Asset).Set("maps/wood.png")
    UsdShade.Shader(stage.GetPrimAtPath("/Look/Surface")).CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f) \
        .ConnectToSource(texture.CreateOutput("rgb", Sdf.ValueTypeNames.Float3))
    _bind(quad.GetPrim(), material)
    UsdLux.DomeLight.Define(stage, "/Sky").CreateTextureFileAttr("sky.hdr")
    stage.GetRootLayer().Save()
    with pytest.raises(SceneError, match=r"missing.usda: missing files: maps/wood.png, sky.hdr \(--allow-missing "):
        load_scene(tmp_path / "missing.usda")
    scene, document = load_scene(tmp_path / "missing.usda", allow_missing=True)
    assert [name for name in scene.files() if not name.startswith("<generated>")] == []  # the meshes only
    said = " ".join(scene.warnings)
    assert "maps/wood.png" in said and "sky.hdr" in said


def test_a_cameras_clipping_range_cuts_what_lies_before_and_past_it(tmp_path, device):
    """clippingRange: nothing nearer than its near plane or past its far one is seen (camera
    rays start and end there, distances along the view): a red ball before a blue one on the
    camera's axis hides it until the near plane passes the red ball, and the far plane cuts
    the blue one."""
    def centre(near: float, far: float) -> np.ndarray:
        path = tmp_path / f"clip-{near:g}-{far:g}.usda"
        stage = _stage(path, meters=0.01)
        for name, depth, colour in (("Red", 200, (0.8, 0.05, 0.05)), ("Blue", 600, (0.05, 0.05, 0.8))):
            ball = UsdGeom.Sphere.Define(stage, f"/{name}")
            ball.CreateRadiusAttr(50)
            UsdGeom.XformCommonAPI(ball).SetTranslate((0, 0, -depth))
            _bind(ball.GetPrim(), _preview(stage, f"/{name}Look", diffuseColor=colour))
        camera = UsdGeom.Camera.Define(stage, "/Camera")
        camera.CreateClippingRangeAttr((near, far))
        UsdLux.DomeLight.Define(stage, "/Sky").CreateIntensityAttr(1.0)
        stage.GetRootLayer().Save()
        _, document = load_scene(path, spp=4, resolution=(16, 16))
        assert document["camera"]["clip"] == pytest.approx([near * 0.01, far * 0.01])
        return reference(device, document)[6:10, 6:10].mean(axis=(0, 1))

    red, blue, sky = centre(1, 1e6), centre(300, 1e6), centre(300, 500)
    assert red[0] > 3 * red[2] and blue[2] > 3 * blue[0]  # the red ball; past the near plane, the blue one
    assert np.allclose(sky, sky[0], rtol=1e-6) and sky[0] > 0.5  # both cut: the white sky
