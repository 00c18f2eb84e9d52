"""`farm manager`: renders every job handed to it (farm.manager.jobs), all in one JobLoop,
with nobody attached, into its output store (farm.manager.store).

Each job is a ShotRender (farm.client.shot) turned step by step: the manager starts the
next frame of the job with the highest priority (then the oldest) while the farm has room
for it (the frames in flight, of the jobs not paused, have fewer buckets left than two per
worker, and their films fit in memory), so a job submitted behind a long one at a higher
priority starts at its next frame, and the workers never idle between jobs. A paused job
starts nothing, and takes its queued buckets back (JobRun.hold): the workers go on with
the other jobs' buckets. Only the leader acts (farm.manager.lease): every write to Redis or
to the store is made after its lease is checked, and a manager that lost the lead stops at
once, leaving every job as it stands for the new leader to adopt, as `farm collect` does.
Cf. Flamenco's Manager, Deadline's pulse and repository, OpenCue's Cuebot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import threading
import time
from pathlib import Path

from farm import defaults
from farm.client.loop import JobLoop
from farm.client.render import Listener
from farm.client.shot import ShotListener, ShotRender, room_for
from farm.exceptions import FarmError, JobCancelled
from farm.manager import jobs
from farm.manager.lease import Lease, LeaseLost

log = logging.getLogger(__name__)

LOOK_EVERY = 0.5  # seconds between two readings of the jobs' entries (a client's change wakes it at once)
PUBLISH_EVERY = 1.0  # seconds between two writes of the jobs' progress
THUMBNAIL = 160  # longest side of a job's last frame as the jobs page shows it, in pixels


class Manager:
    def __init__(self, redis, app, store, say=None, lease_seconds: float | None = None):
        self.redis, self.app, self.store = redis, app, store
        self.say = say or (lambda line: log.info(line))
        self.lease = Lease(redis, lease_seconds)
        self.shots: dict[str, ShotRender] = {}  # the jobs adopted and not ended, by id
        self.entries: dict[str, dict] = {}  # their entries at the last look
        self._stop = threading.Event()
        self._adopted: dict[str, tuple[float, float]] = {}  # id -> (monotonic, progress) when adopted: the ETA's base
        self._notices: dict[str, list[str]] = {}
        self._looked = self._progress_written = 0.0
        self.web_url = ""  # its web UI's, told to clients while it leads

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Wait to lead, then lead until stopped; raises LeaseLost where another manager took
        the lead meanwhile (this one then wrote nothing more)."""
        token = self.lease.acquire(self._stop)
        self.say(f"leading the farm's jobs (lease token {token})")
        url = defaults.MANAGER_URL or self.web_url
        if url:
            self.lease.check()
            self.redis.set(jobs.URL, url.rstrip("/"))
        lost = False
        try:
            self._lead()
        except LeaseLost:
            lost = True
            raise
        finally:
            if not lost:
                with contextlib.suppress(Exception):  # clients are told of no manager rather than of a dead one
                    if url and self.redis.get(jobs.URL) == url.rstrip("/").encode():
                        self.redis.delete(jobs.URL)
                self.lease.release()

    def _lead(self) -> None:
        loop = JobLoop(self.redis)
        loop.guard = self.lease.check
        while not self._stop.is_set():
            self.lease.check()
            if time.monotonic() - self._looked >= LOOK_EVERY:
                self._look(loop)
            self._feed(loop)
            if loop.runs:
                loop.step()
            elif self.redis.blpop([jobs.INBOX], timeout=LOOK_EVERY):
                self._looked = 0.0  # a client changed something: look now
            self._reap(loop)
            if time.monotonic() - self._progress_written >= PUBLISH_EVERY:
                self._write_progress()

    # -- the jobs' entries ---------------------------------------------------------------------

    def _write(self, job_id: str, **fields) -> None:
        self.lease.fenced_hset(jobs.key_for(job_id), {name: json.dumps(value) for name, value in fields.items()})
        if job_id in self.entries:
            self.entries[job_id].update(fields)

    def _look(self, loop: JobLoop) -> None:
        """Adopt the jobs queued or running that this manager does not turn yet; follow each
        one's pause, priority and cancel."""
        from farm.protocol.shots import ShotRecord

        self._looked = time.monotonic()
        self.redis.delete(jobs.INBOX)  # only a wake-up: what to do is in the entries, read next
        found = jobs.entries(self.redis)
        for job_id, entry in found.items():
            ended = entry.get("ended")
            if entry["state"] in jobs.ENDED and isinstance(ended, (int, float)) and time.time() - ended > jobs.HISTORY:
                self.lease.check()
                jobs.forget(self.redis, job_id)
                continue
            shot = self.shots.get(job_id)
            if shot is None and entry["state"] in ("queued", "running"):
                self.entries[job_id] = entry
                self._adopt(job_id, entry)
            elif shot is not None:
                self.entries[job_id].update(paused=entry["paused"], priority=entry["priority"])
                if ShotRecord(self.redis, job_id).cancelled():
                    self._end(loop, job_id, JobCancelled(f"job {job_id} was cancelled"))
        for job_id in [job_id for job_id in self.shots if job_id not in found]:  # its entry deleted by hand
            self._end(loop, job_id, JobCancelled(f"job {job_id} left the manager's list"))

    def _adopt(self, job_id: str, entry: dict) -> None:
        from farm.client.shot import FilesInRedis, picked_up

        try:
            folder = self.store.folder(job_id)
            document, frames, options, record = picked_up(self.redis, job_id, folder / entry["output"])
            stored = self.store.files(job_id)
            done = set(entry["frames_done"])  # written before a restart: not rendered again
            frames = [frame for frame in frames if not (frame.number in done and frame.output.name in stored)]
            options = dataclasses.replace(options, report=str(folder / "report.json"))
            shot = ShotRender(self.redis, self.app, document, frames, FilesInRedis(), options,
                              listener=_ShotListener(self, job_id), record=record)
        except JobCancelled as exc:
            self._write(job_id, state="cancelled", error=str(exc), ended=time.time())
            return
        except (FarmError, OSError, ValueError) as exc:
            self._write(job_id, state="failed", error=str(exc), ended=time.time())
            self.say(f"job {job_id}: cannot be rendered: {exc}")
            return
        self.shots[job_id] = shot
        self._notices[job_id] = list(entry["notices"])
        self._adopted[job_id] = (time.monotonic(), entry["progress"])
        if entry["state"] == "running":
            self.say(f"job {job_id} ({entry['name']}): adopted where it stood, {len(frames)} frame(s) to go")

    # -- frames in, frames out -----------------------------------------------------------------

    def _feed(self, loop: JobLoop) -> None:
        """Start frames, the highest priority's first, while the farm has room; hold the
        paused jobs' runs."""
        active = {}
        for job_id, shot in self.shots.items():
            paused = self.entries[job_id]["paused"]
            for render, frame in shot.active.items():
                if render.run is not None and render.run.paused != paused:
                    render.run.hold(paused)
                active[render] = (frame, paused)
        order = sorted((job_id for job_id, shot in self.shots.items()
                        if not self.entries[job_id]["paused"] and shot.next_frame() is not None),
                       key=lambda job_id: (-self.entries[job_id]["priority"], self.entries[job_id]["submitted"]))
        workers = self.shots[order[0]].live_workers() if order else 1  # counted every WORKERS_LOOK seconds
        for job_id in order:
            shot = self.shots[job_id]
            try:
                while (frame := shot.next_frame()) is not None and room_for(active, frame, workers):
                    if self.entries[job_id]["state"] != "running":
                        self._write(job_id, state="running", started=time.time())
                        self.say(f"job {job_id} ({self.entries[job_id]['name']}): started")
                    shot.start_next(loop)
                    active.update({render: (frame, False) for render, frame in shot.active.items()})
            except LeaseLost:
                raise
            except Exception as exc:
                self._end(loop, job_id, exc)

    def _reap(self, loop: JobLoop) -> None:
        for job_id, shot in list(self.shots.items()):
            try:
                shot.reap(loop)
            except LeaseLost:
                raise
            except Exception as exc:
                self._end(loop, job_id, exc)
                continue
            if shot.finished and shot.next_frame() is None:
                self.lease.check()
                shot.close()
                with contextlib.suppress(FarmError):
                    self.store.publish(job_id, self.store.folder(job_id) / "report.json")
                del self.shots[job_id]
                self._write(job_id, state="done", progress=1.0, eta=0, ended=time.time(),
                            files=sorted(self.store.files(job_id)))
                self.say(f"job {job_id}: done")

    def _end(self, loop: JobLoop, job_id: str, error: BaseException) -> None:
        """A job ends early: its frames in flight stop (keeping what they rendered), its
        entry says why."""
        shot = self.shots.pop(job_id)
        self.lease.check()
        with contextlib.suppress(Exception):
            shot.stop(loop, error)
        folder = self.store.folder(job_id)  # what the frames in flight kept (.partial images) goes to the store too
        for path in [path for path in folder.iterdir() if path.is_file() and not path.name.startswith(".")]:
            with contextlib.suppress(FarmError):
                self.store.publish(job_id, path)
        state = "cancelled" if isinstance(error, JobCancelled) else "failed"
        self._write(job_id, state=state, error=str(error), ended=time.time(),
                    files=sorted(self.store.files(job_id)))
        self.say(f"job {job_id}: {state}: {error}")

    def _write_progress(self) -> None:
        """Each running job's progress and ETA, and its notices, into its entry."""
        self._progress_written = time.monotonic()
        for job_id, shot in self.shots.items():
            entry = self.entries[job_id]
            if entry["state"] != "running":
                continue
            share, _ = shot.progress()
            before = len(entry["frames_done"]) - len(shot.written)  # frames written before this manager adopted it
            progress = min(1.0, (before + share) / max(1, entry["frames_total"]))
            began, base = self._adopted[job_id]
            gained = progress - base
            eta = (time.monotonic() - began) * (1.0 - progress) / gained if gained > 0.001 else None
            self._write(job_id, progress=round(progress, 4), eta=None if eta is None else round(eta, 1),
                        notices=self._notices[job_id][-jobs.MAX_NOTICES:])

    def notice(self, job_id: str, line: str) -> None:
        self._notices.setdefault(job_id, []).append(f"{time.strftime('%H:%M:%S')} {line}")

    def frame_written(self, job_id: str, number: int, path: Path) -> None:
        self.lease.check()
        self.store.publish(job_id, path)
        done = sorted(set(self.entries[job_id]["frames_done"]) | {number})
        self._write(job_id, frames_done=done, last_frame=path.name)

    def thumbnail(self, job_id: str, film) -> None:
        """The job's last image, small, for the jobs page."""
        from PIL import Image

        pixels = film.srgb8()
        step = max(1, -(-max(pixels.shape[:2]) // THUMBNAIL))
        buffer = io.BytesIO()
        Image.fromarray(pixels[::step, ::step].copy(), "RGB").save(buffer, "PNG")
        self.lease.check()
        self.redis.set(f"{jobs.key_for(job_id)}:thumbnail", buffer.getvalue(), ex=jobs.HISTORY)


class _ShotListener(ShotListener):
    def __init__(self, manager: Manager, job_id: str):
        self.manager, self.job_id = manager, job_id

    def frame(self, frame) -> Listener:
        return _FrameListener(self.manager, self.job_id, frame.number)

    def frame_written(self, frame, output: Path, done: int, total: int, in_flight: int) -> None:
        self.manager.frame_written(self.job_id, frame.number, output)


class _FrameListener(Listener):
    """A frame of a managed job: its notices go to the job's entry, and nothing is written
    unless this manager still leads."""

    def __init__(self, manager: Manager, job_id: str, number: int):
        self.manager, self.job_id, self.number = manager, job_id, number

    def notice(self, message: str) -> None:
        self.manager.notice(self.job_id, f"frame {self.number}: {message}")

    warning = notice

    def say(self, line: str) -> None:
        self.manager.notice(self.job_id, f"frame {self.number}: {line}")

    @contextlib.contextmanager
    def writing(self):
        self.manager.lease.check()
        yield

    def written(self, run, output: Path) -> None:
        with contextlib.suppress(Exception):  # a thumbnail is no reason to fail a frame
            self.manager.thumbnail(self.job_id, run.film)
