"""A job's fixed description (JobMeta), stored as the hash `farm:job:<id>`: what a worker
needs to find the scene and its bucket, checked against the farm's limits on both sides."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from farm import defaults
from farm.buckets import count
from farm.exceptions import JobError


# The AOV layers a job may ask for, beside the beauty pass (README: conventions).
AOVS = ("albedo", "normal", "depth", "variance")

# Longest pretend bucket of the null renderer: longer is no benchmark, only a hung job.
NULL_SECONDS_MAX = 60.0


@dataclass(frozen=True)
class JobMeta:
    """The job's fixed description, stored as the hash `farm:job:<id>`."""

    job_id: str
    digest: str  # scene digest: key of the scene document
    width: int
    height: int
    spp: int
    bucket_size: int
    order: str
    created: float
    assets: tuple[str, ...] = ()  # digests of the scene's files, kept alive with the job
    # Seconds of pretend work per bucket for the null renderer of `farm bench --overhead`
    # (farm/tools/null.py); None for every real job.
    null: float | None = None
    # The AOV layers the client asked for (AOVS): workers then render the AOV channels too.
    aovs: tuple[str, ...] = ()
    # A round of a progressive render (submit --progressive): the samples [first, end) of
    # the frame's spp, added to the running sums in the tiles of job `previous` (the round
    # before, whose end is this round's first). Its tiles hold running sums, the last
    # round's the frame itself: the same floats added in the same order as one render.
    first: int = 0
    end: int = 0  # 0: spp
    previous: str = ""

    @property
    def samples(self) -> tuple[int, int]:
        """The samples [first, end) this job renders."""
        return self.first, self.end or self.spp

    @property
    def channels(self) -> int:
        """Floats per pixel in this job's tiles."""
        from farm.protocol.tiles import AOV_CHANNELS, CHANNELS

        return AOV_CHANNELS if self.aovs else CHANNELS

    def to_redis(self) -> dict[str, str]:
        values = {k: str(v) for k, v in asdict(self).items()}
        values["assets"] = ",".join(self.assets)
        values["aovs"] = ",".join(self.aovs)
        values["null"] = "" if self.null is None else repr(self.null)
        return values

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes]) -> JobMeta:
        """The description as a worker reads it: Redis is input from outside, so every
        number is checked against the limits the client was held to."""
        values = {k.decode(): v.decode() for k, v in raw.items()}
        try:
            meta = cls(
                job_id=values["job_id"],
                digest=values["digest"],
                width=int(values["width"]),
                height=int(values["height"]),
                spp=int(values["spp"]),
                bucket_size=int(values["bucket_size"]),
                order=values["order"],
                created=float(values["created"]),
                assets=tuple(d for d in values.get("assets", "").split(",") if d),
                null=float(values["null"]) if values.get("null") else None,
                aovs=tuple(name for name in values.get("aovs", "").split(",") if name),
                first=int(values.get("first", "0")),
                end=int(values.get("end", "0")),
                previous=values.get("previous", ""),
            )
        except (KeyError, ValueError) as exc:
            raise JobError(f"job {values.get('job_id', '?')}: malformed description in Redis ({exc})") from None
        meta.check()
        return meta

    def check(self) -> None:
        """Refuse a frame over the limits of resolution, samples and bucket count."""
        if not (1 <= self.width <= defaults.MAX_RESOLUTION and 1 <= self.height <= defaults.MAX_RESOLUTION):
            raise JobError(f"{self.width}x{self.height} is over the limit of "
                           f"{defaults.MAX_RESOLUTION} pixels a side (FARM_MAX_RESOLUTION)")
        if not 1 <= self.spp <= defaults.MAX_SPP:
            raise JobError(f"{self.spp} samples per pixel is over the limit of {defaults.MAX_SPP} (FARM_MAX_SPP)")
        if not defaults.MIN_BUCKET_SIZE <= self.bucket_size <= defaults.MAX_BUCKET_SIZE:
            raise JobError(f"bucket size {self.bucket_size} is outside "
                           f"[{defaults.MIN_BUCKET_SIZE}, {defaults.MAX_BUCKET_SIZE}]")
        first, end = self.samples
        if not 0 <= first < end <= self.spp or (first > 0) != bool(self.previous):
            raise JobError(f"samples [{first}, {end}) of {self.spp} (after job {self.previous or 'none'}) "
                           f"is not a round of this frame")
        unknown = set(self.aovs) - set(AOVS)
        if unknown:
            raise JobError(f"unknown AOV {', '.join(sorted(unknown))} (known: {', '.join(AOVS)})")
        if self.null is not None and not 0.0 <= self.null <= NULL_SECONDS_MAX:
            raise JobError(f"{self.null} s of null work per bucket is outside [0, {NULL_SECONDS_MAX}]")
        buckets = count(self.width, self.height, self.bucket_size)
        if buckets > defaults.MAX_BUCKETS:
            raise JobError(f"{self.width}x{self.height} in {self.bucket_size} px buckets is {buckets} buckets, over "
                           f"the limit of {defaults.MAX_BUCKETS} (FARM_MAX_BUCKETS): use larger buckets")
