"""Where the manager keeps each job's outputs (its frames, its report): a folder on its
machine, or an object store through fsspec (`s3://bucket/prefix` with s3fs installed:
`pip install 'farm[s3]'`), for farms whose head node is disposable.

Frames are written whole into a local folder first (FrameRender writes through
farm.client.film.write_whole); a remote store gets each file once it is complete, under
`<prefix>/<job id>/<name>`, and the local copy goes. S3's own credentials apply (the
AWS_* variables, ~/.aws, an instance role); AWS_ENDPOINT_URL points s3fs at another
S3-compatible server (MinIO, Ceph, moto).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from farm.exceptions import FarmError

READ_CHUNK = 1 << 20


class OutputStore:
    def __init__(self, where: str):
        self.where = where
        if "://" in where:
            try:
                import fsspec

                self.fs, self.root = fsspec.core.url_to_fs(where)
            except ImportError as exc:
                raise FarmError(f"output store {where}: needs fsspec and its backend ({exc}); "
                                "pip install 'farm[s3]'") from None
            except ValueError as exc:
                raise FarmError(f"output store {where}: {exc}") from None
            self.root = self.root.rstrip("/")
            self._staging = Path(tempfile.mkdtemp(prefix="farm-manager-"))
            try:
                self.fs.ls(self.root.split("/")[0])
            except Exception as exc:  # wrong bucket, no credentials, no server: one line now, not at the first frame
                raise FarmError(f"output store {where}: cannot list it ({type(exc).__name__}: {exc})") from None
        else:
            self.fs, self.root, self._staging = None, where, None
            if not Path(where).is_dir():
                raise FarmError(f"output folder {where}: no such folder")

    @property
    def remote(self) -> bool:
        return self.fs is not None

    def folder(self, job_id: str) -> Path:
        """The local folder a job's files are written into."""
        folder = (self._staging or Path(self.root)) / job_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def publish(self, job_id: str, path: Path) -> None:
        """A file written whole in `folder(job_id)` goes to the store (a no-op for a folder)."""
        if self.fs is None or not path.exists():
            return
        target = f"{self.root}/{job_id}/{path.name}"
        try:
            self.fs.put_file(str(path), target)
        except Exception as exc:
            raise FarmError(f"output store: cannot write {target} ({type(exc).__name__}: {exc})") from None
        path.unlink()

    def files(self, job_id: str) -> dict[str, int]:
        """The files of a job in the store: name -> size."""
        if self.fs is None:
            folder = Path(self.root) / job_id
            return ({p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}
                    if folder.is_dir() else {})
        try:
            listed = self.fs.ls(f"{self.root}/{job_id}", detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        return {Path(item["name"]).name: int(item.get("size") or 0) for item in listed
                if item.get("type") == "file" and not Path(item["name"]).name.startswith(".")}

    def exists(self, job_id: str, name: str) -> bool:
        return name in self.files(job_id)

    def read(self, job_id: str, name: str):
        """The chunks of one of `files(job_id)`."""
        if name not in self.files(job_id):
            raise FileNotFoundError(name)
        opened = (open(Path(self.root) / job_id / name, "rb") if self.fs is None
                  else self.fs.open(f"{self.root}/{job_id}/{name}", "rb"))
        with opened as handle:
            while chunk := handle.read(READ_CHUNK):
                yield chunk

    def close(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
