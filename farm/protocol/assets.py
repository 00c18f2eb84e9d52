"""The files a scene names (meshes, textures, environment maps), by content hash.

`load_scene` records each file's SHA-256 in the scene document; the bytes are read from
the scene's folder on the client (`FolderAssets`) and from Redis on a worker
(`RedisAssets`), where each file is stored once, in chunks of ASSET_CHUNK bytes, under
`farm:asset:<sha256>` whatever the number of jobs using it. Every read is checked
against the recorded digest, so a worker never renders with a file other than the one
the client saw; a worker keeps what it fetched in its AssetCache (farm.worker.cache).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from farm import defaults
from farm.exceptions import AssetError, SceneError

log = logging.getLogger(__name__)

# Largest chunk a worker accepts from Redis, whatever the uploader's ASSET_CHUNK was.
MAX_CHUNK = 64 << 20


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def size_text(size: int) -> str:
    """1000 bytes, 97.7 KiB, 2.0 GiB."""
    if size < 1024:
        return f"{size} bytes"
    exponent = min(int(math.log(size, 1024)), 3)
    return f"{size / 1024 ** exponent:.1f} {('KiB', 'MiB', 'GiB')[exponent - 1]}"


def check_size(name: str, size: int) -> None:
    """Refuse a file over MAX_ASSET_BYTES before reading (or fetching) any of it."""
    if size > defaults.MAX_ASSET_BYTES:
        raise SceneError(f"{name}: {size_text(size)} is over the limit of "
                         f"{size_text(defaults.MAX_ASSET_BYTES)} per file (FARM_MAX_ASSET_BYTES)")


# Files the client makes from a scene (a USD stage's meshes, farm.scene.usd) are named
# GENERATED + their SHA-256 + a suffix, and kept under FARM_CACHE_DIR/generated: every
# FolderAssets finds them there, and they travel like the scene's own files.
GENERATED = "<generated>/"
# A generated file not written again for this long is removed when another is written.
GENERATED_KEEP = 7 * 24 * 3600


def generated_folder() -> Path:
    return Path(defaults.CACHE_DIR) / "generated"


def write_generated(data: bytes, suffix: str) -> str:
    """Keep `data` as a generated file; its name in a scene document."""
    import os
    import time
    import uuid

    folder = generated_folder()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{digest_of(data)}{suffix}"
    target = folder / name
    try:
        if target.stat().st_size != len(data):
            raise FileNotFoundError(target)
        os.utime(target)  # in use again: kept another GENERATED_KEEP
    except FileNotFoundError:  # new, or another client pruned it just now
        temporary = folder / f".{name}.{uuid.uuid4().hex}"  # pids repeat across containers
        temporary.write_bytes(data)
        os.replace(temporary, target)
    for old in folder.iterdir():  # the others no scene has written for a week
        try:
            if old != target and time.time() - old.stat().st_mtime > GENERATED_KEEP:
                old.unlink()
        except OSError:
            pass
    return GENERATED + name


class FolderAssets:
    """Files relative to a scene's folder, never outside it (symlinks included), and the
    generated files the scene names (GENERATED)."""

    def __init__(self, folder: str | Path, digests: dict[str, str] | None = None):
        self.folder = Path(folder).resolve()
        self.digests = digests or {}

    def path(self, name: str) -> Path:
        if name.startswith(GENERATED):
            rest = name[len(GENERATED):]
            if "/" in rest or rest.startswith(".") or not rest:
                raise SceneError(f"{name}: not the name of a generated file")
            return generated_folder() / rest
        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder):
            raise SceneError(f"{name}: leads outside the scene's folder {self.folder}")
        return path

    def size(self, name: str) -> int:
        try:
            size = self.path(name).stat().st_size
        except FileNotFoundError:
            raise SceneError(f"{name}: no such file in {self.folder}") from None
        except OSError as exc:
            raise SceneError(f"{name}: cannot read: {exc.strerror}") from None
        check_size(name, size)
        return size

    def read(self, name: str) -> bytes:
        self.size(name)
        try:
            data = self.path(name).read_bytes()
        except OSError as exc:
            raise SceneError(f"{name}: cannot read: {exc.strerror}") from None
        expected = self.digests.get(name)
        if expected is not None and digest_of(data) != expected:
            raise SceneError(f"{name}: changed on disk since the scene was loaded")
        return data

    def chunks(self, name: str, size: int) -> Iterator[bytes]:
        """The file in pieces of `size` bytes, never whole in memory."""
        self.size(name)
        try:
            with open(self.path(name), "rb") as source:
                while chunk := source.read(size):
                    yield chunk
        except OSError as exc:
            raise SceneError(f"{name}: cannot read: {exc.strerror}") from None

    def digest(self, name: str) -> str:
        sha = hashlib.sha256()
        for chunk in self.chunks(name, defaults.ASSET_CHUNK):
            sha.update(chunk)
        return sha.hexdigest()


@dataclass
class Transfer:
    """What moving a scene's files cost: files and bytes sent (or fetched), and reused."""

    files: int = 0
    bytes: int = 0
    reused: int = 0  # already in Redis (upload) or in the worker's cache (fetch)


class _Damaged(Exception):
    """What is wrong with a file's copy in Redis (caught within this module)."""


class RedisAssets:
    """Files stored in Redis by `upload`, fetched, verified and cached by a worker.

    `farm:asset:<sha256>` is a hash: `size`, `chunk_size`, and chunks "0", "1", ...;
    `size` is written last, so a file whose upload was cut short counts as absent."""

    def __init__(self, redis, digests: dict[str, str], cache=None):
        self.redis = redis
        self.digests = digests
        self.cache = cache
        self.fetched = Transfer()

    @staticmethod
    def key_for(digest: str) -> str:
        return f"{defaults.KEY_PREFIX}:asset:{digest}"

    def read(self, name: str) -> bytes:
        digest = self.digests.get(name)
        if digest is None:
            raise AssetError(f"{name}: not among the scene's recorded files")
        if self.cache is None:
            return self._fetch(name, digest)
        data = self.cache.get(digest)
        if data is None:
            with self.cache.fetching(digest):  # another process may be fetching it right now
                data = self.cache.get(digest)
                if data is None:
                    data = self._fetch(name, digest)
                    self.cache.put(digest, data)
                    return data
        self.fetched.reused += 1
        return data

    def _fetch(self, name: str, digest: str) -> bytes:
        """The file from Redis, chunk by chunk, each size checked before it is taken. A
        damaged copy is removed from Redis, so the next upload sends it afresh rather than
        skipping it as present: the job fails once, not every job after it."""
        key = self.key_for(digest)
        size, chunk_size = self.redis.hmget(key, "size", "chunk_size")
        if size is None:  # another worker may have just found it damaged and removed it: say why
            why = self.redis.get(f"{key}:damaged")
            raise AssetError(why.decode() if why else
                             f"{name}: asset {digest[:12]} is missing from Redis (expired or never fully uploaded)")
        try:
            data = self._read_chunks(name, key, size, chunk_size)
            if digest_of(data) != digest:
                raise _Damaged("does not match its digest")
        except _Damaged as exc:
            why = f"{name}: asset {digest[:12]} in Redis {exc}; removed, so the next submit uploads it again"
            with self.redis.pipeline() as pipe:
                pipe.delete(key)
                pipe.set(f"{key}:damaged", why, ex=defaults.FINISHED_TTL)
                pipe.execute()
            raise AssetError(why) from None
        self.fetched.files += 1
        self.fetched.bytes += len(data)
        log.info("asset %s (%s) fetched: %d bytes", name, digest[:12], len(data))
        return data

    def _read_chunks(self, name: str, key: str, size, chunk_size) -> bytes:
        try:
            size, chunk_size = int(size), int(chunk_size)
        except (TypeError, ValueError):
            raise _Damaged("has a malformed header") from None
        if not (0 <= size and 0 < chunk_size <= MAX_CHUNK):
            raise _Damaged("has a malformed header")
        try:
            check_size(name, size)
        except SceneError as exc:
            raise _Damaged(f"claims a size over the limit ({exc})") from None
        data = bytearray()
        count = math.ceil(size / chunk_size)
        for index in range(count):
            chunk = self.redis.hget(key, str(index))
            expected = chunk_size if index < count - 1 else size - chunk_size * (count - 1)
            if chunk is None or len(chunk) != expected:
                what = "missing" if chunk is None else f"{len(chunk)} bytes, not {expected}"
                raise _Damaged(f"is damaged: chunk {index} of {count} {what}")
            data += chunk
        return bytes(data)

    @classmethod
    def upload(cls, redis, digests: dict[str, str], source: FolderAssets, ttl: int) -> Transfer:
        """Store each file once (those already complete only get their lifetime extended),
        in chunks read from disk one at a time; returns what was sent."""
        sent = Transfer()
        for name, digest in digests.items():
            key = cls.key_for(digest)
            if redis.hexists(key, "size"):
                redis.expire(key, ttl)
                sent.reused += 1
                continue
            sha, size, chunk_size = hashlib.sha256(), 0, defaults.ASSET_CHUNK
            for index, chunk in enumerate(source.chunks(name, chunk_size)):
                sha.update(chunk)
                size += len(chunk)
                with redis.pipeline(transaction=False) as pipe:
                    pipe.hset(key, str(index), chunk)
                    pipe.expire(key, ttl)
                    pipe.execute()
            if sha.hexdigest() != digest:
                redis.delete(key)
                raise SceneError(f"{name}: changed on disk since the scene was loaded")
            with redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, mapping={"chunk_size": chunk_size, "size": size})
                pipe.expire(key, ttl)
                pipe.delete(f"{key}:damaged")
                pipe.execute()
            sent.files += 1
            sent.bytes += size
        return sent
