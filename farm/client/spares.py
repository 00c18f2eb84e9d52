"""The tail that splits itself: when workers sit idle at a frame's end beside a bucket still
rendering (on a slow worker, or simply the last one), the client sends that bucket's spare
parts (JobMeta.spares: its samples cut in parts, whose fixed-point sums add up to the same
bits as the whole) to them, decided from who is idle at that moment, not before the render
(V-Ray's dynamic bucket splitting, exact here). The first to complete, the bucket or all of
its parts, wins: the client puts the parts' sum into the film and stores it signed as the
bucket's tile, which stops the running delivery at its next pass. A mixin of JobRun
(farm.client.run), run from reconciliation (farm.client.reconcile)."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

from farm.protocol import registry, secret
from farm.protocol.leases import Lease
from farm.protocol.recovery import Cause
from farm.protocol.tiles import TileHeader, mean_of

# A split must end its bucket this much sooner than the running delivery would (its share of
# the expected time left), or the duplicate work is not worth sending.
SPLIT_GAIN = 0.5
# A split not complete after this many times its parts' expected time (and a lease timeout)
# may be sent again: a part lost with its worker, its message taken back by a pause or gone;
# the parts already in are kept, a part sent twice is counted once.
SPLIT_PATIENCE = 4.0


@dataclass
class Split:
    """A bucket split for idle workers, as its parts come in."""

    sums: object = 0  # the parts' sums so far (int64, height x width x channels)
    arrived: set[int] = field(default_factory=set)  # parts in, late ones too (reconciliation counts them)
    headers: list[TileHeader] = field(default_factory=list)  # of the parts summed
    again: float = 0.0  # when it may be sent again (time.monotonic): a part lost, taken back or gone

    def overdue(self) -> bool:
        return time.monotonic() >= self.again


class TailSplit:
    """JobRun's split tail (its field is JobRun's: `splits`, bucket -> Split)."""

    def _split_running(self, live: dict[int, list[Lease]], now: float, workers: dict, excluded: dict) -> bool:
        """Nothing is queued or left to send: where workers are idle and a bucket still runs,
        send the spare parts of the one expected to end last, if the idle workers end it
        sooner by SPLIT_GAIN of its time left (by the speeds the workers noted,
        farm.worker.speed); `excluded`: the workers that may not render the job (Job.excluded).
        True if it split one."""
        meta, units = self.job.meta, self.job.units
        if not meta.spares:
            return False
        busy = {lease.worker for leases in live.values() for lease in leases}
        idle = [name for name, worker in workers.items() if name not in busy and name not in excluded and not worker.busy]
        pending = [split for bucket, split in self.splits.items() if bucket not in self.records and not split.overdue()]
        waiting = max(0, sum(meta.spares - len(split.arrived) for split in pending)
                      - sum(1 for index in live if units.spare(index)))
        free = len(idle) - waiting  # the parts already sent keep the idle workers busy
        if self.max_workers is not None:  # --max-workers counts the parts too
            free = min(free, self.max_workers - sum(len(leases) for leases in live.values()))
        if free < 1:
            return False
        here = {name: speed.samples_per_second for name, speed in registry.speeds(self.job.redis, list(workers)).items()
                if speed.scene == meta.digest}  # speeds on this scene only
        idle_rate = statistics.median([here[name] for name in idle if name in here] or list(here.values()) or [0])
        if not idle_rate:
            return False
        candidates = []
        for index, leases in live.items():
            split = self.splits.get(index)
            if index >= units.bucket_count or index in self.records or (split and not split.overdue()):
                continue  # a part, done, or split and not yet overdue
            bucket = units.bucket(index)
            samples = bucket.width * bucket.height * meta.spp
            rates = [here[lease.worker] for lease in leases if lease.worker in here]
            expected = samples / max(rates or [idle_rate])  # its fastest delivery's, else a worker's now idle
            elapsed = now - min(lease.started for lease in leases)
            # one past its time (slower here than its speed said) is taken to need as long again
            left = expected - elapsed if elapsed < expected else elapsed
            parts = samples / meta.spares / idle_rate * math.ceil(meta.spares / free)
            if parts < SPLIT_GAIN * left:
                candidates.append((left, index, parts))
        if not candidates:
            return False
        left, index, parts = max(candidates)
        split = self.splits.setdefault(index, Split())
        split.again = time.monotonic() + SPLIT_PATIENCE * parts + self.lease_timeout
        self.recovery.resend(self.job, [part for part in units.spares_of(index) if part not in split.arrived],
                             Cause.SPLIT)
        self._notice(f"bucket {index} split in {meta.spares} parts for the idle workers ({left:.1f}s left on "
                     f"{', '.join(sorted({lease.worker for lease in live[index]}))})")
        return True

    def _spare_arrived(self, index: int, header: TileHeader, pixels) -> None:
        """A spare part's sums: added up until its bucket has all of them (exact, in any order),
        then the bucket goes into the film and its tile is stored (first tile wins)."""
        whole, _ = self.job.part(index)
        found = self.splits.setdefault(whole, Split())
        if index in found.arrived:
            return
        found.arrived.add(index)  # counted when late too
        if whole in self.records:
            return
        found.sums = pixels + found.sums
        found.headers.append(header)
        if len(found.arrived) < self.job.meta.spares:
            return
        bucket, headers = self.job.bucket(whole), found.headers
        tile = mean_of(found.sums, self.job.meta.spp)
        self.film.put(bucket, tile)
        workers = ", ".join(sorted({h.worker for h in headers}))
        combined = TileHeader(self.job.job_id, whole, bucket.width, bucket.height, f"split: {workers}",
                              headers[-1].device, sum(h.seconds for h in headers), max(h.attempt for h in headers), 0)
        if self.queue is not None:  # a run that only watches (farm watch) writes nothing
            self.job.tiles.store(combined, tile, secret.key())  # stops the running delivery; a tile before it wins
        self._record(whole, combined)

