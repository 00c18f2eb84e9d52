"""Decode the images a scene names into linear float arrays: PNG and JPEG through Pillow,
EXR through OpenEXR, Radiance .hdr (RGBE) here, since neither library reads it."""

from __future__ import annotations

import io
import re

import numpy as np

from farm import defaults
from farm.exceptions import SceneError


def check_dimensions(width: int, height: int, bytes_per_pixel: int, file_size: int) -> None:
    """Refuse an image before decoding it: too many pixels, or a decompression bomb (far
    more pixels than its file's size can honestly hold)."""
    if width <= 0 or height <= 0:
        raise SceneError(f"empty image ({width}x{height})")
    if width * height > defaults.MAX_TEXTURE_PIXELS:
        raise SceneError(f"{width}x{height} is over the limit of {defaults.MAX_TEXTURE_PIXELS} pixels per texture "
                         f"(FARM_MAX_TEXTURE_PIXELS)")
    raw = width * height * bytes_per_pixel
    if raw > defaults.EXPANSION_FLOOR and raw > defaults.MAX_EXPANSION * max(file_size, 1):
        raise SceneError(f"{width}x{height} would decode to {raw} bytes from a file of {file_size}, more than "
                         f"{defaults.MAX_EXPANSION} times its size (FARM_MAX_EXPANSION): refused as a decompression bomb")


def decode(name: str, data: bytes, sniff: bool = False) -> tuple[np.ndarray, bool]:
    """(pixels as float32 (height, width, channels), whether they are 8/16-bit display values).

    The format comes from the name's suffix, or (`sniff`) from the bytes, which must then be
    PNG or JPEG (images inside glTF buffers). Display values are in [0, 1] and still
    sRGB-encoded; the caller decides, by what the image is used for, whether to linearise
    them. Float images are linear already."""
    suffix = "png" if sniff else name.lower().rsplit(".", 1)[-1]
    try:
        if suffix == "exr":
            return _exr(data), False
        if suffix == "hdr":
            return _rgbe(data), False
        return _pillow(data), True
    except SceneError as exc:
        raise SceneError(f"{name}: cannot decode image: {exc}") from None
    except Exception as exc:  # every decoder has its own error types; all mean "broken file"
        raise SceneError(f"{name}: cannot decode image: {exc}") from None


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer function inverted (IEC 61966-2-1), in float64 for accuracy."""
    v = values.astype(np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _pillow(data: bytes) -> np.ndarray:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # check_dimensions is the limit (FARM_MAX_TEXTURE_PIXELS), not Pillow's own
    with Image.open(io.BytesIO(data)) as image:
        bands = len(image.getbands())
        check_dimensions(image.width, image.height, bands * (2 if image.mode.startswith("I") else 1), len(data))
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            pixels = np.asarray(image, dtype=np.float64) / 65535.0
            return pixels[:, :, None].astype(np.float32)
        if image.mode not in ("L", "LA", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def _exr(data: bytes) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(io.BytesIO(data), header_only=True) as exr:
        header = exr.header()
        low, high = header["dataWindow"]
        channels = header["channels"]
        check_dimensions(int(high[0] - low[0] + 1), int(high[1] - low[1] + 1), 4 * max(len(channels), 1), len(data))
    with OpenEXR.File(io.BytesIO(data)) as exr:
        channels = exr.channels()
        if "RGB" in channels or "RGBA" in channels:
            pixels = np.asarray(channels.get("RGB", channels.get("RGBA")).pixels, dtype=np.float32)
            return np.ascontiguousarray(pixels[:, :, :3])
        if "Y" in channels:
            return np.asarray(channels["Y"].pixels, dtype=np.float32)[:, :, None]
        raise SceneError(f"no RGB or Y channels (has {', '.join(sorted(channels))})")


_RESOLUTION = re.compile(rb"^([-+])Y (\d+) ([-+])X (\d+)$")


def _rgbe(data: bytes) -> np.ndarray:
    """Radiance RGBE: a text header, a blank line, a resolution line, then scanlines that are
    flat or adaptive run-length encoded, one channel after another."""
    if not data.startswith((b"#?RADIANCE", b"#?RGBE")):
        raise SceneError("not a Radiance .hdr file")
    header_end = data.find(b"\n\n")
    if header_end < 0:
        raise SceneError("truncated header")
    header = data[:header_end].decode("ascii", "replace")
    if "FORMAT=" in header and "32-bit_rle_rgbe" not in header:
        raise SceneError("only the 32-bit_rle_rgbe format is supported")
    line_end = data.find(b"\n", header_end + 2)
    match = _RESOLUTION.match(data[header_end + 2 : line_end].strip())
    if match is None or match.group(1) != b"-" or match.group(3) != b"+":
        raise SceneError("only the standard -Y +X orientation is supported")
    height, width = int(match.group(2)), int(match.group(4))
    check_dimensions(width, height, 4, len(data))
    body = np.frombuffer(data, np.uint8, offset=line_end + 1)
    rgbe = np.empty((height, width, 4), np.uint8)
    pos = 0
    for y in range(height):
        if 8 <= width < 32768 and body[pos] == 2 and body[pos + 1] == 2 and body[pos + 2] & 0x80 == 0:
            if (int(body[pos + 2]) << 8 | int(body[pos + 3])) != width:
                raise SceneError(f"scanline {y}: wrong length")
            pos += 4
            for channel in range(4):
                x = 0
                out = rgbe[y, :, channel]
                while x < width:
                    count = int(body[pos])
                    if count > 128:
                        count -= 128
                        if x + count > width:
                            raise SceneError(f"scanline {y}: run past the end")
                        out[x : x + count] = body[pos + 1]
                        pos += 2
                    else:
                        if count == 0 or x + count > width:
                            raise SceneError(f"scanline {y}: bad run")
                        out[x : x + count] = body[pos + 1 : pos + 1 + count]
                        pos += 1 + count
                    x += count
        else:  # flat scanline
            rgbe[y] = body[pos : pos + 4 * width].reshape(width, 4)
            pos += 4 * width
    exponent = rgbe[:, :, 3].astype(np.int32)
    scale = np.where(exponent > 0, np.ldexp(1.0, exponent - 136), 0.0)
    return (rgbe[:, :, :3].astype(np.float64) * scale[:, :, None]).astype(np.float32)


def write_rgbe(path, pixels: np.ndarray) -> None:
    """Write linear RGB as a flat (uncompressed) Radiance .hdr file, for generated skies."""
    pixels = np.asarray(pixels, np.float64)
    height, width = pixels.shape[:2]
    brightest = pixels.max(axis=2)
    mantissa, exponent = np.frexp(brightest)
    scale = np.where(brightest > 1e-32, mantissa * 256.0 / np.maximum(brightest, 1e-32), 0.0)
    rgbe = np.zeros((height, width, 4), np.uint8)
    rgbe[:, :, :3] = np.clip(pixels * scale[:, :, None], 0, 255).astype(np.uint8)
    rgbe[:, :, 3] = np.where(brightest > 1e-32, exponent + 128, 0).astype(np.uint8)
    with open(path, "wb") as out:
        out.write(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n")
        out.write(f"-Y {height} +X {width}\n".encode())
        out.write(rgbe.tobytes())
