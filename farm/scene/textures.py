"""The texture table: one entry per (texture, decoded as sRGB or not), and the texels."""

from __future__ import annotations

import numpy as np

from farm.scene import images
from farm.scene.files import read_image
from farm.scene.layout import PARAM, TEXTURE, TEXTURE_CHECKERBOARD, TEXTURE_IMAGE, WRAP_MODES
from farm.scene.model import Checkerboard, ImageTexture, Scene, TextureRef


def uv_transform(texture) -> list[float]:
    """The 2x2 matrix (row by row) a texture's uv go through before its offset is added:
    R(rotation) diag(scale)."""
    angle = np.radians(texture.rotation)
    cos, sin = np.cos(angle), np.sin(angle)
    (su, sv) = texture.scale
    return [cos * su, -sin * sv, sin * su, cos * sv]


class TextureTable:
    """The texture table and its texels; one entry per (texture, decoded as sRGB or not)."""

    def __init__(self, scene: Scene, assets):
        self.scene = scene
        self.assets = assets
        self.entries: list[np.void] = []
        self.chunks: list[np.ndarray] = []
        self.texel_count = 0
        self.index: dict[tuple[str, bool], int] = {}
        self.means: dict[int, np.ndarray] = {}  # mean colour of each entry, for light power
        self.decoded: dict[str, tuple[np.ndarray, bool]] = {}

    def image(self, name: str, byte_range: tuple[int, int] | None = None,
              encoded: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
        key = f"{name}@{byte_range}@{encoded}"
        if key not in self.decoded:
            self.decoded[key] = read_image(self.assets, name, byte_range, encoded)
        return self.decoded[key]

    def add(self, texture, colour: bool) -> int:
        srgb = colour if not isinstance(texture, ImageTexture) or texture.colorspace == "auto" else texture.colorspace == "srgb"
        key = (texture.name, srgb)
        if key in self.index:
            return self.index[key]
        entry = np.zeros((), TEXTURE)
        entry["transform"] = uv_transform(texture)
        entry["offset"] = (*texture.offset, 0.0, 0.0)
        if isinstance(texture, Checkerboard):
            entry["info"] = (TEXTURE_CHECKERBOARD, 0, 0, 0)
            entry["mode"] = (4, 0, 0, texture.uv_set)
            entry["color0"][:3] = texture.color0
            entry["color1"][:3] = texture.color1
            mean = (np.array(texture.color0) + np.array(texture.color1)) / 2.0
        else:
            pixels, display = self.image(texture.file, texture.range, texture.base64)
            if display and srgb:
                pixels = images.srgb_to_linear(pixels)
            height, width, channels = pixels.shape
            entry["info"] = (TEXTURE_IMAGE, self.texel_count, width, height)
            entry["mode"] = (channels, WRAP_MODES[texture.wrap], texture.filter == "nearest", texture.uv_set)
            self.chunks.append(np.ascontiguousarray(pixels, np.float32).ravel())
            self.texel_count += pixels.size
            mean = pixels.reshape(-1, channels).mean(axis=0)
            mean = np.resize(mean[:3], 3) if channels >= 3 else np.full(3, mean[0])
        self.index[key] = len(self.entries)
        self.means[len(self.entries)] = mean
        self.entries.append(entry)
        return self.index[key]

    def add_table(self, values: np.ndarray) -> int:
        """Append a lookup table to the texel buffer; returns its first index."""
        offset = self.texel_count
        self.chunks.append(np.ascontiguousarray(values, np.float32))
        self.texel_count += len(values)
        return offset

    def param(self, value, colour: bool) -> np.ndarray:
        packed = np.zeros((), PARAM)
        if isinstance(value, TextureRef):
            packed["texture"] = (self.add(self.scene.textures[value.name], colour), value.channel,
                                 int(any(value.bias)), 0)
            packed["value"][:3] = value.factor if colour else (value.factor[0],) * 3
            packed["bias"][:3] = value.bias if colour else (value.bias[0],) * 3
        else:
            packed["texture"] = (-1, 0, 0, 0)
            packed["value"][:3] = value if colour else (value, value, value)
        return packed

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        table = np.array(self.entries, TEXTURE) if self.entries else np.zeros(0, TEXTURE)
        texels = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        return table, texels
