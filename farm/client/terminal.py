"""What `submit` and `farm collect` show on the terminal while a frame renders: a
Listener (farm.client.render) that draws the progress bar, prints status lines, notices
and the summary, feeds the live view, and asks what Ctrl-C does to the job."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

from farm.client.render import Listener
from farm.exceptions import Terminated


class TerminalListener(Listener):
    """`quiet`: no progress bar and no status lines; `on_interrupt`: ask, cancel or detach
    (what Ctrl-C does to a job on a farm that outlives this command, `local` False);
    `view`: the live view, if one is served; `output`: named in the detach line."""

    def __init__(self, quiet: bool = False, on_interrupt: str = "ask", local: bool = False, view=None,
                 output: str = ""):
        self.quiet, self.on_interrupt, self.local, self.view, self.output = quiet, on_interrupt, local, view, output
        self.progress = None

    def status(self, line: str) -> None:
        if not self.quiet:
            print(line, file=sys.stderr)

    def warning(self, line: str) -> None:
        print(f"submit: warning: {line}", file=sys.stderr)

    def say(self, line: str) -> None:
        print(line, file=sys.stderr)

    def started(self, run, label: str) -> None:
        if self.view is not None:
            self.view.show(run, label)
        if not self.quiet:
            self.progress = progress(run.total, "render")

    def bucket(self, record) -> None:
        if self.progress is not None:
            self.progress.update(1)
        if self.view is not None:
            self.view.tile(record)

    def notice(self, message: str) -> None:
        (self.progress.write if self.progress is not None else print)(message, file=sys.stderr)
        if self.view is not None:
            self.view.notice(message)

    def _close(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None

    def collected(self, run) -> None:
        self._close()

    def stopped(self, run, error: BaseException) -> None:
        self._close()

    def written(self, run, output: Path) -> None:
        self._close()
        summary(run, output)

    @contextlib.contextmanager
    def writing(self):
        """Ctrl-C and SIGTERM wait while an image is written and named: a signal in between
        left a round's file on disk under the line of the round before."""
        held = {signal.SIGINT, signal.SIGTERM}
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)  # one that came meanwhile is raised now

    def rounds_done(self, output: Path, rounds: int, counts, seconds: float) -> None:
        spp = f"{int(counts.max())} spp" if counts.min() == counts.max() else f"{float(counts.mean()):.1f} spp in the mean"
        print(f"{output}: {rounds} round{'s' * (rounds != 1)} in all, {spp}, {seconds:.2f}s")

    def cancel_on(self, run, error: BaseException) -> bool:
        """After Ctrl-C or SIGTERM (or an error), cancel the job, or leave it rendering for
        `farm collect`; only Ctrl-C asks."""
        choice = "cancel"
        if isinstance(error, KeyboardInterrupt) and not self.local:
            choice = self.on_interrupt
            if choice == "ask":
                choice = "cancel" if isinstance(error, Terminated) else _ask_cancel(run.job.job_id)
        if choice == "detach":
            print(f"job {run.job.job_id} keeps rendering; collect it with "
                  f"`farm collect {run.job.job_id} -o {self.output}`", file=sys.stderr)
            return False
        return True


def progress(total: int, what: str):
    """A progress bar of `total` buckets on a terminal; plain lines in a log or a pipe, not
    a bar redrawn with carriage returns."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, unit="bucket", desc=what, file=sys.stderr, dynamic_ncols=True)
    return ProgressLines(total)


class ProgressLines:
    """Progress for a log: a line `render: P% N/M buckets` at each tenth of the frame, or
    after PROGRESS_LINE_SECONDS without one; tqdm's interface, as far as it is used here."""

    def __init__(self, total: int):
        self.total, self.done, self.shown = total, 0, 0
        self.last = time.monotonic()

    def update(self, count: int) -> None:
        self.done += count
        tenth = self.done * 10 // max(self.total, 1)
        if tenth > self.shown or time.monotonic() - self.last >= PROGRESS_LINE_SECONDS:
            self.shown, self.last = tenth, time.monotonic()
            print(f"render: {100 * self.done // max(self.total, 1)}% {self.done}/{self.total} buckets", file=sys.stderr)

    def write(self, message: str, file=sys.stderr) -> None:
        print(message, file=file)

    def close(self) -> None:
        pass


# Seconds between progress lines in a log when the frame moves slower than a tenth at a time.
PROGRESS_LINE_SECONDS = 30.0


def _ask_cancel(job_id: str) -> str:
    """Ask on the terminal whether to cancel; without a terminal the job is cancelled."""
    if not sys.stdin.isatty():
        return "cancel"
    try:
        answer = input(f"\ncancel job {job_id}? [Y/n] (n: it keeps rendering for `farm collect`) ")
    except (EOFError, KeyboardInterrupt):
        return "cancel"
    return "detach" if answer.strip().lower() in ("n", "no") else "cancel"


def summary(run, output: Path) -> None:
    """The lines that end a render: the image, its workers, the faults dealt with."""
    meta = run.job.meta
    samples = f"{meta.spp} spp"
    if meta.sums:  # a round: the samples it took, and what the frame now has
        first, end = meta.samples
        counts = run.film.counts
        samples = (f"samples {first} to {end} this round (per cell), {float(counts.mean()):.1f} spp in the mean now"
                   if meta.cell else f"samples {first} to {end} this round")
    print(
        f"{output}: {meta.width}x{meta.height}, {samples}, {run.total} buckets of {meta.bucket_size}px "
        f"in {run.wall_seconds:.2f}s (job {meta.job_id})"
    )
    devices = {r.worker: r.device for r in run.records.values()}
    for worker, count in sorted(run.workers().items()):
        print(f"  {worker}: {count} buckets on {devices[worker]}")
    report = run.report()
    faults = [
        (report["lost_deliveries"], "bucket deliveries lost with their worker"),
        (report["resent"], "buckets sent again"),
        (report["copies"], "copies of slow buckets"),
        (report["duplicates"], "duplicate tiles discarded"),
        (report["invalid_tiles"], "invalid tiles rejected"),
    ]
    for number, what in faults:
        if number:
            print(f"  {number} {what}")


class TerminalShotListener:
    """What `submit --frames` shows: one progress bar over every bucket of the shot, a line
    per frame written, status lines and notices named by their frame, and one question on
    Ctrl-C for the whole shot (farm.client.shot.ShotListener)."""

    def __init__(self, quiet: bool, on_interrupt: str, local: bool, view, output: str, buckets: int):
        self.terminal = TerminalListener(quiet, on_interrupt, local, view, output)
        self.buckets, self.progress, self.choice = buckets, None, None
        self.lines: dict[int, str] = {}  # a frame's summary, from its render, until it is announced
        self.shown: int | None = None  # the frame the live view shows: the newest started

    def frame(self, frame):
        return _FrameLines(self, frame.number)

    def frame_written(self, frame, output: Path, done: int, total: int, in_flight: int) -> None:
        run_line = self.lines.pop(frame.number, "")
        self._print(f"{output}: frame {frame.number}, {run_line} [{done}/{total} frames, {in_flight} in flight]")

    def shot_done(self, written: list[Path], seconds: float) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        print(f"{len(written)} frames in {seconds:.2f}s: {written[0]} to {written[-1]}" if len(written) > 1 else
              f"1 frame in {seconds:.2f}s: {written[0]}")

    def _print(self, line: str, file=None) -> None:
        (self.progress.write if self.progress is not None else print)(line, file=file or sys.stdout)

    def _started(self) -> None:
        if self.progress is None and not self.terminal.quiet:
            self.progress = progress(self.buckets, "shot")


class _FrameLines(Listener):
    """One frame's render as the shot's terminal shows it."""

    def __init__(self, shot: TerminalShotListener, number: int):
        self.shot, self.number = shot, number

    def status(self, line: str) -> None:
        if not self.shot.terminal.quiet:
            self.shot._print(f"frame {self.number}: {line}", file=sys.stderr)

    def warning(self, line: str) -> None:
        self.shot._print(f"submit: warning: frame {self.number}: {line}", file=sys.stderr)

    def say(self, line: str) -> None:
        self.shot._print(f"frame {self.number}: {line}", file=sys.stderr)

    def started(self, run, label: str) -> None:
        self.shot._started()
        if self.shot.terminal.view is not None:
            self.shot.shown = self.number
            self.shot.terminal.view.show(run, f"frame {self.number}" + (f", {label}" if label else ""))

    def bucket(self, record) -> None:
        if self.shot.progress is not None:
            self.shot.progress.update(1)
        if self.shot.terminal.view is not None and self.shot.shown == self.number:
            self.shot.terminal.view.tile(record)

    def notice(self, message: str) -> None:
        self.shot._print(f"frame {self.number}: {message}", file=sys.stderr)
        if self.shot.terminal.view is not None:
            self.shot.terminal.view.notice(f"frame {self.number}: {message}")

    def written(self, run, output: Path) -> None:
        if self.shot.terminal.view is not None:
            self.shot.terminal.view.frame_done(self.number, run.film)
        meta = run.job.meta
        self.shot.lines[self.number] = (f"{meta.width}x{meta.height}, {meta.spp} spp, {run.total} buckets "
                                        f"in {run.wall_seconds:.2f}s (job {meta.job_id})")

    def writing(self):
        return self.shot.terminal.writing()

    def rounds_done(self, output: Path, rounds: int, counts, seconds: float) -> None:
        self.shot.terminal.rounds_done(output, rounds, counts, seconds)

    def cancel_on(self, run, error: BaseException) -> bool:
        """One answer for the whole shot: asked (where asked at all) for the first frame."""
        if self.shot.choice is None:
            self.shot.choice = self.shot.terminal.cancel_on(run, error)
        return self.shot.choice
