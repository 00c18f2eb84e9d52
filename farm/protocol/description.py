"""A job's fixed description (JobMeta), stored as the hash `farm:job:<id>`: what a worker
needs to find the scene and its bucket, checked against the farm's limits on both sides."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from farm import defaults
from farm.buckets import ORDERS, count
from farm.exceptions import JobError, MalformedJob


# The AOV layers a job may ask for, beside the beauty pass (docs/scenes.md: conventions).
AOVS = ("albedo", "normal", "depth", "variance", "material")

# Latest moment of an animation a frame may show: a day, far past any shot.
MAX_SECONDS = 86400.0

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
    # A job whose client adds up its tiles (`submit --progressive`, `--noise`): its tiles
    # hold the int64 fixed-point sums of the samples [first, end) of every pixel, or, with a
    # `cell` size, of the samples its stored plan (farm.protocol.plans) gives each cell;
    # the client adds them to the sums of the rounds before, exactly, and divides.
    sums: bool = False
    first: int = 0
    end: int = 0  # 0: spp
    cell: int = 0  # 0: no stored plan, every pixel takes [first, end)
    # The frame's last `tail` buckets (in its order) are sent as `split` parts each, part j
    # the samples [spp * j // split, spp * (j + 1) // split), so the frame's last bucket
    # does not leave the other workers idle; their tiles are sums, added up by the client
    # in any order (exact) to the same bits as the whole bucket (Job.unit).
    tail: int = 0
    split: int = 0
    # Spare parts: every whole bucket may also be rendered as `spares` parts of its samples,
    # sent only when the client sees idle workers beside a bucket still running (the tail
    # splitting itself, farm.client.reconcile); unit bucket_count + tail * split + b *
    # spares + j is part j of bucket b. The first to complete, the bucket or all its parts, wins.
    spares: int = 0
    # The moment of the scene's animation this frame shows, in seconds (a frame of a shot,
    # farm.scene.animation): every worker evaluates the keyframes there itself; 0 for a still.
    time: float = 0.0
    # Seconds around `time` that the frame's shutter is open (`submit --shutter`, motion blur,
    # farm.scene.motion): (0, 0) for none.
    shutter_open: float = 0.0
    shutter_close: float = 0.0

    @property
    def shutter(self) -> tuple[float, float]:
        return self.shutter_open, self.shutter_close

    @property
    def samples(self) -> tuple[int, int]:
        """The samples [first, end) this job renders (the bounds of its plan's ranges)."""
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
        values["sums"] = "1" if self.sums else ""
        return values

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes]) -> JobMeta:
        """The description as a worker reads it: Redis is input from outside, so every
        number is checked against the limits the client was held to."""
        values = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}
        job_id = values.get("job_id", "?")

        def field(name: str, kind=str, default: str | None = None):
            text = values.get(name, default)
            if text is None:
                raise MalformedJob(f"job {job_id}: malformed description in Redis: field {name} is missing")
            try:
                return kind(text)
            except ValueError:
                raise MalformedJob(f"job {job_id}: malformed description in Redis: field {name} is {text[:40]!r}, "
                                   f"not {'an integer' if kind is int else 'a number'}") from None

        meta = cls(
            job_id=field("job_id"),
            digest=field("digest"),
            width=field("width", int),
            height=field("height", int),
            spp=field("spp", int),
            bucket_size=field("bucket_size", int),
            order=field("order"),
            created=field("created", float),
            assets=tuple(d for d in values.get("assets", "").split(",") if d),
            null=field("null", float) if values.get("null") else None,
            aovs=tuple(name for name in values.get("aovs", "").split(",") if name),
            sums=bool(values.get("sums")),
            first=field("first", int, "0"),
            end=field("end", int, "0"),
            cell=field("cell", int, "0"),
            tail=field("tail", int, "0"),
            split=field("split", int, "0"),
            spares=field("spares", int, "0"),
            time=field("time", float, "0"),
            shutter_open=field("shutter_open", float, "0"),
            shutter_close=field("shutter_close", float, "0"),
        )
        try:
            meta.check()
        except JobError as exc:
            raise MalformedJob(f"job {job_id}: description in Redis over the farm's limits: {exc}") from None
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
        if not 0 <= first < end <= (defaults.MAX_SPP if self.sums else self.spp) or (
                (first, end) != (0, self.spp) and not self.sums):
            raise JobError(f"samples [{first}, {end}) of a frame of {self.spp} samples per pixel are not a job "
                           f"(limit {defaults.MAX_SPP}, FARM_MAX_SPP)")
        if not abs(self.time) <= MAX_SECONDS:
            raise JobError(f"a frame at {self.time} s is not a moment of an animation (at most {MAX_SECONDS:g} s)")
        if not (abs(self.shutter_open) <= MAX_SECONDS and abs(self.shutter_close) <= MAX_SECONDS
                and self.shutter_open <= self.shutter_close):
            raise JobError(f"a shutter open from {self.shutter_open} s to {self.shutter_close} s around its frame "
                           "is not a shutter")
        if self.cell < 0 or (self.cell and not self.sums):
            raise JobError(f"a sample plan of {self.cell}px cells is not a job")
        if self.order not in ORDERS:
            raise JobError(f"unknown bucket order {self.order!r} (choose from {', '.join(ORDERS)})")
        unknown = set(self.aovs) - set(AOVS)
        if unknown:
            raise JobError(f"unknown AOV {', '.join(sorted(unknown))} (known: {', '.join(AOVS)})")
        if self.null is not None and not 0.0 <= self.null <= NULL_SECONDS_MAX:
            raise JobError(f"{self.null} s of null work per bucket is outside [0, {NULL_SECONDS_MAX}]")
        buckets = count(self.width, self.height, self.bucket_size)
        if buckets > defaults.MAX_BUCKETS:
            raise JobError(f"{self.width}x{self.height} in {self.bucket_size} px buckets is {buckets} buckets, over "
                           f"the limit of {defaults.MAX_BUCKETS} (FARM_MAX_BUCKETS): use larger buckets")
        if (self.tail or self.split) and not (
                2 <= self.split <= min(defaults.MAX_SPLIT, self.spp) and 1 <= self.tail <= buckets
                and not self.sums and self.null is None):
            raise JobError(f"{self.tail} buckets in {self.split} parts of {self.spp} samples is not a split of "
                           f"this frame (at most {defaults.MAX_SPLIT} parts, FARM_MAX_SPLIT)")
        if self.spares and not (2 <= self.spares <= min(defaults.MAX_SPLIT, self.spp) and not self.sums
                                and self.null is None):
            raise JobError(f"{self.spares} spare parts of {self.spp} samples is not a split of this frame "
                           f"(at most {defaults.MAX_SPLIT} parts, FARM_MAX_SPLIT)")
