"""`farm check [JOB|SHOT|SCENE]`: every live worker with its renderer identity (farm's version,
the kernel's identity, the OpenCL device and driver: farm.protocol.identity), and for a job,
a shot or a scene, which workers would not render it and why. Cf. V-Ray's DR check."""

from __future__ import annotations

from pathlib import Path

from farm.exceptions import FarmError


def lines(redis, target: str | None = None) -> list[str]:
    from farm.protocol import identity, pools, registry

    workers = registry.workers(redis)
    about = registry.about(redis, list(workers))
    kernel, pin, mixed, require, what = _target(redis, target)
    rows = [f"this client's kernel sources: {identity.sources_digest()}", f"{len(workers)} worker(s)"]
    for name, record in sorted(workers.items()):
        said = about.get(name, {})
        rows.append(f"  {name}  farm {said.get('farm') or '?'}  kernel {said.get('kernel') or '(not said yet)'}  "
                    f"{said.get('device') or '?'}  driver {said.get('driver') or '?'}  tags {said.get('tags') or '-'}"
                    + (f"  bad: {record.bad}" if record.bad else ""))
    if what is None:
        kinds = {said.get("kernel") for said in about.values() if said.get("kernel")}
        if len(kinds) > 1:
            rows.append(f"{len(kinds)} kernel identities: a job is pinned to the first that takes one of its buckets "
                        "(submit --allow-mixed-devices lets them all render it)")
        return rows
    excluded = {name: why for name in workers
                if (why := workers[name].bad and f"bad: {workers[name].bad}" or pools.lacks(require, about.get(name))
                    or identity.excluded(kernel, pin, mixed, about.get(name, {}).get("kernel", "")))}
    rows.append(f"{what}: {len(workers) - len(excluded)} of {len(workers)} worker(s) may render it"
                + (f" (pinned to {pin})" if pin and not mixed else ""))
    rows += [f"  excluded {name}: {why}" for name, why in sorted(excluded.items())]
    return rows


def _target(redis, target: str | None) -> tuple[str, str, bool, tuple[str, ...], str | None]:
    """(kernel sources digest, pin, mixed, tags required, what it is) of a job, a shot (its
    first frame's job) or a scene (a job not yet pinned, of this client's sources, no tags)."""
    from farm.protocol.identity import sources_digest
    from farm.protocol.jobs import Job
    from farm.protocol.record import JobRecord
    from farm.protocol.shots import ShotRecord

    if target is None:
        return "", "", True, (), None
    if Path(target).is_file():
        return sources_digest(), "", False, (), f"scene {target}"
    shot = ShotRecord(redis, target)
    if shot.exists():
        started = shot.jobs()
        if not started:
            return sources_digest(), "", False, (), f"shot {target} (no frame started yet)"
        target = started[min(started)]
    if not redis.exists(JobRecord.key_for(target)):
        raise FarmError(f"{target}: no such job, shot or scene file")
    job = Job.load(redis, target)
    return job.kernel, job.pin, job.mixed, job.require, f"job {target}"
