"""A glTF file's animations read on the client into the document's `rig` (farm.scene.rig):
each channel that moves a node's translation, rotation or scale becomes that node's sampler,
its key times and values read from the file's buffer (float accessors; glTF's normalized
integer rotations too). Every animation plays at once, as the file plays them, unless one is
chosen (`submit --animation NAME|INDEX`). Morph target weights are a channel too (`weights`:
a vector a key, one weight per target). KHR_animation_pointer's channels that point at a
node's translation, rotation, scale or weights play as those; the others (materials,
cameras, lights) are named in one warning.
"""

from __future__ import annotations

import re

import numpy as np

from farm.exceptions import SceneError
from farm.scene.files import decode_base64
from farm.scene.gltf_file import COMPONENTS, WIDTHS

POINTER = "KHR_animation_pointer"
# What a normalized integer component means (glTF 2.0, 3.11): value / max, at least -1.
_NORMALIZED = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}


class GltfAnimation:
    """The channels of a glTF file, by node: {node: {path: sampler}} (`farm.scene.rig`'s form)."""

    def __init__(self, converter, read, choice: str | None = None):
        self.file, self.read, self.warn = converter.file, read, converter._warn
        self.buffers: dict[tuple, bytes] = {}  # each buffer read (and decoded) once, whatever its accessors
        gltf = converter.gltf
        animations = gltf.get("animations", [])
        if choice is not None:
            names = [str(a.get("name", index)) for index, a in enumerate(animations)]
            if choice in names:
                animations = [animations[names.index(choice)]]
            elif choice.isdigit() and int(choice) < len(animations):
                animations = [animations[int(choice)]]
            else:
                raise SceneError(f"{converter.name}: no animation {choice!r} (it has: {', '.join(names) or 'none'})")
        self.channels: dict[int, dict[str, dict]] = {}
        skipped: set[str] = set()
        for animation in animations:
            for channel in animation.get("channels", []):
                target = channel.get("target", {})
                node, path = target.get("node"), target.get("path")
                if path == "pointer":  # KHR_animation_pointer: a JSON pointer names what moves
                    pointer = str(target.get("extensions", {}).get(POINTER, {}).get("pointer", ""))
                    found = re.fullmatch(r"/nodes/(\d+)/(translation|rotation|scale|weights)", pointer)
                    if found is None:
                        skipped.add(pointer or "a pointer channel without its pointer")
                        continue
                    node, path = int(found.group(1)), found.group(2)
                if node is None or path not in ("translation", "rotation", "scale", "weights"):
                    continue  # a channel of no node, or of a path glTF does not have: nothing to move
                if not 0 <= int(node) < len(gltf.get("nodes", [])):
                    raise SceneError(f"{converter.name}: an animation channel moves node {node}, which is not there")
                sampler = animation["samplers"][int(channel["sampler"])]
                self.channels.setdefault(int(node), {})[path] = self._sampler(sampler, path)
        if skipped:
            self.warn(f"{POINTER}: {', '.join(sorted(skipped)[:5])}{' ...' if len(skipped) > 5 else ''} not "
                      "animated (farm animates nodes' translation, rotation, scale and morph weights)")

    def _sampler(self, sampler: dict, path: str) -> dict:
        how = sampler.get("interpolation", "LINEAR")
        if how not in ("STEP", "LINEAR", "CUBICSPLINE"):
            raise SceneError(f"{self.file.name}: unknown animation interpolation {how!r}")
        times = self.floats(int(sampler["input"]))[:, 0]
        values = self.floats(int(sampler["output"]))
        if path == "weights":  # glTF keeps a key's weights as consecutive scalars
            keys = len(times) * (3 if how == "CUBICSPLINE" else 1)
            if keys == 0 or values.size % keys:
                raise SceneError(f"{self.file.name}: a weights channel's {values.size} values do not split into "
                                 f"{keys} keys")
            values = values.reshape(keys, -1)
        return {"interpolation": how, "times": [float(t) for t in times],
                "values": [[float(v) for v in row] for row in values]}

    def _buffer(self, file: str, encoded: tuple[int, int] | None) -> bytes:
        """The bytes of a buffer: the file (this glTF's own, or a .bin beside it), or the
        base64 text at `encoded` in it, decoded (farm.scene.files'), once each."""
        if (file, encoded) not in self.buffers:
            data = self.file.data if file == self.file.name else self.read(file)
            self.buffers[(file, encoded)] = data if encoded is None else decode_base64(file, data, encoded)
        return self.buffers[(file, encoded)]

    def floats(self, index: int) -> np.ndarray:
        """Accessor `index` as float64 rows (normalized integers scaled as glTF says)."""
        accessor = self.file.document["accessors"][index]
        if "sparse" in accessor:
            raise SceneError(f"{self.file.name}: accessor {index} is sparse; not supported")
        component, width = int(accessor["componentType"]), WIDTHS[accessor["type"]]
        dtype, size = COMPONENTS[component]
        view = self.file.document["bufferViews"][int(accessor["bufferView"])]
        file, base, encoded = self.file.buffer(int(view["buffer"]))
        data = self._buffer(file, encoded)
        offset = base + int(view.get("byteOffset", 0)) + int(accessor.get("byteOffset", 0))
        stride, count = int(view.get("byteStride", size * width)), int(accessor["count"])
        if offset + stride * (count - 1) + size * width > len(data):
            raise SceneError(f"{self.file.name}: accessor {index} runs past the end of its buffer")
        rows = np.ndarray((count, width), dtype, buffer=data, offset=offset, strides=(stride, size)).astype(np.float64)
        if component != 5126:
            if not accessor.get("normalized"):
                raise SceneError(f"{self.file.name}: accessor {index} of animation data is not float or normalized")
            rows = np.maximum(rows / _NORMALIZED[component], -1.0)
        if not np.isfinite(rows).all():
            raise SceneError(f"{self.file.name}: accessor {index} holds a number that is not finite")
        return rows
