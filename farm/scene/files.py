"""Reading the files a scene names (meshes, images) through an asset source: the scene's
folder on the client, Redis on a worker."""

from __future__ import annotations

import base64
import binascii
import time

import numpy as np

from farm import defaults
from farm.exceptions import SceneError
from farm.scene import images
from farm.scene.mesh import TriangleMesh, check_binary, cube, load_binary, load_obj, rectangle
from farm.scene.model import Box, ImageTexture, Mesh, Rectangle, Scene, Sphere


class NoAssets:
    """For scenes that name no files."""

    def read(self, name: str) -> bytes:
        raise SceneError(f"{name}: no asset source to read it from")


class ReadOnce:
    """An asset source read (fetched, verified) once per file while one scene is packed:
    a glTF's buffer serves every primitive and image in it."""

    def __init__(self, assets):
        self.assets = assets
        self.files: dict[str, bytes] = {}
        self.spans: dict[tuple[str, tuple[int, int]], bytes] = {}

    def read(self, name: str) -> bytes:
        if name not in self.files:
            self.files[name] = self.assets.read(name)
        return self.files[name]

    def decoded(self, name: str, span: tuple[int, int]) -> bytes:
        """The base64 text at `span` of a file, decoded once (a data: URI's buffer)."""
        if (name, span) not in self.spans:
            self.spans[(name, span)] = decode_base64(name, self.read(name), span)
        return self.spans[(name, span)]


def decode_base64(name: str, data: bytes, span: tuple[int, int]) -> bytes:
    """The bytes that the base64 text at `span` (offset, length) of a file stands for (a
    glTF data: URI). They are at most the text's length, so a file's size limit holds."""
    offset, length = span
    if offset + length > len(data):
        raise SceneError(f"{name}: base64 bytes {offset}..{offset + length} lie outside the file's {len(data)}")
    try:
        return base64.b64decode(data[offset:offset + length], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SceneError(f"{name}: invalid base64 at bytes {offset}..{offset + length} ({exc})") from None


def read_image(assets, name: str, byte_range: tuple[int, int] | None = None,
               encoded: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
    """An image file, or an image stored at `byte_range` (offset, length) inside one; with
    `encoded`, the file is the base64 text at that place in `name` (a glTF data: URI)."""
    data = assets.read(name)
    if encoded is not None:
        name, data = f"{name}[{encoded[0]}:{sum(encoded)}]", decode_base64(name, data, encoded)
        if byte_range is None:
            return images.decode(name, data, sniff=True)
    if byte_range is None:
        return images.decode(name, data)
    offset, length = byte_range
    if offset + length > len(data):
        raise SceneError(f"{name}: image bytes {offset}..{offset + length} lie outside the file's {len(data)}")
    return images.decode(f"{name}[{offset}:{offset + length}]", data[offset:offset + length], sniff=True)


def read_mesh(assets: ReadOnce, shape: Mesh) -> TriangleMesh:
    """The triangles of a mesh shape that names a file: OBJ, or binary (glTF) accessors."""
    data = assets.read(shape.file)
    if shape.base64:
        data = assets.decoded(shape.file, shape.base64)
    if shape.binary:
        return load_binary(shape.file, data, shape.layout())
    return load_obj(shape.file, data)


def shape_meshes(scene: Scene, assets, timings: dict | None = None, shapes=None) -> list[TriangleMesh | None]:
    """Every shape's triangles (of `shapes`, default the scene's) in object space (None for
    a sphere), in order.
    A file's mesh is decoded once however many shapes use it (glTF instances); more than
    MAX_TRIANGLES in all is refused. `timings["load"]` gets the seconds spent on files."""
    meshes: list[TriangleMesh | None] = []
    loaded: dict[tuple, TriangleMesh] = {}
    triangle_count = 0
    for shape in scene.shapes if shapes is None else shapes:
        if isinstance(shape, Sphere):
            meshes.append(None)
            continue
        if isinstance(shape, Rectangle):
            mesh = rectangle()
        elif isinstance(shape, Box):
            mesh = cube()
        elif isinstance(shape, Mesh) and shape.file:
            t = time.perf_counter()
            key = (shape.file, shape.binary, shape.base64)
            if key not in loaded:
                loaded[key] = read_mesh(assets, shape)
            mesh = loaded[key]
            if shape.morph and any(shape.morph[1]):
                from farm.scene.skin import morph

                mesh = morph(shape.file, mesh, assets, shape)
            if shape.skin:
                from farm.scene.skin import deform

                if mesh.joints is None or mesh.weights is None:
                    raise SceneError(f"{shape.file}: a skinned mesh without joints and weights")
                mesh = deform(shape.file, mesh, mesh.joints.astype(np.int64), mesh.weights, shape.skin)
            if timings is not None:
                timings["load"] = timings.get("load", 0.0) + time.perf_counter() - t
        elif isinstance(shape, Mesh):
            mesh = TriangleMesh(
                np.array(shape.vertices, np.float64),
                np.array(shape.triangles, np.int64),
                np.array(shape.normals, np.float64) if shape.normals else None,
                np.array(shape.uvs, np.float64) if shape.uvs else None,
            )
        else:  # pragma: no cover - the parser only makes the shapes above
            raise TypeError(f"cannot pack {type(shape).__name__}")
        triangle_count += len(mesh.faces)
        if triangle_count > defaults.MAX_TRIANGLES:
            raise SceneError(f"the scene has more than {defaults.MAX_TRIANGLES} triangles (FARM_MAX_TRIANGLES)")
        meshes.append(mesh)
    return meshes


def check_files(scene: Scene, assets) -> None:
    """Read every mesh and image the scene names, as packing would, so that a broken file
    (or a scene over the triangle limit) is reported by the client before any worker is
    asked to render with it. Binary (glTF) meshes are checked where they lie, not decoded:
    the client of a million-triangle model never holds it as arrays."""
    assets = ReadOnce(assets)
    triangles = 0
    for shape in scene.shapes:
        if isinstance(shape, Mesh) and shape.file and shape.binary:
            data = assets.decoded(shape.file, shape.base64) if shape.base64 else assets.read(shape.file)
            triangles += check_binary(shape.file, data, shape.layout())
        elif isinstance(shape, Mesh) and shape.file:
            triangles += len(read_mesh(assets, shape).faces)
        elif isinstance(shape, Mesh):
            triangles += len(shape.triangles)
        if triangles > defaults.MAX_TRIANGLES:
            raise SceneError(f"the scene has more than {defaults.MAX_TRIANGLES} triangles (FARM_MAX_TRIANGLES)")
    for texture in scene.textures.values():
        if isinstance(texture, ImageTexture):
            read_image(assets, texture.file, texture.range, texture.base64)
    environment = scene.environment
    if environment is not None and environment.file:
        read_image(assets, environment.file)
