"""A shot's record, so that a shot outlives its client: the hash `farm:shot:<id>` (what
the shot renders: the scene's digest, its frames, their rate, the options that decide the
bits) and the hash `farm:shot:<id>:jobs` (each started frame's job id). `farm collect SHOT`
reads them to go on where the client stopped: it collects the frames whose jobs exist and
starts the others from the stored scene."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field

from farm import defaults
from farm.exceptions import JobDataError, JobVanished
from farm.protocol.record import ids_of


@dataclass(frozen=True)
class ShotMeta:
    shot_id: str
    digest: str  # the scene document's (farm.protocol.scenes.SceneStore)
    frames: tuple[int, ...]
    fps: float
    bucket_size: int
    order: str
    created: float = 0.0
    # The rest of the frames' options (farm.client.render.RenderOptions.kept: AOVs, denoise,
    # rounds, noise target...), so that `farm collect` renders the frames it starts as the
    # shot's client would.
    options: dict = field(default_factory=dict)


class ShotRecord:
    """The two hashes of one shot, and every operation on them."""

    def __init__(self, redis, shot_id: str):
        self.redis, self.shot_id = redis, shot_id
        self.key, self.jobs_key = self.key_for(shot_id), f"{self.key_for(shot_id)}:jobs"

    @staticmethod
    def key_for(shot_id: str) -> str:
        return f"{defaults.KEY_PREFIX}:shot:{shot_id}"

    @classmethod
    def create(cls, redis, document: dict, digest: str, frames: tuple[int, ...], fps: float, bucket_size: int,
               order: str, options: dict | None = None) -> ShotRecord:
        """The record of a new shot, with its scene document stored (once per digest), so
        that `farm collect` can start a frame no job of which was made yet."""
        from farm.protocol.scenes import SceneStore

        meta = ShotMeta(uuid.uuid4().hex, digest, tuple(frames), fps, bucket_size, order, time.time(),
                        dict(options or {}))
        record = cls(redis, meta.shot_id)
        with redis.pipeline(transaction=False) as pipe:
            SceneStore(redis).put(pipe, digest, SceneStore.encode(document))
            pipe.hset(record.key, mapping={"meta": json.dumps(asdict(meta))})
            pipe.expire(record.key, defaults.JOB_TTL)
            pipe.execute()
        record.meta = meta
        return record

    def exists(self) -> bool:
        return bool(self.redis.exists(self.key))

    @classmethod
    def ids(cls, redis):
        """The id of every shot whose record is in Redis."""
        return ids_of(redis, cls.key_for)

    def cancel(self) -> None:
        """`farm cancel SHOT`: no frame starts any more (ShotRender and `farm collect` look);
        the record goes with its frames' jobs."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.key, "state", "cancelled")
            pipe.expire(self.key, defaults.FINISHED_TTL)
            pipe.expire(self.jobs_key, defaults.FINISHED_TTL)
            pipe.execute()

    def cancelled(self) -> bool:
        return self.redis.hget(self.key, "state") == b"cancelled"

    def load(self) -> ShotMeta:
        """The shot's description, checked (Redis is input from outside)."""
        raw = self.redis.hget(self.key, "meta")
        if raw is None:
            raise JobVanished(f"shot {self.shot_id} is not on the farm (finished more than "
                              f"{defaults.FINISHED_TTL} s ago, or never there)")
        try:
            fields = json.loads(raw)
            meta = ShotMeta(**{**fields, "frames": tuple(int(f) for f in fields["frames"])})
            if not (meta.frames and meta.fps > 0 and isinstance(meta.digest, str) and isinstance(meta.options, dict)):
                raise ValueError("no frames, or no frame rate")
        except (ValueError, TypeError, KeyError) as exc:
            raise JobDataError(f"shot {self.shot_id}: malformed record in Redis ({exc})") from None
        self.meta = meta
        return meta

    def started(self, frame: int, job_id: str) -> None:
        """A frame's job exists: `farm collect` collects it rather than starting it again.
        Both keys live as long as the newest frame's job."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.jobs_key, str(frame), job_id)
            pipe.expire(self.jobs_key, defaults.JOB_TTL)
            pipe.expire(self.key, defaults.JOB_TTL)
            pipe.execute()

    def jobs(self) -> dict[int, str]:
        """The job id of every frame started, by frame."""
        found = {}
        for frame, job_id in self.redis.hgetall(self.jobs_key).items():
            try:
                found[int(frame)] = job_id.decode()
            except ValueError:
                continue
        return found

    def finish(self) -> None:
        """Every frame is written: the record goes with its frames' jobs (FINISHED_TTL)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.expire(self.key, defaults.FINISHED_TTL)
            pipe.expire(self.jobs_key, defaults.FINISHED_TTL)
            pipe.execute()
