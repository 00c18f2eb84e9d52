"""The worker's asset cache: verified hits, least-recently-used eviction under a size
limit, and several real processes sharing one folder; and its packed scenes: packed once
per machine, the same bits from disk, evicted beyond their number, waited for a bounded time."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time

import numpy as np
import redis as redis_py

from farm.protocol.assets import FolderAssets, RedisAssets, digest_of
from farm.worker.cache import AssetCache


def blob(seed: int, size: int = 1000) -> tuple[str, bytes]:
    data = bytes([seed % 256]) * size + seed.to_bytes(8, "little")
    return digest_of(data), data


def test_a_put_file_comes_back_verified_and_a_damaged_one_does_not(tmp_path):
    cache = AssetCache(tmp_path, limit=1 << 20)
    digest, data = blob(1)
    assert cache.get(digest) is None
    cache.put(digest, data)
    assert cache.get(digest) == data
    cache.path(digest).write_bytes(b"rot" + data[3:])
    assert cache.get(digest) is None and not cache.path(digest).exists()  # fetched again next time


def test_least_recently_used_files_are_evicted_beyond_the_limit(tmp_path):
    cache = AssetCache(tmp_path, limit=3 * 1008)
    files = [blob(i) for i in range(4)]
    for n, (digest, data) in enumerate(files[:3]):
        cache.put(digest, data)
        os.utime(cache.path(digest), (time.time() - 100 + n, time.time() - 100 + n))
    assert cache.get(files[0][0]) == files[0][1]  # used now: the most recent
    cache.put(*files[3])
    assert [cache.get(d) is not None for d, _ in files] == [True, False, True, True]
    assert sum(size for _, size, _ in cache.files()) <= cache.limit


def test_a_file_larger_than_the_cache_is_not_kept(tmp_path):
    cache = AssetCache(tmp_path, limit=500)
    digest, data = blob(7)
    cache.put(digest, data)
    assert cache.get(digest) is None and cache.files() == []


def test_an_unwritable_cache_costs_speed_not_a_bucket(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    cache = AssetCache(tmp_path / "file" / "cache")
    digest, data = blob(3)
    cache.put(digest, data)  # no error: the worker just fetches every time
    assert cache.get(digest) is None and not cache.usable


def test_a_cache_that_becomes_unwritable_after_start_costs_speed_not_a_bucket(tmp_path, redis_server):
    """The folder's lock files can no longer be made (here `locks` turned into a file; on a
    real machine a read-only remount or no inodes left): a worker's fetch through the cache,
    exactly as a render process runs it, still returns the file."""
    cache = AssetCache(tmp_path / "cache")
    assert cache.usable
    shutil.rmtree(tmp_path / "cache" / "locks")
    (tmp_path / "cache" / "locks").write_text("not a folder any more")
    client = redis_py.Redis.from_url(redis_server.url)
    digest, data = blob(11)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "blob.bin").write_bytes(data)
    RedisAssets.upload(client, {"blob.bin": digest}, FolderAssets(tmp_path / "files", {"blob.bin": digest}), ttl=60)
    assert RedisAssets(client, {"blob.bin": digest}, cache).read("blob.bin") == data
    assert not cache.usable
    assert RedisAssets(client, {"blob.bin": digest}, cache).read("blob.bin") == data  # fetched every time
    assert cache.evict() == 0


def _hammer(folder: str, seed: int, rounds: int, queue) -> None:
    """One worker process: fetch (or find) files in a small shared cache, over and over."""
    cache = AssetCache(folder, limit=6 * 5008)
    fetched = 0
    try:
        for i in range(rounds):
            digest, data = blob((seed * 7 + i) % 10, 5000)
            with cache.fetching(digest):
                found = cache.get(digest)
                if found is None:
                    fetched += 1
                    cache.put(digest, data)
                    found = data
            assert found == data
        queue.put(("ok", fetched))
    except Exception as exc:  # reported to the test, which fails on it
        queue.put(("error", repr(exc)))


def test_worker_processes_share_one_folder_safely(tmp_path):
    """Six real processes fetch ten files through a cache that holds six: every read is
    whole and verified, nothing raises, and the folder ends within its limit."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_hammer, args=(str(tmp_path), seed, 60, queue)) for seed in range(6)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert all(kind == "ok" for kind, _ in results), results
    assert sum(size for _, size, _ in AssetCache(tmp_path).files()) <= 6 * 5008
    assert list((tmp_path / "tmp").iterdir()) == []  # no half-written file left behind


def test_one_process_fetches_while_the_others_wait(tmp_path):
    """The second of two processes asking for the same file at once finds it cached."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_hammer, args=(str(tmp_path), 0, 1, queue)) for _ in range(4)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert sorted(fetched for _, fetched in results) == [0, 0, 0, 1]


# -- packed scenes -------------------------------------------------------------------------


def _cornell():
    from farm.scene.load import load_scene
    from tests.files import CORNELL

    scene, _ = load_scene(CORNELL, spp=2, resolution=(24, 16))
    return scene


def test_a_packed_scene_is_packed_once_per_machine_and_renders_the_same_bits(tmp_path, device):
    from farm.scene.pack import pack
    from farm.worker.cache import PackedCache
    from tests import frames

    scene = _cornell()
    packs = []

    def packing():
        packs.append(pack(scene))
        return packs[-1]

    first = PackedCache(tmp_path).get_or_pack(scene.digest, packing)
    again = PackedCache(tmp_path).get_or_pack(scene.digest, packing)  # another process's view
    assert len(packs) == 1 and again is not first
    assert isinstance(again.nodes, np.memmap)  # read from disk, not packed
    for name in ("frame", "nodes", "packs", "triangle_data", "materials", "lights", "corners"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert np.array_equal(frames.reference(device, first), frames.reference(device, again))


def test_packed_scenes_beyond_the_limit_are_evicted_and_a_damaged_one_is_packed_again(tmp_path):
    from farm.scene.pack import pack
    from farm.worker.cache import PackedCache

    scene = _cornell()
    cache = PackedCache(tmp_path, keep=2)
    for name in ("a", "b", "c"):
        cache.get_or_pack(name, lambda: pack(scene))
        cache.settle()  # written on a thread while the caller renders
        time.sleep(0.02)  # distinct modification times
    kept = sorted(p.name.split("-")[0] for p in (tmp_path / "packed").iterdir() if p.name not in ("tmp", "locks"))
    assert kept == ["b", "c"]
    damaged = next((tmp_path / "packed").glob("c-*"))
    (damaged / "nodes.npy").write_bytes(b"not an array")
    packed_again = []
    cache.get_or_pack("c", lambda: packed_again.append(1) or pack(scene))
    cache.settle()
    assert packed_again == [1]
    assert list((tmp_path / "packed" / "tmp").iterdir()) == []


def test_a_process_waits_a_bounded_time_for_another_one_packing(tmp_path):
    """The lock of a scene being packed (here held by another open file, as another process
    would) delays a second packer at most `wait` seconds; then it packs without the cache."""
    import fcntl

    from farm.scene.pack import pack
    from farm.worker.cache import PackedCache

    scene = _cornell()
    cache = PackedCache(tmp_path, wait=0.3)
    with open(tmp_path / "packed" / "locks" / f"{scene.digest}-{cache.code}", "a+b") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        started = time.monotonic()
        packed = cache.get_or_pack(scene.digest, lambda: pack(scene))
        assert 0.3 <= time.monotonic() - started < 5.0
    assert packed.nodes is not None and not isinstance(packed.nodes, np.memmap)
    assert not any(p.name.startswith(scene.digest) for p in (tmp_path / "packed").iterdir())  # not stored


def test_a_scene_cut_off_while_written_is_removed_an_hour_later(tmp_path):
    """A process killed while it wrote a packed scene leaves it in tmp/: the next cache
    opened there removes it once it is an hour old (a younger one may still be written)."""
    import os

    from farm.worker.cache import PackedCache

    PackedCache(tmp_path)
    old, young = tmp_path / "packed" / "tmp" / "old-scene", tmp_path / "packed" / "tmp" / "young-scene"
    for folder in (old, young):
        folder.mkdir()
        (folder / "nodes.npy").write_bytes(b"half written")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    PackedCache(tmp_path)
    assert not old.exists() and young.exists()
