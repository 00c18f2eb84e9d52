"""The farm's jobs and workers as lines: `farm status` prints them, the live view lists the jobs."""

from __future__ import annotations

import contextlib
import time

from farm.exceptions import FarmError, MalformedJob
from farm.protocol.broker import server_time
from farm.protocol.jobs import Job
from farm.protocol.record import JobRecord, JobState


def farm_lines(redis_client) -> list[str]:
    """`farm status`: the jobs, then the workers, each with what it is doing."""
    from farm.protocol import registry

    jobs, shots = job_lines(redis_client), shot_lines(redis_client)
    workers = registry.workers(redis_client)
    lines = [f"{len(jobs)} job(s)", *(f"  {line}" for line in jobs)]
    if shots:
        lines += [f"{len(shots)} shot(s)", *(f"  {line}" for line in shots)]
    lines.append(f"{len(workers)} worker(s)")
    speeds = registry.speeds(redis_client, list(workers))  # what sizes the buckets (farm.client.sizing)
    for record in sorted(workers.values(), key=lambda w: w.hostname):
        what = f"bad: {record.bad}" if record.bad else ("busy" if record.busy else "idle")
        speed = speeds.get(record.hostname)
        rate = f"  {speed.samples_per_second / 1e6:.3g} M samples/s on its last scene" if speed else ""
        lines.append(f"  {record.hostname}  {what}{rate}")
    return lines


def shot_lines(redis_client) -> list[str]:
    """A line per shot on the farm: its frames done, rendering and not started."""
    from farm.client.frames import describe
    from farm.protocol.shots import ShotRecord

    lines = []
    for shot_id in ShotRecord.ids(redis_client):
        record = ShotRecord(redis_client, shot_id)
        try:
            meta = record.load()
        except FarmError as exc:
            lines.append(f"{shot_id}  malformed: {exc}")
            continue
        states = []
        for job_id in record.jobs().values():
            with contextlib.suppress(FarmError):
                states.append(Job.load(redis_client, job_id).state)
        done = sum(state == JobState.DONE for state in states)
        rendering = sum(not state for state in states)
        state = "cancelled" if record.cancelled() else ("done" if done == len(meta.frames) else "rendering")
        lines.append(f"{shot_id}  {state:9}  frames {describe(meta.frames)}: {done} done, {rendering} rendering, "
                     f"{len(meta.frames) - len(states)} not started  {meta.fps:g} fps  created "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(meta.created))}")
    return lines


def job_lines(redis_client) -> list[str]:
    """A line per job on the farm, oldest first: state, progress, frame (`farm status`,
    the live view's list)."""
    jobs, lines, malformed = [], [], []
    for job_id in JobRecord.ids(redis_client):
        try:
            jobs.append(Job.load(redis_client, job_id))
        except MalformedJob as exc:  # listed all the same, with what is wrong (its state, if it ended)
            with contextlib.suppress(FarmError):
                state, error, *_ = JobRecord(redis_client, job_id).state()
                malformed.append(f"{job_id}  {state or 'rendering':9}  {error or exc}")
        except FarmError:  # gone between the scan and the read
            continue
    from farm.protocol import pools, registry

    now = server_time(redis_client)
    workers = registry.workers(redis_client) if any(job.require for job in jobs) else {}
    for job in sorted(jobs, key=lambda j: j.meta.created):
        tasks = set(job.units.in_order())  # a split bucket's spare parts are not tasks of its own
        done, total = len(job.tiles.stored() & tasks), len(tasks)
        running = len({lease.bucket for lease in job.deliveries.leases() if lease.until >= now})
        state = job.state or ("rendering" if done < total else "complete")
        note = f"  {job.error}" if job.error else ""
        if job.require and not job.state:
            said = registry.about(redis_client, list(workers))
            if not any(not pools.lacks(job.require, said.get(name)) for name in workers):
                note += f"  requires {','.join(job.require)}: no live worker has every one of these tags"
        blocked = job.blocklist.blocked()
        if blocked:
            note += "  blocklisted: " + "; ".join(f"{worker} ({why})" for worker, why in sorted(blocked.items()))
        unattended = job.record.unattended()  # its client refreshes it each 30 s
        if not job.state and unattended > 90:
            note += f"  no client for {unattended // 60:.0f} min: `farm collect {job.job_id} -o OUT` picks it up"
        meta = job.meta
        lines.append(f"{job.job_id}  {state:9}  {done}/{total} buckets ({100 * done / total:.0f}%), {running} running  "
                     f"{meta.width}x{meta.height} {meta.spp} spp  created "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(meta.created))}" + note)
    return lines + sorted(malformed)
