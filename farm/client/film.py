"""The film: the full frame that tiles land in, and the files it is written to.

The film knows the full resolution; a tile knows only its bounds.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from farm.buckets import Bucket
from farm.exceptions import DenoiserUnavailable, FarmError, OutputError
from farm.protocol.plans import Plan
from farm.protocol.tiles import (
    AOV_ALBEDO, AOV_CHANNELS, AOV_DEPTH, AOV_LUMINANCE_SQUARE, AOV_MATERIAL, AOV_NORMAL, CHANNELS, luminance,
    mean_of,
)

FORMATS = (".png", ".exr")


class Film:
    """Linear RGB radiance of a width x height frame, filled bucket by bucket; with `aovs`
    (names from AOVS), the AOV channels the tiles carry beside it (farm.protocol.tiles:
    albedo, normal, depth, the luminance's mean square, material), written as layers of an EXR."""

    def __init__(self, width: int, height: int, aovs: tuple[str, ...] = (), spp: int = 1):
        self.width = width
        self.height = height
        self.aovs = tuple(aovs)
        # Samples behind each pixel: spp, or per pixel in a render of rounds (start_round).
        self.counts: np.ndarray | int = spp
        # The frame's fixed-point sums, for jobs whose tiles are sums (JobMeta.sums): each
        # round's tiles are added here, exactly, and the pixels are their mean.
        self.sums: np.ndarray | None = None
        self.pixels = np.zeros((height, width, 3), np.float32)
        self.aov_channels = np.zeros((height, width, AOV_CHANNELS - CHANNELS if self.aovs else 0), np.float32)
        self.raw: np.ndarray | None = None  # the beauty before denoising, when denoised
        self.coverage = np.zeros((height, width), np.uint8)  # how many tiles wrote each pixel

    def start_round(self, plan: Plan, counts: np.ndarray | None = None) -> None:
        """Take the sums tiles of a job of `plan` next: each pixel then has the samples up to
        its end in the plan (the rounds before took the ones before its first), or `counts`."""
        if self.raw is not None:  # the round before was denoised: take its raw pixels back
            self.pixels, self.raw = self.raw, None
        if self.sums is None:
            self.sums = np.zeros((self.height, self.width, CHANNELS + self.aov_channels.shape[2]), np.int64)
        whole = Bucket(0, 0, 0, self.width, self.height)
        self.counts = plan.pixel_ranges(whole)[..., 1] if counts is None else counts

    def put(self, bucket: Bucket, tile: np.ndarray) -> None:
        """Place a (height, width, channels) tile at its bucket's position: float32 means, or
        int64 sums (start_round) added to the frame's."""
        if tile.shape != (bucket.height, bucket.width, CHANNELS + self.aov_channels.shape[2]):
            raise ValueError(f"tile of shape {tile.shape} does not fit bucket {bucket}")
        region = np.s_[bucket.y : bucket.y + bucket.height, bucket.x : bucket.x + bucket.width]
        if tile.dtype.kind == "i":
            if self.sums is None:
                raise ValueError("a tile of sums for a film that takes no rounds (Film.start_round)")
            self.sums[region] += tile
            tile = mean_of(self.sums[region], self.counts[region])
        self.pixels[region] = tile[..., :3]
        if self.aov_channels.shape[2]:
            self.aov_channels[region] = tile[..., 3:]
        self.coverage[region] += 1

    def layers(self) -> dict[str, np.ndarray]:
        """The requested AOVs by name: albedo and normal (H, W, 3), depth and variance (H, W).
        variance is that of the pixel's mean luminance, from its samples' spread (0 at 1 spp);
        material (H, W) the index of the material the pixel's first sample saw first, in the
        scene's order of materials (-1: none, the sky)."""
        found = {}
        channels = self.aov_channels  # a tile's channels from CHANNELS on
        if "albedo" in self.aovs:
            found["albedo"] = _three_channels(channels, AOV_ALBEDO)
        if "normal" in self.aovs:
            found["normal"] = _three_channels(channels, AOV_NORMAL)
        if "depth" in self.aovs:
            found["depth"] = channels[..., AOV_DEPTH - CHANNELS]
        if "variance" in self.aovs:
            beauty = self.raw if self.raw is not None else self.pixels
            mean = luminance(beauty)
            spread = np.maximum(channels[..., AOV_LUMINANCE_SQUARE - CHANNELS] - mean * mean, 0.0)
            taken = np.asarray(self.counts, np.float32)
            found["variance"] = np.where(taken > 1, spread / np.maximum(taken - 1, 1), 0.0).astype(np.float32)
        if "material" in self.aovs:  # the id of sample 0 over the samples: undone exactly by rounding
            taken = np.asarray(self.counts, np.float64)
            material = channels[..., AOV_MATERIAL - CHANNELS].astype(np.float64)
            found["material"] = (np.rint(material * taken) - 1).astype(np.float32)
        return found

    def denoise(self, prefilter: bool = False) -> None:
        """Denoise the assembled frame with Intel Open Image Denoise (pyoidn), guided by the
        albedo and normal AOVs when the film has them: the whole frame at once, so no tile
        seams. With `prefilter`, the guides are denoised first, each by OIDN's own filter for
        it, and the beauty then with them as clean guides (OIDN's cleanAux): better where the
        guides are noisy (depth of field, glass, fine texture), worse where they are already
        clean. The raw beauty is kept (`raw`, an EXR layer of its own); denoising again starts
        from it."""
        try:
            import pyoidn
        except ImportError as exc:  # also a missing or broken native library
            raise DenoiserUnavailable(f"cannot denoise: Intel Open Image Denoise (pyoidn) does not load: {exc}; "
                                      f"install it with `pip install pyoidn`") from None
        guides = {}
        if self.aovs:
            guides = {"albedo": np.ascontiguousarray(_three_channels(self.aov_channels, AOV_ALBEDO)),
                      "normal": np.ascontiguousarray(_three_channels(self.aov_channels, AOV_NORMAL))}
            if prefilter:
                guides = {name: _prefiltered(pyoidn, name, guide) for name, guide in guides.items()}
        if self.raw is None:  # else denoised before: `pixels` are not the raw frame
            self.raw = self.pixels.copy()
        clean = bool(guides) and prefilter
        self.pixels = np.asarray(pyoidn.denoise(np.ascontiguousarray(self.raw), hdr=True, clean_aux=clean, **guides),
                                 np.float32)

    @property
    def complete(self) -> bool:
        return bool((self.coverage > 0).all())

    def srgb8(self) -> np.ndarray:
        """Clamp to [0, 1] and encode with the sRGB transfer curve into 8 bits."""
        linear = np.clip(self.pixels, 0.0, 1.0)
        encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
        return np.round(encoded * 255.0).astype(np.uint8)

    def write(self, path: str | Path) -> Path:
        """Write a PNG (tone-mapped, 8-bit sRGB) or an EXR (linear float32 RGB), whole or not
        at all (write_whole): an OutputError leaves no file under `path`."""
        path = Path(path)
        if _image_format(path) == ".png":
            def write(temporary: Path) -> None:
                from PIL import Image

                Image.fromarray(self.srgb8(), "RGB").save(temporary, format="PNG")
        else:
            def write(temporary: Path) -> None:
                import OpenEXR

                header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
                channels = {"RGB": self.pixels}
                if self.raw is not None:
                    channels["raw"] = self.raw  # raw.R, raw.G, raw.B
                for name, layer in self.layers().items():  # albedo.R.., normal.R.. (x, y, z), depth.Z, variance.Y, material.ID
                    channels[{"depth": "depth.Z", "variance": "variance.Y", "material": "material.ID"}.get(name, name)] = np.ascontiguousarray(layer)
                OpenEXR.File(header, channels).write(str(temporary))
        write_whole(path, write)
        return path


def write_whole(path: Path, write: Callable[[Path], object]) -> None:
    """Write `path` whole or not at all: `write(temporary)` fills a new file in the same
    folder (`.<name>.<random>.tmp<suffix>`: writers pick the format by the suffix), which is
    flushed to disk and renamed onto `path` once complete. On any failure (a full disk, a
    quota, a writer's own exception) the temporary file goes, what `path` held stays, and
    an OutputError says `cannot write PATH: CAUSE`."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path  # write where the link points
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp{target.suffix}")
    created = False
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0o666: the umask decides, as for any new file
        created = True
        write(temporary)
        with open(temporary, "rb") as written:  # a full disk or quota may only show here (NFS, delayed allocation)
            os.fsync(written.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        if created:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        if not isinstance(exc, Exception):
            raise
        raise OutputError(f"cannot write {path}: {_cause(exc, temporary)}", path) from None


def _cause(exc: Exception, temporary: Path) -> str:
    """Why a write failed, in words fit for one line: an OSError's strerror, or a writer's
    message without the temporary file's name (OpenEXR: 'Failed to write ... "PATH". File
    too large.')."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    if temporary.name in text:
        text = text.rpartition('". ')[2] if '". ' in text else text.replace(str(temporary), "the file")
    return text.rstrip(".") or type(exc).__name__


def _three_channels(aov_channels: np.ndarray, first: int) -> np.ndarray:
    """The three AOV channels from tile channel `first` on, of a film's aov_channels (which
    start at CHANNELS)."""
    return aov_channels[..., first - CHANNELS : first - CHANNELS + 3]


def _image_format(path: Path) -> str:
    """The lower-case suffix of an image path farm can write, or a FarmError naming it."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise FarmError(f"{path}: unsupported output format {path.suffix or '(none)'}; use .png or .exr")
    return suffix


def check_output_path(path: str | Path) -> Path:
    """Fail before rendering, not after, if the output cannot be written."""
    path = Path(path)
    _image_format(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FarmError(f"{path}: folder {folder} does not exist")
    if path.is_dir():
        raise FarmError(f"{path}: is a folder, not an image file")
    if path.exists() and not os.access(path, os.W_OK):
        raise FarmError(f"{path}: the file exists and cannot be written")
    try:  # what the image and its partial version will need: a file created in that folder
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".farm-write-check-"):
            pass
    except OSError as exc:
        raise FarmError(f"{path}: cannot write in folder {folder} ({exc.strerror or exc})") from None
    return path


def read_exr(path: str | Path) -> np.ndarray:
    """Read back an EXR written by `Film.write` as (height, width, 3) float32."""
    import OpenEXR

    with OpenEXR.File(str(path)) as exr:
        return np.asarray(exr.channels()["RGB"].pixels, dtype=np.float32)


def _prefiltered(pyoidn, name: str, guide: np.ndarray) -> np.ndarray:
    """An albedo or normal guide denoised by OIDN's RT filter given it alone (the
    prefiltering step of OIDN's documented cleanAux workflow)."""
    device = pyoidn.Device(pyoidn.OIDN_DEVICE_TYPE_CPU)
    device.commit()
    denoiser = pyoidn.Filter(device, pyoidn.OIDN_FILTER_TYPE_RT)
    output = np.zeros_like(guide)
    try:
        denoiser.set_image(pyoidn.OIDN_IMAGE_ALBEDO if name == "albedo" else pyoidn.OIDN_IMAGE_NORMAL, guide,
                           pyoidn.OIDN_FORMAT_FLOAT3)
        denoiser.set_image(pyoidn.OIDN_IMAGE_OUTPUT, output, pyoidn.OIDN_FORMAT_FLOAT3)
        denoiser.set_quality(pyoidn.OIDN_QUALITY_HIGH)
        denoiser.commit()
        denoiser.execute()
        error = device.get_error()
    finally:
        denoiser.release()
        device.release()
    if error:
        raise DenoiserUnavailable(f"cannot prefilter the {name} guide: Intel Open Image Denoise says {error}")
    return output
