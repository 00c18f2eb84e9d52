"""A shot's record, so that a shot outlives its client: the hash `farm:shot:<id>` (what
the shot renders: the scene's digest, its frames, their rate, the options that decide the
bits) and the hash `farm:shot:<id>:jobs` (each started frame's job id). `farm collect SHOT`
reads them to go on where the client stopped: it collects the frames whose jobs exist and
starts the others from the stored scene. A frame rendered in rounds (`--progressive`,
`--noise`) also keeps, in the hash `farm:shot:<id>:rounds`, its film's sums after its last
complete round: `farm collect` goes on from the next round instead of the first."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass, field

import numpy as np

from farm import defaults
from farm.exceptions import JobDataError, JobError, JobVanished
from farm.protocol.record import ids_of


# Most bytes of sums a frame in rounds keeps in Redis for `farm collect` (1080p with every AOV
# is 216 MB; its rounds start again when picked up).
MAX_ROUNDS_BYTES = 128 * 2**20


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
        self.rounds_key = f"{self.key_for(shot_id)}:rounds"

    @staticmethod
    def key_for(shot_id: str) -> str:
        return f"{defaults.KEY_PREFIX}:shot:{shot_id}"

    @classmethod
    def create(cls, redis, document: dict, digest: str, frames: tuple[int, ...], fps: float, bucket_size: int,
               order: str, options: dict | None = None, priority: int = defaults.DEFAULT_PRIORITY) -> ShotRecord:
        """The record of a new shot, with its scene document stored (once per digest), so
        that `farm collect` can start a frame no job of which was made yet."""
        from farm.protocol.scenes import SceneStore

        meta = ShotMeta(uuid.uuid4().hex, digest, tuple(frames), fps, bucket_size, order, time.time(),
                        dict(options or {}))
        record = cls(redis, meta.shot_id)
        with redis.pipeline(transaction=False) as pipe:
            SceneStore(redis).put(pipe, digest, SceneStore.encode(document))
            pipe.hset(record.key, mapping={"meta": json.dumps(asdict(meta)), "priority": str(int(priority))})
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

    def priority(self) -> int:
        """The shot's priority now (`farm priority SHOT N` changes it): its next frames start at it."""
        from farm.protocol.record import priority_of

        return priority_of(self.redis.hget(self.key, "priority"))

    def set_priority(self, priority: int) -> None:
        """The shot's next frames start at `priority`, and its frames rendering go on at it."""
        from farm.protocol.record import JobRecord

        self.redis.hset(self.key, "priority", str(int(priority)))
        for job_id in self.jobs().values():
            JobRecord(self.redis, job_id).set_priority(priority)

    def uncancel(self) -> None:
        """A cancelled shot is queued again (farm retry): frames may start again."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hdel(self.key, "state")
            pipe.expire(self.key, defaults.JOB_TTL)
            pipe.expire(self.jobs_key, defaults.JOB_TTL)
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
            pipe.delete(self.rounds_key)
            pipe.execute()

    def save_rounds(self, frame: int, done: int, plan, sums) -> bool:
        """A frame's film after `done` complete rounds, the last of `plan`: its int64 sums,
        compressed (a frame over MAX_ROUNDS_BYTES of sums is not kept: its rounds start again
        when picked up). Whether it was kept."""
        if sums.nbytes > MAX_ROUNDS_BYTES:
            return False
        buffer = io.BytesIO()
        np.savez_compressed(buffer, done=np.int64(done), plan=np.frombuffer(plan.to_bytes(), np.uint8), sums=sums)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.rounds_key, str(frame), buffer.getvalue())
            pipe.expire(self.rounds_key, defaults.JOB_TTL)
            pipe.execute()
        return True

    def rounds(self, frame: int, width: int, height: int, channels: int):
        """(rounds done, the last one's Plan, the film's sums) of a frame, or None where none
        is kept or what is kept does not fit the frame (a record is input from outside)."""
        from farm.protocol.plans import Plan

        data = self.redis.hget(self.rounds_key, str(frame))
        if data is None:
            return None
        try:  # a record is input from outside: no member may unpack to more than the frame's sums
            with zipfile.ZipFile(io.BytesIO(data)) as packed:
                if any(info.file_size > height * width * channels * 8 + 4096 for info in packed.infolist()):
                    return None
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                done, plan_bytes, sums = int(stored["done"]), stored["plan"].tobytes(), stored["sums"]
            plan = Plan.from_bytes(plan_bytes, width, height)
        except (ValueError, KeyError, OSError, JobError, zipfile.BadZipFile):
            return None
        if done < 1 or sums.dtype != np.int64 or sums.shape != (height, width, channels):
            return None
        return done, plan, sums

    def forget_rounds(self, frame: int) -> None:
        self.redis.hdel(self.rounds_key, str(frame))
