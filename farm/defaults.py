"""Every number a user may want to change, each with its reason and its FARM_* variable.

Values are read when this module is imported, from the FARM_* environment variable, else
the settings file (farm/settings.py says where it is and how it reads), so a worker and a
client started alike agree. A value that does not parse or is out of its range keeps its
default here and is named by `check()`, which every entry point (the commands, a worker's
start) calls first.
"""

import os

from farm.settings import check, flag, known, name, number, one_of, setting, size, text, whole

__all__ = ["check"]  # every entry point calls defaults.check() first (farm.settings)


def _int(name: str, default: int, least: int = 1, most: int | None = None) -> int:
    return setting(name, default, whole, "a whole number", least, most)


def _float(name: str, default: float, least: float = 0.0, most: float | None = None) -> float:
    return setting(name, default, number, "a number", least, most)


def _str(name: str, default: str) -> str:
    return setting(name, default, text, "text")


def _bytes(name: str, default: int, least: int = 1) -> int:
    return setting(name, default, size, "a size in bytes (such as 512M or 2G)", least)


def _cache_dir() -> str:
    """FARM_CACHE_DIR, else farm/assets under the user's cache directory (XDG)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return _str("FARM_CACHE_DIR", os.path.join(base, "farm", "assets"))


# Where the broker (and the job data beside it) lives; empty means "start an embedded one".
BROKER_URL = _str("FARM_BROKER_URL", "")

# The name Redis Sentinel monitors the farm's master by, for a sentinel:// FARM_BROKER_URL
# (kombu's `master_name`); mymaster is the name in Redis's own sentinel.conf.
SENTINEL_MASTER = _str("FARM_SENTINEL_MASTER", "mymaster")

# Bucket side limits: below 4 px the launch overhead dominates; above 1024 a bucket
# stops being a unit of work that can be moved.
MIN_BUCKET_SIZE = 4
MAX_BUCKET_SIZE = 1024

# 64 px buckets: large enough that a launch amortises its ~1 ms overhead, small enough
# that a 1080p frame gives ~500 buckets to spread over many workers.
BUCKET_SIZE = _int("FARM_BUCKET_SIZE", 64, least=MIN_BUCKET_SIZE, most=MAX_BUCKET_SIZE)

# Without --bucket-size or FARM_BUCKET_SIZE, a frame's buckets are sized to render in about
# this many seconds on the median worker, from the speeds the workers measured on their last
# buckets (farm.client.sizing): large on GPUs, small on CPUs. A second keeps the farm's own
# cost per bucket (a few ms at the client and at Redis) under 1% even on a fast GPU, and a
# frame of many buckets; the split tail evens out the end (docs/benchmark.md, the scale model).
BUCKET_SECONDS = _float("FARM_BUCKET_SECONDS", 1.0, least=0.01)

# Spiral from the centre shows the interesting part of the frame first, like V-Ray.
BUCKET_ORDER = setting("FARM_BUCKET_ORDER", "spiral", one_of("spiral", "top-down"), "spiral or top-down")

# Local workers started by `submit` when no broker is configured; two shows the split.
LOCAL_WORKERS = _int("FARM_WORKERS", 2)

# Which OpenCL device a worker opens: auto (GPU, else CPU), gpu, cpu, or a name substring.
DEVICE = _str("FARM_DEVICE", "auto")

# Longest side a frame may have; 16k covers print work, more is almost surely a typo.
MAX_RESOLUTION = _int("FARM_MAX_RESOLUTION", 16384)

# Most buckets one frame may have: each is a queued message and a stored tile, and past
# this the queue, not the rendering, becomes the work (1080p in 4 px buckets is 130k).
MAX_BUCKETS = _int("FARM_MAX_BUCKETS", 200_000)

# Most triangles one scene may have, after instancing: packing takes ~20 s a million on
# one core and each costs ~200 bytes of device memory, so 20 M is minutes and 4 GB.
MAX_TRIANGLES = _int("FARM_MAX_TRIANGLES", 20_000_000)

# Most pixels one texture may have: 8192 x 8192, the top of production texture sizes
# (1 GiB as float RGBA on the device).
MAX_TEXTURE_PIXELS = _int("FARM_MAX_TEXTURE_PIXELS", 8192 * 8192)

# Largest file a scene may name (and the scene file itself): a dense scanned mesh or a
# 16k EXR sky fits; a mistaken path to a disk image does not.
MAX_ASSET_BYTES = _bytes("FARM_MAX_ASSET_BYTES", 2 << 30)

# Largest scene document (the JSON that travels to every worker, files aside): inline
# geometry belongs in mesh files. Parsing costs a worker about 28 times the document's
# size (measured: 39 MB took 1.1 GB), so 16 MB stays under half a gigabyte per process.
MAX_SCENE_BYTES = _bytes("FARM_MAX_SCENE_BYTES", 16 << 20)

# Decompression bombs: an image may decode to at most this many times its file's size...
MAX_EXPANSION = _int("FARM_MAX_EXPANSION", 256)
# ...unless it decodes to less than this, which cannot strain any worker (a 4k RGBA
# texture; flat-colour masks compress far better than 256:1).
EXPANSION_FLOOR = 64 << 20

# Files travel through Redis in chunks of this size: one command stays well under a
# millisecond, and no client or server buffer ever holds a whole large file.
ASSET_CHUNK = _bytes("FARM_ASSET_CHUNK", 1 << 20, least=1024)

# Where a worker keeps the files it fetched, and how large that folder may grow before
# the least recently used are evicted; several workers on one machine may share it.
CACHE_DIR = _cache_dir()
# Where `farm manager` writes the images of the jobs handed to it (a folder per job): a
# folder on its machine, or an fsspec URL (s3://bucket/prefix) (farm/manager/store.py)
OUTPUT_DIR = _str("FARM_OUTPUT_DIR", "")
# `farm manager`'s web UI and API: where it serves them (HOST:PORT; "off": not at all), the
# URL clients are told where that differs (behind a proxy), and the token every request
# needs (empty: a random one, kept in Redis for the farm's commands and printed at start)
MANAGER_ADDRESS = _str("FARM_MANAGER_ADDRESS", "127.0.0.1:8780")
MANAGER_URL = _str("FARM_MANAGER_URL", "")
MANAGER_TOKEN = _str("FARM_MANAGER_TOKEN", "")
# Seconds the leading manager's lease lasts (renewed every third of it): another manager
# takes over within about this long after the leader dies (farm/manager/lease.py)
MANAGER_LEASE = _float("FARM_MANAGER_LEASE", 10.0, least=3.0)
CACHE_SIZE = _bytes("FARM_CACHE_SIZE", 10 << 30, least=0)
# Packed scenes (BVH built, the kernel's arrays) kept beside the assets, one copy per
# machine: the newest few, as a machine renders few scenes at once and a packed scene of a
# million triangles takes about 250 MB. A process waits at most PACK_WAIT for another one
# packing the same scene, then packs it itself.
PACKED_SCENES = _int("FARM_PACKED_SCENES", 4, least=0)
PACK_WAIT = _float("FARM_PACK_WAIT", 300.0)

# Upper bound on samples per pixel, so a typo cannot book the farm for a week; never past
# the 2^20 the kernel's fixed-point sums hold exactly (farm.protocol.tiles.MAX_SAMPLES).
MAX_SPP = _int("FARM_MAX_SPP", 1 << 16, most=1 << 20)

# Seconds to wait for a broker to answer before telling the user it is unreachable.
CONNECT_TIMEOUT = _float("FARM_CONNECT_TIMEOUT", 3.0, least=0.1)

# Seconds a job's keys stay in Redis with no client looking after it (a client refreshes
# them while it collects): a day to come back with `farm collect` after a crash.
JOB_TTL = _int("FARM_JOB_TTL", 24 * 3600, least=60)

# Seconds a finished, cancelled or failed job's keys stay before Redis drops them: time
# to collect the image again, short enough that nothing piles up.
FINISHED_TTL = _int("FARM_FINISHED_TTL", 3600)

# Seconds without a heartbeat after which a running bucket's worker counts as lost and
# the bucket is sent again. Heartbeats come every quarter of this; ten seconds rides out a
# busy machine and still recovers a dead host's bucket within seconds.
# At least 4: a dead worker's registry entry (farm.protocol.registry) must be gone by then.
LEASE_TIMEOUT = _float("FARM_LEASE_TIMEOUT", 10.0, least=4.0)

# Seconds the client waits between checks of the job (leases, lost messages, stragglers).
RECONCILE_INTERVAL = 1.0

# A bucket its worker expects to render in at most this many seconds (by its own speed on
# the scene, measured on the scene's earlier buckets) is a quick delivery when its message
# is a first one: rendered before it is taken, then taken and stored in one round trip,
# without a lease (farm.worker.process; issue 31, one Redis round trip a bucket fewer). Its
# loss is found as a vanished message's, confirmed by a second look QUICK_CONFIRM later
# (farm.client.reconcile), long after a quick bucket ends even where its worker misjudged it.
# 0: every bucket is taken first, under a lease.
QUICK_SECONDS = _float("FARM_QUICK_SECONDS", 0.25, least=0.0, most=1.0)
QUICK_CONFIRM = max(2.0, 8 * QUICK_SECONDS)

# Seconds after its bucket ends that a worker with no other bucket says it is idle
# (farm/worker/busy.py): one taking bucket after bucket says nothing per bucket. The
# client checks the tail of a frame twice this after a tile, to find it idle.
IDLE_AFTER = 0.05

# Times a bucket may fail or kill its worker before the job fails with its error: a
# broken bucket must not loop for ever, a single flaky failure must not end the frame.
MAX_FAILURES = _int("FARM_MAX_FAILURES", 3)

# Run a farm whose broker is off the loopback without a shared secret (farm.protocol.secret):
# refused by default, as Redis's protected mode refuses strangers; a test bed may say so.
ALLOW_NO_SECRET = setting("FARM_ALLOW_NO_SECRET", False, flag, "1 or 0 (true or false, yes or no, on or off)")

# Seconds before a bucket that failed is sent again after its first failure, doubling
# with each further one, at most a quarter of LEASE_TIMEOUT: a fault that passes (a device
# reset, memory pressure) gets time to pass, and the resend still goes long before the
# client would take its message for lost. 0: at once.
FAILURE_BACKOFF = _float("FARM_FAILURE_BACKOFF", 0.5)

# Failed buckets in a row after which a worker calls itself bad and stops taking buckets.
BAD_WORKER_FAILURES = _int("FARM_BAD_WORKER_FAILURES", 3)
# Failed buckets of one job after which a worker takes no more of that job's (it still
# renders the others'): the job's blocklist (farm/protocol/blocklist.py)
BLOCK_AFTER = _int("FARM_BLOCK_AFTER", 2)

# Stragglers: once nothing of a job is queued, a bucket running longer than this many
# times the median finished bucket gets a copy on an idle worker; first tile wins. 0: never.
SPECULATE = _float("FARM_SPECULATE", 1.5)

# A worker publishes its task events for Flower at most this many seconds after the
# first one waits (or when 24 wait), in one message: one per bucket cost a third of its
# main process (farm/worker/consumer.py).
EVENT_FLUSH = _float("FARM_EVENT_FLUSH", 0.25)

# Task events a second each sending process (a `submit`, a manager) lets its buckets make
# for Flower, which falls behind past 3-4k a second: past it, a sample of whole tasks is
# shown, the others are quiet (farm/protocol/flower.py). 0: none.
TASK_EVENTS = _float("FARM_TASK_EVENTS", 2000.0)

# The live view's token where it is bound to an address other than the loopback
# (`submit --watch HOST:PORT`); empty: a random one, printed in its URL.
WATCH_TOKEN = _str("FARM_WATCH_TOKEN", "")

# A worker's Prometheus metrics (farm/worker/metrics.py): the port its main process serves
# them on, 0 for none (two workers on one machine need two ports), and the address, the
# loopback unless a Prometheus elsewhere scrapes it.
METRICS_PORT = _int("FARM_METRICS_PORT", 0, least=0, most=65535)
METRICS_ADDRESS = _str("FARM_METRICS_ADDRESS", "127.0.0.1")

# Seconds worker and client keep retrying (with backoff) a broker that went away, e.g.
# while Redis restarts, before they give up on it.
BROKER_RETRY = _float("FARM_BROKER_RETRY", 120.0)

# Longest pause between two retries of a lost broker connection.
RETRY_BACKOFF_CAP = 2.0

# How Celery retries publishing a bucket while the broker is away: the same patience.
PUBLISH_RETRY = {
    "max_retries": int(BROKER_RETRY / RETRY_BACKOFF_CAP) + 1,
    "interval_start": 0.1,
    "interval_step": 0.5,
    "interval_max": RETRY_BACKOFF_CAP,
}

# Seconds `submit` waits for its embedded workers to come up (first kernel build included).
WORKER_START_TIMEOUT = _float("FARM_WORKER_START_TIMEOUT", 120.0, least=1.0)

# Seconds without any finished bucket, while no worker answers a ping, before giving up.
STALL_TIMEOUT = _float("FARM_STALL_TIMEOUT", 60.0, least=1.0)

# Seconds the client waits while every worker it sees is bad (no device, or failing every
# bucket) before failing the job with their reasons: a worker restarted by its operator is
# healthy again well within this.
NO_HEALTHY_WORKER_TIMEOUT = _float("FARM_NO_HEALTHY_WORKER_TIMEOUT", 15.0)

# Buckets sent in one LPUSH (their messages; then one message holding their task-sent
# events for Flower): large enough that the round trip stops mattering, small enough that
# a batch is a fraction of a second of work.
SEND_BATCH = _int("FARM_SEND_BATCH", 500)

# Buckets of one job the client keeps sent and unfinished; it sends more as tiles arrive.
# Far more than the workers can hold (each prefetches one), so none waits for the client;
# far fewer than a big frame's buckets, so a small job submitted behind it starts at once
# and a cancel has little to remove.
SEND_WINDOW = _int("FARM_SEND_WINDOW", 4000)

# Seconds of rendering, at the rate tiles arrive, the client keeps queued ahead (within
# SEND_WINDOW): the workers never wait for it, and a queued bucket waits far less than
# LEASE_TIMEOUT, after which the client would check that its message still exists.
SEND_AHEAD = 2.0

# The Celery queue buckets travel on: on Redis, the lists `farm`, `farm:1` ... `farm:9`
# (kombu's priority steps, with ":" between), which workers empty in that order.
QUEUE = setting("FARM_QUEUE", "farm", name, "a name of letters, digits, -, _ and .")
PRIORITY_STEPS = tuple(range(10))

# A job's priority, 0-100, higher first (`submit --priority`, `farm priority JOB N`), falls in
# one of five bands of 20 (80-100 first); each band has two of kombu's steps: the buckets
# of jobs with at most PRIORITY_TAIL left (and every bucket sent again, late already) go
# first, then the others. So among jobs of one band, the shortest remaining goes first: a
# small job submitted behind a huge one renders next, in about its own time, and a huge
# job's last buckets move up as it ends.
DEFAULT_PRIORITY = 50
# A worker's tags (FARM_TAGS=gpu,lookdev; its device kind is one by itself): the pools whose
# jobs it renders (farm/protocol/pools.py, `submit --require`)
TAGS = _str("FARM_TAGS", "")
PRIORITY_TAIL = 64

# Prefix of every Redis key farm writes, so a shared Redis stays tidy.
KEY_PREFIX = setting("FARM_KEY_PREFIX", "farm", name, "a name of letters, digits, -, _ and .")

# `submit --split-tail`: the most parts a bucket's samples are split into (each part is a
# task, a launch and a tile of sums: past a worker's share of a bucket they only cost).
MAX_SPLIT = _int("FARM_MAX_SPLIT", 16)

# A noise target (`submit --noise`): its cells, on a fixed grid of the frame so a plan is
# the same whatever the bucket size, are 8 px (64 pixels: an error estimate steadier than
# one pixel's, a region small enough to follow an edge); samples every pixel gets first
# (fewer make the first error estimate too rough to trust); the darkest mean luminance
# its relative error is taken of (black pixels would otherwise ask for every sample).
NOISE_CELL = _int("FARM_NOISE_CELL", 8)
NOISE_MIN_SPP = _int("FARM_NOISE_MIN_SPP", 16)
NOISE_FLOOR = _float("FARM_NOISE_FLOOR", 0.01, least=1e-6)

# Seconds of samples per kernel launch when a worker renders a bucket in passes: a
# cancel, a SIGTERM or a faster copy of the bucket takes effect within about this long.
PASS_SECONDS = _float("FARM_PASS_SECONDS", 0.5, least=0.01)
# 1: a render process loads the BVH builder and the OBJ reader numba compiles
# (farm/scene/bvh_loop.py, obj_loop.py) on a thread as it starts, so that the first scene of
# 200,000 primitives or more does not wait for them (about 0.5 s: their code comes built,
# farm/scene/compiled.py; with another numba or Python, numba compiles them once a machine,
# 6-9 s on the development machines). It costs about
# 130 MB of memory a render process; 0 loads it when the first such scene comes.
BVH_WARMUP = _int("FARM_BVH_WARMUP", 1, least=0, most=1)
# 1: a render process keeps the memory it frees for its next scene instead of handing it
# back to the kernel (farm/worker/heap.py): a 1M-triangle scene's first tile 1.33 -> 1.04 s
# (median) after the process's first scene, its peak memory held until it ends; 0: freed
# memory goes back, each scene faults its own in.
KEEP_MEMORY = _int("FARM_KEEP_MEMORY", 1, least=0, most=1)

# Work items per OpenCL work group (a bucket is one 1-d launch, one work item a pixel).
# Fixed, so every pixel runs the same compiled code whatever the bucket size: part of the
# bit-identical guarantee. Small, so PoCL's threads share even a small bucket evenly
# (measured with 32 spp: 32-px buckets 0.98x a frame launch at 16, 1.07x at 64).
LOCAL_SIZE = 16
# The same on GPUs, where a work group of 16 would leave half of each 32-wide warp idle.
GPU_LOCAL_SIZE = 64

# Settings read where they are used, named here so that check() knows them: the farm's
# secret and the sentinels' password (farm/protocol/secret.py, broker.py: from the
# environment or the settings file), the Celery configuration module (farm/app.py) and the
# switches of the worker plugins in pyproject.toml's farm.worker_plugins (the environment).
known("FARM_SECRET", "the farm's shared secret (hex text, from `farm secret`)")
known("FARM_SECRET_FILE", "a file holding the farm's secret")
known("FARM_SENTINEL_PASSWORD", "the password of Redis Sentinel")
known("FARM_CELERY_CONFIG", "the module of the Celery settings (farm.celeryconfig)")
known("FARM_FAULTS", "deliberate faults, for tests and `farm chaos` (farm/tools/faults.py)")
known("FARM_NULL_RENDER", "the null renderer of `farm bench --overhead` (farm/tools/null.py)")
known("FARM_CYCLES_PYTHON", "a Python with Blender's bpy for `farm bench --quality --cycles` (farm/tools/bench_cycles.py)")
