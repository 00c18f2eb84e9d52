"""Scenes that name files: meshes, image textures and environment maps, read from the
scene's folder on the client and from Redis (by content hash) on the workers."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from farm.exceptions import AssetError, SceneError
from farm.protocol.assets import FolderAssets, RedisAssets, digest_of
from farm.scene import parse_scene
from farm.scene.load import load_scene
from farm.scene.pack import pack
from farm.worker.cache import AssetCache

from tests import commands, frames
from tests.files import ROOT


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
    with pytest.raises(SceneError, match="outside the scene's folder"):
        load_scene(example)


def test_a_symlink_out_of_the_scene_folder_is_refused(example, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere")
    shutil.copy(example.parent / "assets" / "tiles.png", outside / "tiles.png")
    (example.parent / "assets" / "link.png").symlink_to(outside / "tiles.png")
    (example.parent / "linked").symlink_to(outside, target_is_directory=True)
    document = json.loads(example.read_text())
    for name in ("assets/link.png", "linked/tiles.png"):
        document["textures"]["tiles"]["file"] = name
        example.write_text(json.dumps(document))
        with pytest.raises(SceneError, match="symlink out of the scene's folder"):
            load_scene(example)


def test_names_inside_the_folder_are_made_relative(example):
    document = json.loads(example.read_text())
    document["textures"]["tiles"]["file"] = str(example.parent / "assets" / "tiles.png")  # absolute, inside
    document["lights"][0]["file"] = "assets/../assets/./sky.hdr"
    example.write_text(json.dumps(document))
    scene, sent = load_scene(example)
    assert sorted(scene.assets) == ["assets/sky.hdr", "assets/tiles.png", "assets/vase.obj"]
    assert sent["textures"]["tiles"]["file"] == "assets/tiles.png"


@pytest.mark.parametrize("name", ["/etc/passwd.png", "../x.png", "a/../b.png", "C:/x.png", "./x.png"])
def test_a_worker_refuses_any_name_but_a_plain_relative_one(example, name):
    """The document comes from Redis on a worker: nothing there may name a path that
    load_scene would not have made."""
    from farm.scene import parse_scene

    _, document = load_scene(example)
    document["textures"]["tiles"]["file"] = name
    with pytest.raises(SceneError, match="relative to the scene's folder"):
        parse_scene(document)


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
    reference = frames.reference(device, scene, assets)
    run = farm.render(scene, document, bucket_size=16, assets=assets)
    assert np.array_equal(run.film.pixels, reference)
    for digest in scene.assets.values():  # each file stored once, under its content hash
        assert farm.redis.exists(RedisAssets.key_for(digest))


@pytest.fixture
def small_chunks(monkeypatch):
    """Files travel in 1 KiB chunks, so the test files span many."""
    from farm import defaults

    monkeypatch.setattr(defaults, "ASSET_CHUNK", 1024)


def test_files_travel_in_chunks_once_and_are_verified(redis_server, example, small_chunks):
    import redis as redis_py

    client = redis_py.Redis.from_url(redis_server.url)
    scene, _ = load_scene(example)
    source = FolderAssets(example.parent, scene.assets)
    client.delete(*(RedisAssets.key_for(d) for d in scene.assets.values()))  # left by earlier tests
    first = RedisAssets.upload(client, scene.assets, source, ttl=60)
    assert first.files == 3 and first.bytes == sum((example.parent / n).stat().st_size for n in scene.assets)
    again = RedisAssets.upload(client, scene.assets, source, ttl=60)  # a second job sharing the files
    assert (again.files, again.bytes, again.reused) == (0, 0, 3)
    digest = scene.assets["assets/sky.hdr"]
    key = RedisAssets.key_for(digest)
    size = (example.parent / "assets/sky.hdr").stat().st_size
    assert client.hlen(key) == 2 + -(-size // 1024)  # size, chunk_size and the chunks
    worker = RedisAssets(client, scene.assets)
    assert worker.read("assets/sky.hdr") == (example.parent / "assets/sky.hdr").read_bytes()
    assert (worker.fetched.files, worker.fetched.bytes) == (1, size)

    chunk = client.hget(key, "1")
    # A damaged copy fails its reader and is removed, so the next upload repairs it.
    for damage, error in (({"1": bytes([chunk[0] ^ 1]) + chunk[1:]}, "does not match its digest"),  # a bit flipped
                          ({"1": chunk[:-1]}, "is damaged: chunk 1 of .* 1023 bytes, not 1024"),
                          ({"size": str(10 << 40)}, "over the limit")):
        client.hset(key, mapping=damage)
        with pytest.raises(AssetError, match=error + ".*removed, so the next submit uploads it again"):
            RedisAssets(client, scene.assets).read("assets/sky.hdr")
        assert not client.exists(key)
        assert RedisAssets.upload(client, scene.assets, source, ttl=60).files == 1
        assert RedisAssets(client, scene.assets).read("assets/sky.hdr") == (example.parent / "assets/sky.hdr").read_bytes()
    client.hdel(key, "size")  # an upload cut short counts as absent, and is sent again
    with pytest.raises(AssetError, match="missing from Redis"):
        RedisAssets(client, scene.assets).read("assets/sky.hdr")
    assert RedisAssets.upload(client, scene.assets, source, ttl=60).files == 1
    assert RedisAssets(client, scene.assets).read("assets/sky.hdr") == (example.parent / "assets/sky.hdr").read_bytes()
    client.delete(*(RedisAssets.key_for(d) for d in scene.assets.values()))


def test_a_file_over_the_size_limit_is_refused_before_reading(example, monkeypatch):
    from farm import defaults

    monkeypatch.setattr(defaults, "MAX_ASSET_BYTES", 100_000)
    with pytest.raises(SceneError, match=r"assets/vase.obj: 476.1 KiB is over the limit of 97.7 KiB per file"):
        load_scene(example)


def test_missing_maps_can_be_turned_off_loudly(example):
    (example.parent / "assets" / "tiles.png").unlink()
    (example.parent / "assets" / "sky.hdr").unlink()
    scene, document = load_scene(example, allow_missing=True)
    assert sorted(scene.assets) == ["assets/vase.obj"] and "tiles" not in scene.textures
    assert scene.environment.file is None
    assert any(w.startswith("MISSING FILE assets/tiles.png: texture tiles turned off (glaze.reflectance rendered without it)") for w in scene.warnings)
    assert any(w.startswith("MISSING FILE assets/sky.hdr: environment map turned off") for w in scene.warnings)
    (example.parent / "assets" / "vase.obj").unlink()
    with pytest.raises(SceneError, match="missing mesh file: assets/vase.obj"):
        load_scene(example, allow_missing=True)


def test_submit_refuses_missing_files_by_name_or_renders_without_them(farm, example, tmp_path):
    (example.parent / "assets" / "tiles.png").unlink()
    out = tmp_path / "out.png"
    refused = _submit(farm, example, out)
    assert refused.returncode == 2 and not out.exists()
    assert refused.stderr.strip().splitlines() == [
        f"submit: error: {example}: missing file: assets/tiles.png (--allow-missing renders without missing maps)"]
    rendered = _submit(farm, example, out, "--allow-missing")
    assert rendered.returncode == 0, rendered.stderr
    assert "submit: warning: MISSING FILE assets/tiles.png: texture tiles turned off" in rendered.stderr
    assert out.exists()


def _submit(farm, scene, out, *extra):
    return commands.run("submit", scene, "-o", out, "-q", "--broker", farm.broker_url, *extra, timeout=240)


def test_a_worker_that_cannot_get_a_file_fails_the_bucket_with_the_reason(farm, example):
    """The asset is damaged in Redis after the upload: the job fails at once with the
    file's name, no worker renders anything without it, no worker is called bad, and the
    next submit uploads the file again instead of failing on it too."""
    from farm.app import app
    from farm.client.start import start_job
    from farm.exceptions import JobError

    tiles = example.parent / "assets" / "tiles.png"
    tiles.write_bytes(tiles.read_bytes() + os.urandom(8))  # a file no worker has cached
    scene, document = load_scene(example)
    assets = FolderAssets(example.parent, scene.assets)
    RedisAssets.upload(farm.redis, scene.assets, assets, ttl=60)
    farm.redis.hdel(RedisAssets.key_for(scene.assets["assets/tiles.png"]), "0")  # its one chunk lost
    run = start_job(farm.redis, app, scene, document, 16, "spiral", assets)
    with pytest.raises(JobError, match=r"bucket \d+ failed: assets/tiles.png: asset \w+ in Redis is damaged: "
                                       r"chunk 0 of 1 missing; removed, so the next submit uploads it again"):
        run.collect(stall_timeout=60)
    assert not run.records
    from farm.protocol import registry

    assert not any(w.bad for w in registry.workers(farm.redis).values())
    again = start_job(farm.redis, app, scene, document, 16, "spiral", assets)  # the next submit repairs it
    assert again.uploaded.files == 1
    again.collect(stall_timeout=60)
    assert len(again.records) == again.total


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


def _settled(client, run) -> dict:
    """The run's report once no worker is busy: a copy of a slow bucket may still be
    packing the scene (and counting its files) after the frame is complete."""
    from farm.protocol import registry

    commands.wait_for(lambda: not any(w.busy for w in registry.workers(client).values()), 30, "the workers to be idle")
    return run.report()


def test_workers_need_no_shared_file_system(make_farm, example, device, tmp_path_factory):
    """Two workers, each in its own empty working folder with its own cache, the scene's
    folder moved away and unreadable: the image is the one-process render, bit for bit.
    Restarted, the same workers render a second scene with the same files from their
    caches alone."""
    from farm.client.start import start_job

    scene, document = load_scene(example)
    folder = FolderAssets(example.parent, scene.assets)
    reference = frames.reference(device, scene, folder)
    second_document = dict(document, seed=7)  # another scene (digest), the same three files
    second = parse_scene(second_document)
    second_reference = frames.reference(device, second, folder)

    base = tmp_path_factory.mktemp("no-shared-fs")
    caches = [base / "cache1", base / "cache2"]
    homes = [base / "home1", base / "home2"]
    for home in homes:
        home.mkdir()
    farm = make_farm([{"FARM_CACHE_DIR": str(cache)} for cache in caches], folder=base, name="isolated", cwds=homes)
    client, app = farm.redis, farm.app
    hidden = base / "hidden"
    try:
        RedisAssets.upload(client, scene.assets, folder, ttl=600)
        example.parent.rename(hidden)  # the scene's folder is gone from where it was...
        hidden.chmod(0)  # ...and unreadable where it is now
        run = start_job(client, app, scene, document, 16, "spiral", FolderAssets(hidden, scene.assets))
        run.collect(stall_timeout=60)
        assert np.array_equal(run.film.pixels, reference)
        report = _settled(client, run)["assets"]
        assert report["uploaded_files"] == 0 and report["already_in_redis"] == 3
        # Who packed the scene is in the caches (a worker may pack and then lose every tile
        # to a faster copy): each of those fetched each file once and keeps exactly those.
        primed = [i for i, cache in enumerate(caches) if AssetCache(cache).files()]
        assert primed and report["fetched_files"] == 3 * len(primed)
        for i in primed:
            assert sorted(path.name for path, _, _ in AssetCache(caches[i]).files()) == sorted(scene.assets.values())
        assert all(list(home.iterdir()) == [] for home in homes)  # nothing written where they ran

        farm.restart(primed)  # new processes: nothing in memory, only their caches
        run = start_job(client, app, second, second_document, 16, "spiral", FolderAssets(hidden, scene.assets))
        run.collect(stall_timeout=60)
        assert np.array_equal(run.film.pixels, second_reference)
        report = _settled(client, run)["assets"]
        assert report["fetched_files"] == report["fetched_bytes"] == 0
        assert report["cache_hits"] in [3 * n for n in range(1, len(primed) + 1)]  # every file, by each packer
    finally:
        hidden.chmod(0o755) if hidden.exists() else None
