"""The client's loop: the collection of several jobs, and of the renders that run them
(farm.client.render), in one process, with no terminal.

Each JobRun does its own work between events (`JobRun.tick`: the next batch of its send
window, and every RECONCILE_INTERVAL its reconciliation); the loop pops every run's
waiting events in one round trip and, when none waits, blocks on all the runs' event
lists at once (one BLMPOP of several keys) until the earliest run's next check. `submit`
runs one job in it; a service runs many. A read that found a few events is followed by
the next only LINGER later: tiles that come one at a time (small buckets, many workers)
are read a batch a round trip, not one each (issue 31: the client's and Redis's CPU per
bucket).
"""

from __future__ import annotations

import logging
import time

from farm.protocol.events import EventLog
from farm.protocol.events import pop as pop_events

log = logging.getLogger(__name__)

# The longest a turn blocks when no run asks to come back sooner (seconds).
MAX_WAIT = 1.0

# Seconds between a read of a few events and the next: a tile waits at most this long to
# be read, and one read takes up to this long's worth of them. 8 ms, not 2: at 1,200 tiles
# a second a read takes about 10 events instead of 3, and the client's CPU a bucket falls
# from 0.12-0.13 ms to 0.10 (`farm bench --overhead`, issue 31); a tile shown 8 ms late
# is not seen, and reads past FEW a turn do not linger at all.
LINGER = 0.008
FEW = 32  # events: a read of fewer lingers


class JobLoop:
    def __init__(self, redis):
        self.redis = redis
        self.runs: list = []  # JobRun (farm.client.run), which uses this loop for its own collect()
        self._flows: dict[int, tuple[object, object]] = {}  # id(run) -> (its render, the render's flow)
        self.renders: dict[object, tuple[object, BaseException | None]] = {}  # ended render -> (result, error)
        # Called before each turn, before taking the events it read and before a run is marked
        # done: raises to stop the loop dead, nothing more written (a manager that lost its lead)
        self.guard = lambda: None
        self._read = 0  # events the last read found

    def start(self, render, flow=None) -> None:
        """Turn a FrameRender (farm.client.render) in this loop: each run its flow (or
        `flow`, a generator of the same kind) yields is collected here beside the others,
        and its outcome sent back into the flow."""
        self._advance(render, flow or render.flow(), None)

    def render(self, render, flow=None):
        """Turn one render, alone, to its end; its result, or raise what ended it. Ctrl-C
        (any BaseException out of a turn) is thrown into its flow first, which keeps what
        was rendered."""
        self.start(render, flow)
        while render not in self.renders:
            try:
                self.step()
            except BaseException as exc:
                self.interrupt(exc)
        result, error = self.renders.pop(render)
        if error is not None:
            raise error
        return result

    def interrupt(self, exc: BaseException, renders=None) -> None:
        """Throw `exc` into every render's flow, or those of `renders` (their runs leave the loop)."""
        for key, (render, flow) in list(self._flows.items()):
            if renders is not None and render not in renders:
                continue
            run = next(run for run in self.runs if id(run) == key)
            self.runs.remove(run)
            del self._flows[key]
            self._advance(render, flow, exc)

    def _advance(self, render, flow, outcome: BaseException | None) -> None:
        """Send a run's outcome into its render's flow; add the next run it yields. A Ctrl-C
        or SIGTERM that comes while the flow runs (not the one thrown in) ends its render and
        goes on up: kept only as the render's outcome, it was lost where nobody reaps that
        render any more (a job the manager had just ended), and the process, which ignores
        a second SIGTERM, rendered on."""
        try:
            run = flow.throw(outcome) if outcome is not None else flow.send(None)
        except StopIteration as stop:
            self.renders[render] = (stop.value, None)
            return
        except BaseException as exc:
            self.renders[render] = (None, exc)
            if isinstance(exc, KeyboardInterrupt) and exc is not outcome:
                raise
            return
        self._flows[id(run)] = (render, flow)
        self.add(run)

    def add(self, run) -> None:
        self.runs.append(run)

    def step(self) -> list[tuple[object, Exception | None]]:
        """One turn of every run; the runs that ended in it: None for a run whose every
        bucket is in its film (and its job marked done), else what ended it (JobError,
        JobCancelled, a FarmError of its `check_alive`). An ended run leaves the loop."""
        self.guard()
        ended: list[tuple[object, Exception | None]] = []
        wait = MAX_WAIT
        for run in list(self.runs):
            try:
                if not run.complete:
                    wait = min(wait, run.tick())
            except Exception as exc:
                self._end(run, exc, ended)
                continue
            if run.complete:
                self._end(run, None, ended)
        if self.runs:
            if 0 < self._read < FEW and wait > 0:
                time.sleep(min(LINGER, wait))
                wait = max(0.0, wait - LINGER)
            events = self._events(max(wait, 0.0))
            self._read = sum(len(raw) for _, raw in events)
            self.guard()
            for run, raw in events:
                try:
                    run.take_events(run.job.events.parse(raw))
                except Exception as exc:
                    self._end(run, exc, ended)
                    continue
                if run.complete:
                    self._end(run, None, ended)
        return ended

    def _end(self, run, error: Exception | None, ended: list) -> None:
        if error is None:
            self.guard()
            try:
                run.finish()
            except Exception as exc:  # the broker went away as the job ended
                error = exc
        self.runs.remove(run)
        ended.append((run, error))
        if id(run) in self._flows:
            self._advance(*self._flows.pop(id(run)), error)

    def _events(self, wait: float) -> list[tuple[object, list[bytes]]]:
        """The raw events waiting for each run, up to EventLog.READ_BATCH each, in one
        round trip; where none waits and `wait` > 0, the first to come within `wait`."""
        by_key = {run.job.events.key: run for run in self.runs}
        return [(by_key[key], raw) for key, raw in pop_events(self.redis, list(by_key), wait, EventLog.READ_BATCH)]

    def run(self) -> dict[str, Exception | None]:
        """Turn until every run has ended; how each ended, by job id."""
        outcomes = {}
        while self.runs:
            for run, error in self.step():
                outcomes[run.job.job_id] = error
        return outcomes
