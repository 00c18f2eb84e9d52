"""A worker's folder of fetched assets, by content hash, and of packed scenes, by scene
digest, shared by the worker processes of one machine.

Files are written under a temporary name and renamed into place, so a reader sees a
whole file or none; a per-digest lock makes a second process wait for the first one's
fetch instead of fetching again; eviction of the least recently used (by modification
time, refreshed on every hit) runs under a folder-wide lock. A file evicted while
another process reads it stays readable to that process (POSIX unlink). Every hit is
verified against its digest, so a damaged file is fetched again, never rendered.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from farm import defaults
from farm.protocol.assets import digest_of

log = logging.getLogger(__name__)


class AssetCache:
    """Verified files by SHA-256 under `folder`, at most `limit` bytes in all."""

    def __init__(self, folder: str | Path | None = None, limit: int | None = None):
        self.folder = Path(folder or defaults.CACHE_DIR)
        self.limit = defaults.CACHE_SIZE if limit is None else limit
        self.usable = True
        try:
            for sub in ("tmp", "locks"):
                (self.folder / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._unusable(exc)

    def path(self, digest: str) -> Path:
        return self.folder / digest[:2] / digest

    def get(self, digest: str) -> bytes | None:
        """The file's bytes if cached and intact (and marked as just used), else None."""
        if not self.usable:
            return None
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("asset cache: cannot read %s: %s", path, exc)
            return None
        if digest_of(data) != digest:
            log.warning("asset cache: %s is damaged; fetching it again", path)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Store a verified file, then evict the least recently used beyond the limit.
        A file larger than the whole cache is not kept."""
        if not self.usable or len(data) > self.limit:
            return
        path = self.path(digest)
        try:
            path.parent.mkdir(exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=self.folder / "tmp", prefix=digest[:12])
            try:
                with os.fdopen(descriptor, "wb") as out:
                    out.write(data)
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as exc:
            self._unusable(exc)
            return
        self.evict()

    @contextlib.contextmanager
    def fetching(self, digest: str):
        """Held while one process fetches `digest`; others wanting it wait (at most
        PACK_WAIT, then fetch it themselves), then find it cached."""
        with self._locked(digest):
            yield

    def evict(self) -> int:
        """Remove least recently used files until the cache fits its limit; returns how many."""
        removed = 0
        with self._locked("evict") as held:
            if not held:
                return 0
            try:
                files = self.files()
                total = sum(size for _, size, _ in files)
                for path, size, _ in sorted(files, key=lambda entry: entry[2]):
                    if total <= self.limit:
                        break
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed += 1
                        log.info("asset cache: evicted %s (%d bytes)", path.name[:12], size)
                    total -= size
            except OSError as exc:
                self._unusable(exc)
        return removed

    def files(self) -> list[tuple[Path, int, float]]:
        """(path, size, last use) of every cached file."""
        entries = []
        for path in self.folder.glob("??/*"):
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                entries.append((path, stat.st_size, stat.st_mtime))
        return entries

    @contextlib.contextmanager
    def _locked(self, name: str):
        """Hold the lock file `locks/<name>` (yields whether it is held): see lock_file."""
        with lock_file(self, name, defaults.PACK_WAIT) as held:
            yield held

    def _unusable(self, exc: OSError) -> None:
        """A cache that cannot be written costs speed, never a bucket: fetch every time."""
        if self.usable:
            log.warning("asset cache %s unusable (%s): assets are fetched from Redis every time", self.folder, exc)
        self.usable = False


@contextlib.contextmanager
def lock_file(cache, name: str, wait: float):
    """Hold the lock file `locks/<name>` of `cache`'s folder (yields True), waiting at most
    `wait` seconds for another process to let it go (then yields False: the caller goes on
    without the cache: a stopped or stuck process never stops the others). A folder that
    can no longer hold a lock (made read-only, out of inodes, removed) makes the cache
    unusable (yields False), not the caller fail."""
    handle = None
    if cache.usable:
        try:
            handle = open(cache.folder / "locks" / name, "a+b")
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        log.warning("cache %s: waited %.0fs for %s; going on without it", cache.folder, wait, name[:12])
                        handle.close()
                        handle = None
                        break
                    time.sleep(0.05)
        except OSError as exc:
            if handle is not None:
                handle.close()
                handle = None
            cache._unusable(exc)
    try:
        yield handle is not None
    finally:
        if handle is not None:
            handle.close()  # releases the lock


def _packing_code() -> str:
    """A fingerprint of the code that packs scenes and of the kernel's structs: a packed
    scene written by other code is never read."""
    from farm import scene

    hashed = hashlib.sha256()
    folder = Path(scene.__file__).parent
    for path in sorted(folder.glob("*.py")):
        hashed.update(path.name.encode() + path.read_bytes())
    return hashed.hexdigest()[:16]


class PackedCache:
    """Packed scenes by scene digest under `folder`/packed, the newest `keep` of them: the
    first worker process of a machine that needs a scene packs it (files fetched, meshes
    decoded, BVH built) and writes it; the others wait for it and map it from disk, so a
    machine packs a scene once, not once per process, and a later job of the same scene
    (a resumed or re-rendered frame) not at all. One folder per scene, written under a
    temporary name and renamed into place: a reader sees a whole scene or none."""

    def __init__(self, folder: str | Path | None = None, keep: int | None = None, wait: float | None = None):
        self.folder = Path(folder or defaults.CACHE_DIR) / "packed"
        self.keep = defaults.PACKED_SCENES if keep is None else keep
        self._writing: list[threading.Thread] = []
        self.wait = defaults.PACK_WAIT if wait is None else wait
        self.code = _packing_code()
        self.usable = self.keep > 0
        if self.usable:
            try:
                for sub in ("tmp", "locks"):
                    (self.folder / sub).mkdir(parents=True, exist_ok=True)
                self._forget_cut_off()
            except OSError as exc:
                self._unusable(exc)

    def get_or_pack(self, digest: str, pack):
        """The packed scene of `digest`: from the cache, or `pack()`, then written to the
        cache on a thread while the caller renders (a million triangles are 340 MB: 0.3-0.8
        s). The thread holds the scene's lock until it is written, so the machine's other
        processes wait for it rather than pack it again."""
        if not self.usable:
            return pack()
        key = f"{digest}-{self.code}"
        found = self._load(key)
        if found is not None:
            return found
        with contextlib.ExitStack() as stack:
            held = stack.enter_context(self._locked(key))
            found = self._load(key) if held else None
            if found is not None:
                return found
            packed = pack()
            if held:  # the lock goes with the scene to the thread that writes it
                lock = stack.pop_all()
                writing = threading.Thread(target=self._store_and_evict, args=(key, packed, lock),
                                           name=f"store-{key[:12]}", daemon=True)
                try:
                    writing.start()
                except RuntimeError:  # no thread to be had: written here, as before
                    self._store_and_evict(key, packed, lock)
                else:
                    self._writing = [thread for thread in self._writing if thread.is_alive()] + [writing]
        return packed

    def settle(self) -> None:
        """Wait for the scenes being written to the cache (a process about to end calls it:
        a scene cut off midway would stay in tmp/)."""
        while self._writing:
            self._writing.pop().join()

    def _forget_cut_off(self) -> None:
        """Remove scenes whose writing stopped midway (a process killed while it wrote) an
        hour or more ago; a younger one may still be being written."""
        for path in (self.folder / "tmp").iterdir():
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > 3600:
                    shutil.rmtree(path, ignore_errors=True)

    def _store_and_evict(self, key: str, packed, lock: contextlib.ExitStack) -> None:
        try:
            with lock:
                self._store(key, packed)
            self._evict()
        except Exception:  # the scene is packed and rendering: the cache only loses it
            log.exception("packed scene cache: cannot store %s", key[:12])

    def _load(self, key: str):
        from farm.scene.pack import PackedScene

        path = self.folder / key
        try:
            meta = json.loads((path / "meta.json").read_text())
            arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                      for name in meta["arrays"]}
            os.utime(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("packed scene cache: %s unreadable (%s); packing it again", path.name[:12], exc)
            with contextlib.suppress(OSError):
                shutil.rmtree(path)
            return None
        return PackedScene(**arrays, width=meta["width"], height=meta["height"], digest=meta["digest"],
                           timings={"cached": 1.0})

    def _store(self, key: str, packed) -> None:
        try:
            temporary = Path(tempfile.mkdtemp(dir=self.folder / "tmp", prefix=key[:12]))
            try:
                names = [f.name for f in fields(packed) if isinstance(getattr(packed, f.name), np.ndarray)]
                for name in names:
                    np.save(temporary / f"{name}.npy", getattr(packed, name), allow_pickle=False)
                meta = {"arrays": names, "width": packed.width, "height": packed.height, "digest": packed.digest}
                (temporary / "meta.json").write_text(json.dumps(meta))
                os.rename(temporary, self.folder / key)
            except BaseException:
                shutil.rmtree(temporary, ignore_errors=True)
                raise
        except OSError as exc:
            log.warning("packed scene cache: cannot store %s: %s", key[:12], exc)

    def _evict(self) -> None:
        """Remove the least recently used packed scenes beyond `keep`."""
        with self._locked("evict") as held:
            if not held:
                return
            scenes = []
            for path in self.folder.iterdir():
                if path.name not in ("tmp", "locks"):
                    with contextlib.suppress(FileNotFoundError):
                        scenes.append((path.stat().st_mtime, path))
            for _, path in sorted(scenes)[:-self.keep]:
                shutil.rmtree(path, ignore_errors=True)
                log.info("packed scene cache: evicted %s", path.name[:12])

    @contextlib.contextmanager
    def _locked(self, name: str):
        with lock_file(self, name, self.wait) as held:
            yield held

    def _unusable(self, exc: OSError) -> None:
        if self.usable:
            log.warning("packed scene cache %s unusable (%s): every process packs its scenes", self.folder, exc)
        self.usable = False
