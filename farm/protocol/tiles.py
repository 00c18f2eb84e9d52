"""The tile wire format: a worker's rendered bucket as it is stored in the job's `tiles` hash.

magic, header length, a JSON header saying whose tile it is and where it came from,
height x width x channels little-endian numbers (CHANNELS, or AOV_CHANNELS with AOVs):
float32 means, or int64 fixed-point sums for a job whose client adds them up (JobMeta.sums:
progressive rounds, a noise target), then an HMAC-SHA256 tag of all that under the
farm's secret (farm.protocol.secret). The client checks the tag and every field before a
tile goes into the frame: anyone with broker access can write to the hash, but only a
holder of the secret can write a tile that passes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from farm.buckets import Bucket
from farm.exceptions import InvalidTile
from farm.protocol import secret

# A pixel's numbers in a tile: radiance (rgb); with AOVs AOV_CHANNELS, the radiance then
# the albedo (rgb) and normal (xyz) from their first channel on, the depth, the mean square
# of the luminance, and the material id of sample 0 plus 1 over the samples taken.
CHANNELS, AOV_CHANNELS = 3, 12
AOV_ALBEDO, AOV_NORMAL, AOV_DEPTH, AOV_LUMINANCE_SQUARE, AOV_MATERIAL = 3, 6, 9, 10, 11
# Rec. 709 luminance: of the variance channel (AOV_LUMINANCE_SQUARE) and the noise target.
LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)

# The kernel's running sums are 64-bit fixed point (kernels/pathtrace.cl, fixed_point):
# SUM_SCALE units to 1, each sample clamped to SAMPLE_MAX, so that sums of up to
# MAX_SAMPLES samples are exact in any order or grouping and cannot overflow.
SUM_SCALE = 1 << 24
SAMPLE_MAX = 1 << 18
MAX_SAMPLES = 1 << 20

# The numbers above that the kernel uses, by their names in kernels/pathtrace.cl:
# farm.worker.render passes them as -D build options, so the kernel has no copy of its
# own to disagree. A float is a float in the kernel too.
KERNEL_CONSTANTS: dict[str, int | float] = {
    "CHANNELS": CHANNELS,
    "AOV_CHANNELS": AOV_CHANNELS,
    "AOV_ALBEDO": AOV_ALBEDO,
    "AOV_NORMAL": AOV_NORMAL,
    "AOV_DEPTH": AOV_DEPTH,
    "AOV_LUMINANCE_SQUARE": AOV_LUMINANCE_SQUARE,
    "AOV_MATERIAL": AOV_MATERIAL,
    "LUMINANCE_R": LUMINANCE_WEIGHTS[0],
    "LUMINANCE_G": LUMINANCE_WEIGHTS[1],
    "LUMINANCE_B": LUMINANCE_WEIGHTS[2],
    "SUM_SCALE": float(SUM_SCALE),
    "SAMPLE_MAX": float(SAMPLE_MAX),
}


def mean_of(sums: np.ndarray, counts) -> np.ndarray:
    """The float32 mean of fixed-point `sums` (..., channels) of `counts` samples (a number
    or an array of the leading shape; 0 gives 0): the one division every render of a
    pixel goes through, in the worker or the client, so its bits are the same."""
    counts = np.asarray(counts, np.float64)
    divisor = np.where(counts > 0, counts * SUM_SCALE, np.inf)
    if divisor.ndim:
        divisor = divisor[..., None]
    return (sums.astype(np.float64) / divisor).astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luminance of (..., 3) `rgb`, in its precision, added up channel by channel:
    a matrix product's rounding can depend on how BLAS splits it (alignment, vector width),
    and the noise target's decisions and the variance layer must be the same bits anywhere."""
    r, g, b = (rgb[..., channel] for channel in range(3))
    weight_r, weight_g, weight_b = (rgb.dtype.type(weight) for weight in LUMINANCE_WEIGHTS)
    return r * weight_r + g * weight_g + b * weight_b


TILE_MAGIC = b"FARMTIL2"
_TILE_PREFIX = struct.Struct("<8sI")


@dataclass(frozen=True)
class TileHeader:
    """Whose tile it is (checked by the client) and where it was made (for the report)."""

    job_id: str
    bucket: int
    width: int
    height: int
    worker: str = ""  # Celery hostname
    device: str = ""  # OpenCL device name
    seconds: float = 0.0  # kernel time of the bucket
    attempt: int = 1  # which delivery of the bucket made it
    pid: int = 0  # the render process


def encode_tile(header: TileHeader, tile: np.ndarray, key: bytes) -> bytes:
    """The stored form of a float32 tile of means or an int64 tile of sums."""
    head = json.dumps(vars(header), separators=(",", ":")).encode()
    dtype = "<i8" if tile.dtype.kind == "i" else "<f4"
    body = _TILE_PREFIX.pack(TILE_MAGIC, len(head)) + head + np.ascontiguousarray(tile, dtype).tobytes()
    return body + secret.tag(key, body)


def tile_origin(payload: bytes) -> tuple[int, str, dict] | None:
    """The bucket and worker a tile's header claims, unchecked, and the header's fields
    (decode_tile checks them, given them back: the header is read once), or None for what is
    not a farm tile: what an event carrying its tile is about."""
    try:
        magic, head_size = _TILE_PREFIX.unpack_from(payload)
        if magic != TILE_MAGIC:
            return None
        head = json.loads(payload[_TILE_PREFIX.size : _TILE_PREFIX.size + head_size].decode())
        return int(head["bucket"]), str(head.get("worker", "")), head
    except (struct.error, ValueError, TypeError, KeyError, AttributeError):
        return None


def decode_tile(payload: bytes, job_id: str, bucket: Bucket, key: bytes, channels: int = CHANNELS,
                sums: bool = False, head: dict | None = None) -> tuple[TileHeader, np.ndarray]:
    """The header and pixels (`channels` numbers each: the job's; int64 sums where the job
    says `sums`, else float32 means) of a stored tile, or InvalidTile saying what is wrong
    with it. `head`: the header's fields as tile_origin read them from this payload."""
    if len(payload) < _TILE_PREFIX.size + secret.TAG_BYTES:
        raise InvalidTile(f"{len(payload)} bytes is too short for a tile")
    magic, head_size = _TILE_PREFIX.unpack_from(payload)
    if magic != TILE_MAGIC or _TILE_PREFIX.size + head_size + secret.TAG_BYTES > len(payload):
        raise InvalidTile("not a farm tile")
    try:
        if head is None:
            head = json.loads(payload[_TILE_PREFIX.size : _TILE_PREFIX.size + head_size])
        header = TileHeader(**head)
    except (TypeError, ValueError) as exc:
        raise InvalidTile(f"unreadable tile header: {exc}") from None
    body, tag = payload[: -secret.TAG_BYTES], payload[-secret.TAG_BYTES :]
    if not secret.matches(key, body, tag):
        raise InvalidTile(f"authentication failed: not made with this farm's secret (it claims worker "
                          f"{header.worker or '(none)'!r}; do the workers and this client share FARM_SECRET?)")
    if header.job_id != job_id:
        raise InvalidTile(f"tile of job {header.job_id[:12]}, not of this job")
    if header.bucket != bucket.index:
        raise InvalidTile(f"tile of bucket {header.bucket} stored as bucket {bucket.index}")
    if (header.width, header.height) != (bucket.width, bucket.height):
        raise InvalidTile(f"tile is {header.width}x{header.height}, the bucket {bucket.width}x{bucket.height}")
    data = body[_TILE_PREFIX.size + head_size :]
    dtype = np.dtype("<i8" if sums else "<f4")
    expected = bucket.width * bucket.height * dtype.itemsize * channels
    if len(data) != expected:
        raise InvalidTile(f"tile has {len(data)} bytes of pixels, expected {expected}")
    pixels = np.frombuffer(data, dtype).reshape(bucket.height, bucket.width, channels)
    if sums:
        return header, pixels
    bad = int(np.count_nonzero(~np.isfinite(pixels)))
    if bad:
        raise InvalidTile(f"tile has {bad} non-finite values")
    return header, pixels
