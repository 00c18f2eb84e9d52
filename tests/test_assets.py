"""Scenes that name files: meshes, image textures and environment maps, read from the
scene's folder on the client and from Redis (by content hash) on the workers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from farm.assets import FolderAssets, RedisAssets, digest_of
from farm.exceptions import SceneError
from farm.render import Renderer
from farm.scene import load_scene
from farm.scene.pack import pack

from tests.conftest import ROOT


@pytest.fixture
def example(tmp_path):
    """A copy of the textured-mesh example scene (OBJ, PNG, HDR) in a temporary folder."""
    shutil.copytree(ROOT / "scenes" / "assets", tmp_path / "assets")
    document = json.loads((ROOT / "scenes" / "textured-mesh.json").read_text())
    document["film"] = {"width": 40, "height": 40, "spp": 4}
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(document))
    return path


def test_load_scene_records_the_digest_of_every_file(example):
    scene, document = load_scene(example)
    assert sorted(scene.assets) == ["assets/sky.hdr", "assets/tiles.png", "assets/vase.obj"]
    for name, digest in scene.assets.items():
        assert digest == digest_of((example.parent / name).read_bytes())
    # the digest covers the files: the same document with another texture is another scene
    (example.parent / "assets" / "tiles.png").write_bytes((ROOT / "scenes/assets/tiles.png").read_bytes() + b"\0")
    changed, _ = load_scene(example)
    assert changed.digest != scene.digest


def test_missing_files_are_named(example):
    (example.parent / "assets" / "tiles.png").unlink()
    (example.parent / "assets" / "sky.hdr").unlink()
    with pytest.raises(SceneError, match="missing files: assets/tiles.png, assets/sky.hdr"):
        load_scene(example)


@pytest.mark.parametrize("name", ["../outside.png", "/etc/passwd.png", "a/../../b.png"])
def test_files_outside_the_scene_folder_are_refused(example, name):
    document = json.loads(example.read_text())
    document["textures"]["tiles"]["file"] = name
    example.write_text(json.dumps(document))
    with pytest.raises(SceneError, match="relative to the scene's folder"):
        load_scene(example)


def test_a_file_changed_after_loading_is_refused(example):
    scene, _ = load_scene(example)
    (example.parent / "assets" / "vase.obj").write_text("v 0 0 0\n")
    with pytest.raises(SceneError, match="changed on disk"):
        pack(scene, FolderAssets(example.parent, scene.assets))


def test_mesh_from_obj_has_smooth_normals_and_uvs(example):
    scene, _ = load_scene(example)
    packed = pack(scene, FolderAssets(example.parent, scene.assets))
    vase = packed.triangle_data["info"][:, 2] >= 0  # triangles with vertex normals: the vase
    assert vase.sum() == 2 * 64 * 47 and len(packed.normals) == vase.sum()
    assert (packed.triangle_data["info"][~vase, 2] == -1).all()  # the floor stays flat
    uv = packed.triangle_data["uv01"][vase]
    assert uv.min() >= 0 and uv.max() <= 1 and uv.max() > 0.9
    assert len(packed.textures) == 3  # tiles (sRGB), boards, the sky (linear)


def test_farm_renders_a_scene_with_files_from_redis_bit_identically(farm, device, example):
    scene, document = load_scene(example)
    assets = FolderAssets(example.parent, scene.assets)
    reference = Renderer(device, pack(scene, assets)).render_frame()
    run = farm.render(scene, document, bucket_size=16, assets=assets)
    assert np.array_equal(run.film.pixels, reference)
    for digest in scene.assets.values():  # each file stored once, under its content hash
        assert farm.redis.exists(RedisAssets.key_for(digest))


def test_worker_side_refuses_a_file_whose_bytes_do_not_match(farm, example):
    scene, _ = load_scene(example)
    RedisAssets.upload(farm.redis, scene.assets, FolderAssets(example.parent, scene.assets), ttl=60)
    digest = scene.assets["assets/tiles.png"]
    farm.redis.set(RedisAssets.key_for(digest), b"not the tiles")
    try:
        with pytest.raises(SceneError, match="does not match its digest"):
            RedisAssets(farm.redis, scene.assets).read("assets/tiles.png")
    finally:
        farm.redis.delete(RedisAssets.key_for(digest))


def test_obj_polygons_are_triangulated_and_meshes_without_normals_are_flat(tmp_path):
    from farm.scene.mesh import load_obj

    quad = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0.5 1.5 0\nf 1 2 3 4\nf 4 3 5\n"
    mesh = load_obj("quad.obj", quad.encode())
    assert mesh.faces.shape == (3, 3) and mesh.normals is None and mesh.uvs is None
    two_objects = "o a\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\no b\nv 0 0 1\nv 1 0 1\nv 0 1 1\nf 4 5 6\n"
    mesh = load_obj("two.obj", two_objects.encode())
    assert mesh.faces.shape == (2, 3) and np.ptp(mesh.vertices[mesh.faces][:, :, 2]) == 1


@pytest.mark.parametrize("text", ["", "v 0 0 0\nv 1 0 0\n", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n"])
def test_broken_obj_files_are_a_scene_error(text):
    from farm.scene.mesh import load_obj

    with pytest.raises(SceneError, match="bad.obj"):
        load_obj("bad.obj", text.encode())
