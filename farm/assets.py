"""The files a scene names (meshes, textures, environment maps), by content hash.

`load_scene` records each file's SHA-256 in the scene document; the bytes are read from
the scene's folder on the client (`FolderAssets`) and from Redis on a worker
(`RedisAssets`), where each file is stored once under `farm:asset:<sha256>` whatever
the number of jobs using it. Every read is checked against the recorded digest, so a
worker never renders with a file other than the one the client saw.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from farm import defaults
from farm.exceptions import SceneError


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FolderAssets:
    """Files relative to a scene's folder, never outside it."""

    def __init__(self, folder: str | Path, digests: dict[str, str] | None = None):
        self.folder = Path(folder).resolve()
        self.digests = digests or {}

    def path(self, name: str) -> Path:
        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder):
            raise SceneError(f"{name}: outside the scene's folder {self.folder}")
        return path

    def read(self, name: str) -> bytes:
        path = self.path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SceneError(f"{name}: no such file in {self.folder}") from None
        except OSError as exc:
            raise SceneError(f"{name}: cannot read: {exc.strerror}") from None
        expected = self.digests.get(name)
        if expected is not None and digest_of(data) != expected:
            raise SceneError(f"{name}: changed on disk since the scene was loaded")
        return data


class RedisAssets:
    """Files stored in Redis by `upload`, fetched and verified by a worker."""

    def __init__(self, redis, digests: dict[str, str]):
        self.redis = redis
        self.digests = digests

    @staticmethod
    def key_for(digest: str) -> str:
        return f"{defaults.KEY_PREFIX}:asset:{digest}"

    def read(self, name: str) -> bytes:
        digest = self.digests.get(name)
        if digest is None:
            raise SceneError(f"{name}: not among the scene's recorded files")
        data = self.redis.get(self.key_for(digest))
        if data is None:
            raise SceneError(f"{name}: asset {digest[:12]} is missing from Redis")
        if digest_of(data) != digest:
            raise SceneError(f"{name}: asset {digest[:12]} in Redis does not match its digest")
        return data

    @classmethod
    def upload(cls, redis, digests: dict[str, str], source: FolderAssets, ttl: int) -> None:
        """Store each file once (skipping those already there) and extend its lifetime."""
        for name, digest in digests.items():
            key = cls.key_for(digest)
            if not redis.expire(key, ttl):
                redis.set(key, source.read(name), nx=True, ex=ttl)
