"""A worker's folder of fetched assets, by content hash, shared by the worker processes
of one machine.

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
import logging
import os
import tempfile
from pathlib import Path

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
        """Held while one process fetches `digest`; others wanting it wait, then find it cached."""
        with self._locked(digest):
            yield

    def evict(self) -> int:
        """Remove least recently used files until the cache fits its limit; returns how many."""
        removed = 0
        with self._locked("evict"):
            if not self.usable:
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
        """Hold the lock file `locks/<name>`; a folder that can no longer hold one (made
        read-only, out of inodes, removed) makes the cache unusable, not the caller fail."""
        handle = None
        if self.usable:
            try:
                handle = open(self.folder / "locks" / name, "a+b")
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError as exc:
                if handle is not None:
                    handle.close()
                    handle = None
                self._unusable(exc)
        try:
            yield
        finally:
            if handle is not None:
                handle.close()  # releases the lock

    def _unusable(self, exc: OSError) -> None:
        """A cache that cannot be written costs speed, never a bucket: fetch every time."""
        if self.usable:
            log.warning("asset cache %s unusable (%s): assets are fetched from Redis every time", self.folder, exc)
        self.usable = False
