"""A shot on the farm: a FrameRender per frame (farm.client.render), all turned in one
JobLoop, so the shot flows like one big frame.

The scene and its files are uploaded once (a frame's job names the shot's document by its
digest, and the moment it shows: JobMeta.time); every worker evaluates the frame's
keyframes itself. The next frame starts while the frames in flight still have a few
buckets each worker can take, so its buckets are queued while their last ones render and
no worker idles between frames; a frame is written the moment its last bucket is in.
Cf. Deadline's and Flamenco's frame tasks, here buckets of frames in one queue.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

from farm import defaults
from farm.client.loop import JobLoop
from farm.client.render import FrameRender, Listener, RenderOptions, write_report
from farm.protocol.tiles import AOV_CHANNELS, CHANNELS
from farm.scene import Scene

def plan_shot(scene: Scene, document: dict, source: str, frames_text: str, fps: float, output: Path,
              skip_existing: bool = False) -> list[ShotFrame]:
    """The frames of `submit --frames`, each with its scene at its moment (parsed here, so
    that a keyframe that makes a frame impossible is one line before anything starts) and
    its file; with `skip_existing`, those whose file is written already are left out."""
    from farm.client.frames import check_animation, parse_frames

    numbers = parse_frames(frames_text)
    check_animation(numbers, fps, scene.animation, source)
    return _frames(scene, document, source, numbers, fps, output, skip_existing=skip_existing)


def _frames(scene: Scene, document: dict, source: str, numbers: tuple[int, ...], fps: float, output: Path,
            jobs: dict[int, str] | None = None, skip_existing: bool = False) -> list[ShotFrame]:
    """A ShotFrame per frame number: the scene at its moment (`scene` itself for a still
    one), its file under `output`'s pattern, and its job where `jobs` names one."""
    from farm.client.frames import check_pattern, frame_path
    from farm.scene import parse_scene

    pattern = check_pattern(str(output), numbers)
    frames = []
    for number in numbers:
        path = frame_path(pattern, number)
        if skip_existing and path.exists():
            continue
        moment = parse_scene(document, source, number / fps) if scene.animation else scene
        frames.append(ShotFrame(number, moment, path, (jobs or {}).get(number)))
    return frames


def picked_up(redis, shot_id: str, output: Path) -> tuple[dict, list[ShotFrame], RenderOptions, object]:
    """A shot already on the farm (`farm collect SHOT -o PATTERN`): its scene document, its
    frames (each with its job where it has one), the options its record keeps, and its record."""
    from farm.protocol.scenes import SceneStore
    from farm.protocol.shots import ShotRecord
    from farm.scene import parse_scene

    record = ShotRecord(redis, shot_id)
    meta = record.load()
    if record.cancelled():
        from farm.exceptions import JobCancelled

        raise JobCancelled(f"shot {shot_id} was cancelled")
    document = SceneStore(redis).get(meta.digest)
    source = f"shot {shot_id}"
    frames = _frames(parse_scene(document, source), document, source, meta.frames, meta.fps, output, record.jobs())
    options = RenderOptions.restored(meta.bucket_size, meta.order, meta.options)
    return document, frames, options, record


class FilesInRedis:
    """The files of a shot picked up by `farm collect`, read from nowhere but Redis, where
    its client put them: one that has expired there is one line, not a guess."""

    def chunks(self, name: str, size: int):
        from farm.exceptions import SceneError

        raise SceneError(f"{name}: no longer on the farm (its files live {defaults.JOB_TTL} s after the shot's "
                         f"last frame started); submit the shot again from its scene")
        yield b""  # a generator, as FolderAssets.chunks is


# Frames per worker from which a shot's frames render a frame a bucket (where no bucket size
# is chosen): enough that the last round of frames, which may leave workers idle, is a small
# part of the shot; fewer, and splitting frames keeps every worker busy to the end.
WHOLE_FRAMES_PER_WORKER = 8


def shot_bucket_size(redis, frames: list[ShotFrame], default: int, workers: int | None = None) -> int:
    """The bucket size of a shot with none chosen: a frame a bucket where the shot has many
    frames for the farm's workers (`workers`, else those alive now) and each frame fits in
    one bucket: no frame is split, so no tile of it waits on another worker (measured:
    `farm bench --shot 48` on 2 workers, 95.9% against 94.2% in 64 px buckets). Else `default`."""
    side = max(max(f.scene.film.width, f.scene.film.height) for f in frames)
    if side > defaults.MAX_BUCKET_SIZE or side <= default:
        return default
    if not workers:
        from farm.protocol import registry

        workers = registry.healthy(redis)
    return side if workers and len(frames) >= WHOLE_FRAMES_PER_WORKER * workers else default


# Pixels of the frames in flight at once (their films are in this process's memory): eight
# 4K frames; a frame larger than this renders alone.
MAX_PIXELS_IN_FLIGHT = 8 * 3840 * 2160
# Seconds between two looks at how many workers the farm has (farm.protocol.registry).
WORKERS_LOOK = 2.0


def room_for(active: dict, frame: ShotFrame, workers: int) -> bool:
    """Whether `frame` starts now beside the frames in flight (`active`: render -> (its
    frame, paused)): always where none renders; else when those not paused have fewer
    buckets left than two per worker (one rendering, one queued behind it), and all their
    films leave room in memory for its."""
    if not active:
        return True
    pixels = sum(f.scene.film.width * f.scene.film.height for f, _ in active.values())
    if pixels + frame.scene.film.width * frame.scene.film.height > MAX_PIXELS_IN_FLIGHT:
        return False
    left = sum(render.run.total - len(render.run.records) for render, (_, paused) in active.items()
               if not paused and render.run is not None)
    return left < 2 * workers


@dataclass(frozen=True)
class ShotFrame:
    number: int
    scene: Scene  # the shot's scene at this frame's moment (Scene.time)
    output: Path
    job_id: str | None = None  # its job already on the farm (`farm collect SHOT`): collected, not started


class RoundsKept:
    """What a shot's record keeps of a frame in rounds, for `farm collect`: each round's job
    as it starts, and the film's sums after each complete round."""

    def __init__(self, record, frame: int):
        self.record, self.frame = record, frame

    def started(self, job_id: str) -> None:
        self.record.started(self.frame, job_id)

    def done(self, count: int, plan, film) -> None:
        with contextlib.suppress(Exception):  # kept only for a pick-up: no reason to fail the frame
            self.record.save_rounds(self.frame, count, plan, film.sums)


class ShotListener:
    """What a shot tells: each frame's render tells its own Listener; the shot says when a
    frame is written and when the shot ends."""

    def frame(self, frame: ShotFrame) -> Listener:
        return Listener()

    def frame_written(self, frame: ShotFrame, output: Path, done: int, total: int, in_flight: int) -> None:
        """A frame's image is written: `done` of `total` frames, `in_flight` still rendering."""

    def shot_done(self, written: list[Path], seconds: float) -> None:
        """Every frame is written."""


class ShotRender:
    """The frames of a shot into their files; `check_alive` as FrameRender's."""

    def __init__(self, redis, app, document: dict, frames: list[ShotFrame], assets, options: RenderOptions,
                 listener: ShotListener | None = None, check_alive=None, record=None):
        self.redis, self.app, self.document, self.frames, self.assets = redis, app, document, frames, assets
        self.options, self.listener, self.check_alive = options, listener or ShotListener(), check_alive
        self.record = record  # the shot's ShotRecord (farm.protocol.shots): which job each frame is
        self.reports: list[dict] = []
        self.pending, self.active = deque(frames), {}  # frames to start; FrameRender -> its frame, in flight
        self.written: dict[int, Path] = {}  # frame number -> its file
        self._began: float | None = None  # perf_counter at the first frame's start
        self._workers, self._looked = 1, -WORKERS_LOOK

    def render(self) -> list[Path]:
        """Render every frame, blocking; the files written, in the shot's order. What ends
        the shot early (a failed frame, Ctrl-C) ends every frame in flight, each keeping
        what it rendered as a frame alone does, and is raised."""
        loop = JobLoop(self.redis)
        try:
            while not self.finished:
                while self.next_frame() is not None and self._room(self.active, self.next_frame()):
                    self.start_next(loop)
                loop.step()
                self.reap(loop)
        except BaseException as exc:
            self.stop(loop, exc)
            raise
        return self.close()

    # -- the shot as steps, for a loop that turns several shots (farm.manager) ---------------

    @property
    def finished(self) -> bool:
        return not self.pending and not self.active

    def next_frame(self) -> ShotFrame | None:
        """The frame that starts next, if any is left to start."""
        if self._began is None:
            self._began = time.perf_counter()
        return self.pending[0] if self.pending else None

    def start_next(self, loop: JobLoop) -> None:
        """Start the next frame's render in `loop`, at the shot's priority now."""
        frame = self.pending.popleft()
        options = replace(self.options, report=None)
        if self.record is not None:
            with contextlib.suppress(Exception):  # the broker away: the priority it had
                options = replace(options, priority=self.record.priority())
        render = FrameRender(self.redis, self.app, frame.scene, self.document, self.assets, options, frame.output,
                             self.listener.frame(frame), self.check_alive)
        self.active[render] = frame
        self._start(loop, render, frame)

    def reap(self, loop: JobLoop) -> None:
        """Take this shot's frames that ended in `loop`'s last step: each written one is
        told; the error of one that failed is raised (`stop` the others then)."""
        for render in [render for render in self.active if render in loop.renders]:
            frame = self.active.pop(render)
            run, error = loop.renders.pop(render)
            if error is not None:
                raise error
            self.written[frame.number] = render.written
            if self.record is not None and self.options.in_rounds:
                with contextlib.suppress(Exception):  # kept only for a pick-up: no reason to fail the frame
                    self.record.forget_rounds(frame.number)
            self.reports.append({"frame": frame.number, "output": str(render.written), **run.report()})
            self.listener.frame_written(frame, render.written, len(self.written), len(self.frames), len(self.active))

    def stop(self, loop: JobLoop, exc: BaseException) -> None:
        """End the frames in flight with `exc` (each keeps what it rendered), and write the
        report of those written."""
        loop.interrupt(exc, list(self.active))
        for render in list(self.active):
            loop.renders.pop(render, None)
        self.active.clear()
        self._write_report()

    def close(self) -> list[Path]:
        """Every frame is written: the report, the record's end; the files, in the shot's order."""
        self._write_report()
        if self.record is not None:
            with contextlib.suppress(Exception):
                self.record.finish()
        written = [self.written[frame.number] for frame in self.frames]
        self.listener.shot_done(written, time.perf_counter() - (self._began or time.perf_counter()))
        return written

    def _write_report(self) -> None:
        if self.options.report and self.reports:
            with contextlib.suppress(Exception):  # the frames are written; a report is no reason to fail them
                write_report(self.shot_report(time.perf_counter() - (self._began or time.perf_counter())),
                             self.options.report)

    def progress(self) -> tuple[float, int]:
        """(frames' worth rendered, buckets left in flight): the frames written, and each
        frame in flight's share of its buckets in."""
        share, left = float(len(self.written)), 0
        for render in self.active:
            run = render.run
            if run is not None and run.total:
                share += len(run.records) / run.total if not self.options.in_rounds else 0.0
                left += run.total - len(run.records)
        return share, left

    def _start(self, loop: JobLoop, render: FrameRender, frame: ShotFrame) -> None:
        """Start the frame's job, or collect the one it has (a shot picked up by `farm
        collect`; one that failed, was cancelled or is gone starts again); record its job."""
        if self.record is not None and self.record.cancelled():
            from farm.exceptions import JobCancelled

            raise JobCancelled(f"shot {self.record.shot_id} was cancelled")
        run = None
        if frame.job_id is not None:
            from farm.client.start import resume
            from farm.exceptions import JobError

            try:
                run = resume(self.redis, self.app, frame.job_id)
                run.max_workers = self.options.max_workers  # the shot's limit holds for a frame picked up too
            except JobError:
                run = None
        if self.record is not None and self.options.in_rounds:
            render.rounds_kept = RoundsKept(self.record, frame.number)
        if run is not None and not run.job.meta.sums:
            render.run = run
            loop.start(render, render.collecting(run))
        else:
            if frame.job_id is not None and self.record is not None and self.options.in_rounds:
                # on from the rounds the record keeps; the round in flight collected where its job
                # is still there (its client may have died between forgetting a round and starting the next)
                film = frame.scene.film
                channels = AOV_CHANNELS if self.options.layers else CHANNELS
                kept = self.record.rounds(frame.number, film.width, film.height, channels)
                render.picked_up = (*(kept or (0, None, None)), frame.job_id)
            loop.start(render)
        if self.record is not None and render.run is not None:
            self.record.started(frame.number, render.run.job.job_id)

    def shot_report(self, seconds: float) -> dict:
        """The shot's JSON report: a row per frame (its job's report), in the shot's order."""
        order = {frame.number: place for place, frame in enumerate(self.frames)}
        rows = sorted(self.reports, key=lambda row: order[row["frame"]])
        return {"frames": rows, "wall_seconds": round(seconds, 6), "frame_count": len(self.frames)}

    def _room(self, active: dict, frame: ShotFrame) -> bool:
        return room_for({render: (f, False) for render, f in active.items()}, frame, self.live_workers())

    def live_workers(self) -> int:
        if time.monotonic() - self._looked >= WORKERS_LOOK:
            from farm.protocol import registry

            with contextlib.suppress(Exception):  # the broker away: keep the last count
                self._workers = max(1, registry.healthy(self.redis))
            self._looked = time.monotonic()
        return self._workers
