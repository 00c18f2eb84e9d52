"""One frame rendered on the farm, start to written image: what `submit` does, as an
object with no terminal and no argparse in it, so a long-lived process can run several
at once in one JobLoop.

A FrameRender is one job, or with a progressive or noise-target render a job per round,
the rounds' sums added into one film (Film.start_round), the output rewritten after each
round (denoised where asked) and, with a time limit, the rounds cut to what fits. What
it has to say goes to its Listener; the terminal's prints a progress bar, a service's
would log. Cf. Mitsuba 3's render(): prepare, sample, put block, develop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from farm import defaults
from farm.client.film import Film, write_whole
from farm.client.loop import JobLoop
from farm.client.rounds import rounds, split_tail, unmet_target
from farm.client.run import BucketRecord, JobRun
from farm.client.start import start_job
from farm.client.timelimit import RoundClock, TimeUp
from farm.exceptions import DenoiserUnavailable, FarmError, JobError, OutputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderOptions:
    """What is asked of one frame besides its scene (the `submit` flags of the same names)."""

    bucket_size: int = defaults.BUCKET_SIZE
    order: str = defaults.BUCKET_ORDER
    aovs: tuple[str, ...] = ()  # layers written beside the beauty
    denoise: str | None = None  # None, "guided" or "prefiltered"
    progressive: bool = False
    noise: float | None = None  # the relative standard error a noise target stops at
    min_spp: int = defaults.NOISE_MIN_SPP
    max_spp: int | None = None
    time_limit: float | None = None  # seconds, for rounds
    split_tail: bool = False
    report: str | None = None  # where to write the job's report (JSON, or .html)
    shutter: tuple[float, float] = (0.0, 0.0)  # seconds around the frame's moment (motion blur; --shutter in frames)
    priority: int = defaults.DEFAULT_PRIORITY  # 0-100, higher first (farm.protocol.queue.band)
    max_workers: int | None = None  # at most this many workers render the job at once
    allow_mixed: bool = False  # workers of any kernel identity of its sources may render it (--allow-mixed-devices)
    require: tuple[str, ...] = ()  # tags a worker needs to render it (--require; farm.protocol.pools)

    def check(self) -> None:
        """Refuse what cannot be rendered, in one line naming the option."""
        if not 0 <= self.priority <= 100:
            raise FarmError(f"--priority is from 0 to 100 (higher first), got {self.priority}")
        if self.max_workers is not None and self.max_workers < 1:
            raise FarmError(f"--max-workers must be at least 1, got {self.max_workers}")
        if self.noise is not None:
            if not 0 < self.noise < 1:
                raise FarmError(f"--noise is a relative standard error between 0 and 1 (e.g. 0.01), got {self.noise:g}")
            if self.progressive:
                raise FarmError("--noise renders in rounds of its own; leave out --progressive")
        if self.time_limit is not None:
            if not self.time_limit > 0:
                raise FarmError(f"--time-limit must be a positive number of seconds, got {self.time_limit:g}")
            if not self.progressive and self.noise is None:
                raise FarmError("--time-limit ends rounds: add --progressive or --noise")
        if self.split_tail and self.in_rounds:
            raise FarmError("--split-tail splits a render of one round; leave out --progressive and --noise")
        for name in ("min_spp", "max_spp"):
            value = getattr(self, name)
            if value is not None and not 2 <= value <= defaults.MAX_SPP:
                raise FarmError(f"--{name.replace('_', '-')} must be between 2 and {defaults.MAX_SPP}, got {value}")
        opens, closes = self.shutter
        if not (math.isfinite(opens) and math.isfinite(closes) and (opens < closes or opens == closes == 0.0)):
            raise FarmError(f"--shutter must open before it closes, got {opens:g}, {closes:g} s")
        if not defaults.MIN_BUCKET_SIZE <= self.bucket_size <= defaults.MAX_BUCKET_SIZE:
            raise FarmError(f"--bucket-size must be between {defaults.MIN_BUCKET_SIZE} and "
                            f"{defaults.MAX_BUCKET_SIZE}, got {self.bucket_size}")

    def kept(self) -> dict:
        """The options a shot's record keeps for `farm collect` (ShotMeta.options): all but
        the size, order, layers and report it keeps or asks for itself."""
        return {"aovs": list(self.aovs), "denoise": self.denoise, "progressive": self.progressive, "noise": self.noise,
                "min_spp": self.min_spp, "max_spp": self.max_spp, "time_limit": self.time_limit,
                "split_tail": self.split_tail, "shutter": list(self.shutter), "max_workers": self.max_workers,
                "allow_mixed": self.allow_mixed, "require": list(self.require)}

    @classmethod
    def restored(cls, bucket_size: int, order: str, kept: dict) -> RenderOptions:
        """The options `kept` stored, checked as the command line's are (a record in Redis is
        input from outside: a field of the wrong kind is one line)."""
        known = {"aovs", "denoise", "progressive", "noise", "min_spp", "max_spp", "time_limit", "split_tail", "shutter",
                 "max_workers", "allow_mixed", "require"}
        unknown = set(kept) - known
        if unknown:
            raise FarmError(f"a shot's record keeps options this farm does not know: {', '.join(sorted(unknown))}")
        try:
            options = cls(bucket_size=bucket_size, order=order, **{**kept, "aovs": tuple(kept.get("aovs", ())),
                                                                   "shutter": tuple(kept.get("shutter", (0.0, 0.0))),
                                                                   "require": tuple(kept.get("require", ()))})
            options.check()
        except (TypeError, ValueError) as exc:
            raise FarmError(f"a shot's record keeps options that are not a render's: {exc}") from None
        return options

    @property
    def in_rounds(self) -> bool:
        return self.progressive or self.noise is not None

    @property
    def layers(self) -> tuple[str, ...]:
        """The AOVs the jobs render: those asked for, the denoiser's guides, a noise target's variance."""
        layers = self.aovs + (("albedo", "normal") if self.denoise else ())
        if self.noise is not None:
            layers += ("variance",)  # its luminance squares steer the rounds
        return tuple(dict.fromkeys(layers))


class Listener:
    """What a render tells as it goes; every method may be left as it is (silent)."""

    def status(self, line: str) -> None:
        """A line of what happens (a round starts, the time limit ends the rounds)."""

    def warning(self, line: str) -> None:
        """Something the user should know that changes no outcome."""

    def say(self, line: str) -> None:
        """What became of the output after a failure (said even where status lines are not)."""

    def started(self, run: JobRun, label: str) -> None:
        """A job's run starts being collected (`label`: which round)."""

    def bucket(self, record: BucketRecord) -> None:
        """A bucket is in the film."""

    def notice(self, message: str) -> None:
        """A fault the farm dealt with (a lost worker, a failed bucket)."""

    def collected(self, run: JobRun) -> None:
        """Every bucket of the run is in its film (its image is written next)."""

    def stopped(self, run: JobRun, error: BaseException) -> None:
        """The run ended without its image (an error, Ctrl-C); then the render decides
        whether to cancel its job (see `cancel_on`)."""

    def written(self, run: JobRun, output: Path) -> None:
        """The image of a finished job was written."""

    def writing(self):
        """A context the image, its report and `written` happen in, as one step: the
        terminal's holds Ctrl-C back until the file and the line that names it agree."""
        return contextlib.nullcontext()

    def rounds_done(self, output: Path, rounds: int, counts, seconds: float) -> None:
        """A render in rounds ended: `rounds` complete, `counts` the samples of each pixel
        in `output`, `seconds` from the first round's start."""

    def cancel_on(self, run: JobRun, error: BaseException) -> bool:
        """Whether to cancel a job whose collection stopped on `error` (not a failed or
        cancelled job, which is over): True, or False to leave it rendering for `farm collect`."""
        return True


class FrameRender:
    """One frame on the farm, into `output`. `check_alive()` is called every second of
    every run and raises if the farm cannot make progress (the embedded farm's workers died)."""

    def __init__(self, redis, app, scene, document: dict, assets, options: RenderOptions, output: Path,
                 listener: Listener | None = None, check_alive: Callable[[], None] | None = None):
        self.redis, self.app = redis, app
        self.scene, self.document, self.assets = scene, document, assets
        self.options, self.output = options, output
        self.listener = listener or Listener()
        self.check_alive = check_alive
        self.run: JobRun | None = None  # the job's run being collected (a round's, in rounds)
        self.written: Path | None = None  # the image last written (a round's, in rounds)
        # A frame in rounds picked up by `farm collect`: (rounds done, the last one's Plan,
        # the film's sums, the job of the round in flight) (farm.protocol.shots keeps them)
        self.picked_up: tuple | None = None
        # Told of each round's job as it starts (`started(job_id)`) and of the film after
        # each complete round (`done(count, plan, film)`): a shot's record keeps them
        self.rounds_kept = None

    def render(self) -> JobRun:
        """Render the frame alone, blocking, and write it; the last job's run. Raises what
        ended it (the output then holds what was complete: the last round, or `.partial`)."""
        return JobLoop(self.redis).render(self)

    def flow(self):
        """The render as a generator, for a JobLoop to turn beside others: it yields each
        job's run to collect and is sent back None when the run is complete, or thrown
        what ended it; it returns the last run. Reads as the render's steps, in order."""
        if not self.options.in_rounds:
            split = split_tail(self.redis, self.scene, self.options.bucket_size) if self.options.split_tail else (0, 0, 0)
            self.run = self._start(split=split)
            yield from self.collecting(self.run)
            return self.run
        return (yield from self._rounds())

    def _start(self, plan=None, film=None, split=(0, 0, 0)) -> JobRun:
        options = self.options
        scene = self.scene  # a frame of a shot with its shutter open: the workers blur it (JobMeta.shutter)
        if options.shutter != (0.0, 0.0) and scene.animation is not None:
            scene = dataclasses.replace(scene, shutter=tuple(options.shutter))
        return start_job(self.redis, self.app, scene, self.document, options.bucket_size, options.order,
                         self.assets, aovs=options.layers, plan=plan, film=film, split=split, priority=options.priority,
                         max_workers=options.max_workers, mixed=options.allow_mixed, require=options.require)

    def _rounds(self):
        film = Film(self.scene.film.width, self.scene.film.height, self.options.layers, self.scene.film.spp)
        limit = self.options.time_limit
        clock = RoundClock(limit, self.scene.film.width, self.scene.film.height) if limit else None
        done, last_plan, in_flight = self._picked_up_rounds(film)
        kept, began_all, complete, finished = None, time.perf_counter(), done, last_plan  # kept, finished: the output's round
        for number, plan, what in rounds(self.scene, film, self.options.noise, self.options.min_spp,
                                         self.options.max_spp, done, last_plan):
            last = False
            if clock is not None and self.run is not None:  # the first round always renders: an image at all
                fitted = clock.fit(plan)
                if fitted is None:
                    self.listener.status(f"time limit: no time left for round {number} ({clock.left():.1f}s left)")
                    break
                if fitted is not plan:
                    plan, last = fitted, True
                    first, end = plan.bounds
                    what = (f"samples {first} to {end} of {self.scene.film.spp}" if plan.uniform_range else
                            f"cells to at most {end} samples per pixel") + f" (what fits in the {clock.left():.1f}s left)"
            if self.run is not None:  # its sums are in the film; the last round stays for `farm status`
                with contextlib.suppress(JobError):
                    self.run.job.forget()
            label = f"round {number}: {what}"
            self.listener.status(label)
            self.run = self._go_on(in_flight, plan, film) if in_flight else None
            if self.run is None:
                self.run = self._start(plan=plan, film=film)
            in_flight = None
            if self.rounds_kept is not None:
                self.rounds_kept.started(self.run.job.job_id)
            began = time.perf_counter()
            try:
                yield from self.collecting(self.run, deadline=clock.deadline if clock and kept else None, label=label)
            except TimeUp:
                self.listener.status(f"time limit: round {number} cancelled at {limit:g}s")
                break
            kept, complete, finished = (number, film.counts), complete + 1, plan
            if self.rounds_kept is not None:
                self.rounds_kept.done(complete, plan, film)
            if clock is not None:
                clock.done(plan, time.perf_counter() - began)
            if last:
                break
        else:  # the rounds ended by themselves (no time limit cut them): cells the samples cap stopped short
            unmet_target(film, finished, self.options, self.listener.warning)
        if clock is not None:
            counts = kept[1]
            spp = f"{int(counts.max())} samples per pixel" if counts.min() == counts.max() else \
                f"{float(counts.mean()):.1f} samples per pixel in the mean"
            self.listener.status(f"time limit: {self.output} holds round {kept[0]}, {spp}, after {clock.elapsed():.1f}s")
        if kept is not None:
            self.listener.rounds_done(self.output, complete, kept[1], time.perf_counter() - began_all)
        return self.run

    def _picked_up_rounds(self, film: Film) -> tuple[int, object, str | None]:
        """(rounds done, the last one's plan, the job of the round in flight) of a frame picked
        up (`picked_up`), with `film` holding the rounds done; (0, None, None) for a new one."""
        if self.picked_up is None:
            return 0, None, None
        done, last_plan, sums, in_flight = self.picked_up
        if done:  # the rounds done, as one tile of sums over the whole frame
            from farm.buckets import Bucket

            film.start_round(last_plan)
            film.put(Bucket(0, 0, 0, film.width, film.height), sums)
        return done, last_plan, in_flight

    def _go_on(self, job_id: str, plan, film: Film) -> JobRun | None:
        """The run of the round in flight when the frame was picked up, where it is this
        round (the same plan) and still on the farm; else None (the round starts anew)."""
        from farm.client.start import resume
        from farm.protocol.jobs import Job

        try:
            job = Job.load(self.redis, job_id)
            if not job.meta.sums or job.plan().to_bytes() != plan.to_bytes():
                return None
            return resume(self.redis, self.app, job_id, film)
        except FarmError:
            return None

    def collect(self, run: JobRun, deadline: float | None = None, label: str = "") -> JobRun:
        """Collect a run already on the farm (`farm collect`), alone, and write the output."""
        return JobLoop(self.redis).render(self, self.collecting(run, deadline, label))

    def collecting(self, run: JobRun, deadline: float | None = None, label: str = ""):
        """Collect `run` (a step of `flow`: yields it to the loop) and write the output
        (`label`: which round it is); past `deadline` (perf_counter), cancel it and raise
        TimeUp."""
        self.listener.started(run, label)

        def check() -> None:
            if self.check_alive is not None:
                self.check_alive()
            if deadline is not None and time.perf_counter() >= deadline:
                raise TimeUp()

        run.watch(on_bucket=self.listener.bucket, on_notice=self.listener.notice, check_alive=check)
        try:
            yield run
        except GeneratorExit:  # the flow was dropped, not stopped (its process is exiting: a manager that lost
            raise              # its lead, or was told to stop): the job is left as it is, for whoever picks it up
        except BaseException as exc:
            self._stopped(run, exc)
            raise
        self.listener.collected(run)
        self.develop(run)
        return run

    def _stopped(self, run: JobRun, exc: BaseException) -> None:
        """The run ended without its image: cancel its job (or leave it, as the listener
        says), and keep what was rendered."""
        self.listener.stopped(run, exc)
        if isinstance(exc, TimeUp):  # a planned stop: no question, no partial image
            with contextlib.suppress(Exception):
                run.cancel()
            return
        if not isinstance(exc, JobError) and self.listener.cancel_on(run, exc):  # failed or cancelled: over
            with contextlib.suppress(Exception):  # the broker may be what failed
                run.cancel()
        with contextlib.suppress(Exception):  # the broker may be what failed
            run.take_stored()
        self.save_partial(run)

    def develop(self, run: JobRun) -> Path:
        """Denoise where asked, write the image and the report; the path written."""
        if self.options.denoise:
            try:
                run.film.denoise(prefilter=self.options.denoise == "prefiltered")
            except DenoiserUnavailable as exc:
                self.listener.warning(f"{exc}; the raw image is written")
        with self.listener.writing():
            output = None
            try:
                output = run.film.write(self.output)
                if self.options.report:
                    write_report(run.report(), self.options.report)
            except OutputError as exc:  # the job is done, not cancelled: its tiles stay on the farm
                raise OutputError(f"{exc}; {self._recovery(run, output)}", exc.path) from None
            self.written = output
            self.listener.written(run, output)
        return output

    def _recovery(self, run: JobRun, written: Path | None) -> str:
        """What is kept after a failed write (`written`: the image, if the report failed),
        and the `farm collect` that writes it again elsewhere while the job's keys live."""
        kept = f"{written} is written; " if written else ""
        if written is None and run.job.meta.sums and self.written:
            kept = f"{self.written} keeps the round before; "
        if self.check_alive is not None:  # the embedded farm ends with this command
            return kept + "the embedded farm and its tiles end with this command"
        tiles = "this round's tiles (its samples alone)" if run.job.meta.sums else "the frame's tiles"
        report = f" --report OTHER{Path(self.options.report).suffix}" if self.options.report else ""
        return (f"{kept}{tiles} stay on the farm for {_duration(defaults.FINISHED_TTL)}: "
                f"farm collect {run.job.job_id} -o OTHER{self.output.suffix}{report}")

    def save_partial(self, run: JobRun) -> None:
        """Keep what was rendered before a failure: `<name>.partial<ext>` beside the output."""
        if not run.records:
            self.listener.say("no bucket had finished: no partial image written")
            return
        partial = self.output.with_name(f"{self.output.stem}.partial{self.output.suffix}")
        with contextlib.suppress(FarmError):
            run.film.write(partial)
            self.listener.say(f"saved {len(run.records)}/{run.total} finished buckets to {partial}")


def write_report(report: dict, path: str) -> None:
    """The report as JSON, or as the page `farm report` draws where the path ends in .html;
    whole or not at all (write_whole)."""
    if Path(path).suffix.lower() in (".html", ".htm"):
        from farm.client import report as pages

        text = pages.page(report)
    else:
        text = json.dumps(report, indent=2) + "\n"
    write_whole(Path(path), lambda temporary: temporary.write_text(text))


def _duration(seconds: int) -> str:
    """`3600` as `1 hour`, `120` as `2 minutes`, `90` as `90 seconds`: how long keys live."""
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0 or unit == "second":
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
