"""The tasks of a job, numbered: its buckets (row-major, farm.buckets), then the parts of
its split tail buckets (JobMeta.tail), and the order they are sent in. Pure: no Redis."""

from __future__ import annotations

from functools import cached_property

from farm.buckets import Bucket, bucket_at, count, order, split
from farm.protocol.description import JobMeta


class Units:
    def __init__(self, meta: JobMeta):
        self.meta = meta
        self.bucket_count = count(meta.width, meta.height, meta.bucket_size)
        self.unit_count = self.bucket_count + meta.tail * meta.split  # tasks the job can have

    @cached_property
    def buckets(self) -> list[Bucket]:
        """Every bucket of the frame: the client's view. A worker needs only `bucket(index)`."""
        return split(self.meta.width, self.meta.height, self.meta.bucket_size)

    @cached_property
    def _tail(self) -> list[Bucket]:
        """The buckets sent as parts (JobMeta.tail): the last of the job's order."""
        return order(self.buckets, self.meta.order)[-self.meta.tail:] if self.meta.tail else []

    def bucket(self, index: int) -> Bucket:
        """Bucket `index`; for a part of a split bucket (index from bucket_count on), its
        bucket's rectangle under the part's own index."""
        if index < self.bucket_count:
            return bucket_at(self.meta.width, self.meta.height, self.meta.bucket_size, index)
        whole = self._tail[(index - self.bucket_count) // self.meta.split]
        return Bucket(index, whole.x, whole.y, whole.width, whole.height)

    def part(self, index: int) -> tuple[int, tuple[int, int]] | None:
        """For a part of a split bucket: the index of its bucket and its samples [first, end);
        None for a whole bucket."""
        if index < self.bucket_count:
            return None
        number, part = divmod(index - self.bucket_count, self.meta.split)
        spp, parts = self.meta.spp, self.meta.split
        return self._tail[number].index, (spp * part // parts, spp * (part + 1) // parts)

    def in_order(self) -> list[int]:
        """Every task of the job in the order they are sent: its buckets in its order, those
        of the tail as their parts."""
        ordered = [bucket.index for bucket in order(self.buckets, self.meta.order)]
        if not self.meta.tail:
            return ordered
        return ordered[: -self.meta.tail] + list(range(self.bucket_count, self.unit_count))
