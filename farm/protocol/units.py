"""The tasks of a job, numbered: its buckets (row-major, farm.buckets), then the parts of
its split tail buckets (JobMeta.tail), then every bucket's spare parts (JobMeta.spares), and
the order they are sent in. Pure: no Redis."""

from __future__ import annotations

from functools import cached_property

from farm.buckets import Bucket, bucket_at, count, order, split
from farm.protocol.description import JobMeta


class Units:
    def __init__(self, meta: JobMeta):
        self.meta = meta
        self.bucket_count = count(meta.width, meta.height, meta.bucket_size)
        self.spare_base = self.bucket_count + meta.tail * meta.split  # the first spare part
        self.unit_count = self.spare_base + self.bucket_count * meta.spares  # tasks the job can have
        self._made: dict[int, Bucket] = {}  # bucket(index), as asked (a client asks for each a few times)

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
            made = self._made.get(index)
            if made is None:
                made = self._made[index] = bucket_at(self.meta.width, self.meta.height, self.meta.bucket_size, index)
            return made
        if index >= self.spare_base:
            whole = self.bucket((index - self.spare_base) // self.meta.spares)
        else:
            whole = self._tail[(index - self.bucket_count) // self.meta.split]
        return Bucket(index, whole.x, whole.y, whole.width, whole.height)

    def part(self, index: int) -> tuple[int, tuple[int, int]] | None:
        """For a part of a split bucket: the index of its bucket and its samples [first, end);
        None for a whole bucket."""
        if index < self.bucket_count:
            return None
        spp = self.meta.spp
        if index >= self.spare_base:
            whole, part = divmod(index - self.spare_base, self.meta.spares)
            return whole, (spp * part // self.meta.spares, spp * (part + 1) // self.meta.spares)
        number, part = divmod(index - self.bucket_count, self.meta.split)
        return self._tail[number].index, (spp * part // self.meta.split, spp * (part + 1) // self.meta.split)

    def spare(self, index: int) -> bool:
        """Whether task `index` is a spare part (JobMeta.spares), sent only on demand."""
        return self.spare_base <= index < self.unit_count

    def spares_of(self, whole: int) -> list[int]:
        """The spare parts of bucket `whole`."""
        first = self.spare_base + whole * self.meta.spares
        return list(range(first, first + self.meta.spares))

    def in_order(self) -> list[int]:
        """Every task of the job in the order they are sent: its buckets in its order, those
        of the tail as their parts."""
        ordered = [bucket.index for bucket in order(self.buckets, self.meta.order)]
        if not self.meta.tail:
            return ordered
        return ordered[: -self.meta.tail] + list(range(self.bucket_count, self.spare_base))
