"""Image decoding: PNG and JPEG through Pillow, EXR through OpenEXR, Radiance .hdr here."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from farm.exceptions import SceneError
from farm.scene.images import decode, srgb_to_linear, write_rgbe


def _encoded(array, format, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format, **options)
    return buffer.getvalue()


def test_png_keeps_display_values_and_channels():
    rgba = np.array([[[0, 128, 255, 255], [255, 0, 0, 128]]], np.uint8)
    pixels, display = decode("a.png", _encoded(rgba, "PNG"))
    assert display and pixels.shape == (1, 2, 4)
    assert np.allclose(pixels * 255, rgba)


def test_sixteen_bit_grey_png():
    grey = np.array([[0, 65535, 32768]], np.uint16)
    pixels, _ = decode("g.png", _encoded(grey, "PNG"))
    assert pixels.shape == (1, 3, 1) and np.allclose(pixels[0, :, 0], grey[0] / 65535)


def test_jpeg_decodes_to_nearly_its_colour():
    colour = np.full((16, 16, 3), (200, 100, 50), np.uint8)
    pixels, display = decode("c.jpg", _encoded(colour, "JPEG", quality=95))
    assert display and np.allclose(pixels.mean(axis=(0, 1)) * 255, (200, 100, 50), atol=3)


def test_srgb_decoding_matches_the_standard():
    values = np.array([0.0, 0.04045, 0.5, 1.0], np.float32)
    assert np.allclose(srgb_to_linear(values), [0.0, 0.04045 / 12.92, 0.21404114, 1.0], rtol=1e-6)


def test_radiance_hdr_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.uniform(0.0, 1000.0, (5, 9, 3)) * rng.uniform(0, 1, (5, 9, 1)) ** 4
    write_rgbe(tmp_path / "x.hdr", image)
    pixels, display = decode("x.hdr", (tmp_path / "x.hdr").read_bytes())
    assert not display and pixels.shape == (5, 9, 3)
    # 8-bit mantissas shared per pixel: each channel is within 1/128 of the pixel's brightest
    assert (np.abs(pixels - image) <= image.max(axis=2, keepdims=True) * 2**-7).all()


def test_radiance_hdr_run_length_scanlines():
    # one 8-pixel scanline, new-style RLE: a run of 8 for each channel
    header = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 8\n"
    scanline = bytes([2, 2, 0, 8]) + bytes([128 + 8, 128, 128 + 8, 64, 128 + 8, 32, 128 + 8, 129])
    pixels, _ = decode("rle.hdr", header + scanline)
    assert np.allclose(pixels[0], [[1.0, 0.5, 0.25]] * 8)


@pytest.mark.parametrize("name,data", [
    ("a.png", b"not a png"),
    ("a.exr", b"not an exr"),
    ("a.hdr", b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 4 +X 4\n\x00"),
    ("a.hdr", b"GIF89a"),
])
def test_broken_images_name_the_file(name, data):
    with pytest.raises(SceneError, match=name):
        decode(name, data)
