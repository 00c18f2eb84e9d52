"""A USD stage's materials as the scene document's (farm.scene.usd walks the stage; this
mixin of its walker converts what is bound): UsdPreviewSurface as the `principled`
material, its inputs constants or UsdUVTexture files, through material and node graph
interface connections; a prim with no material gets a diffuse of its displayColor."""

from __future__ import annotations

from pathlib import Path

PREVIEW = "UsdPreviewSurface"


class UsdMaterials:
    """Of farm.scene.usd's walker: `self.out`, `self.prefix`, `self.folder`, `self.time`,
    `self.material_names`, `self.packaged`, `self.second_uv` (material name -> the primvar its
    textures read as their uv set besides `st`), `self._warn`; `self.reading`,
    `self.primvars_read` and `self.second_uvs` are its own (the prim a material is converted
    for, the primvars its readers took, the uv sets its textures read)."""

    reading = None
    primvars_read: dict = {}
    second_uvs: set = set()

    def _material(self, material, prim=None) -> str:
        """The document's name of a bound UsdShade material; where none is, a diffuse of the
        prim's displayColor (USD's fallback look), else of 0.18 grey."""
        from pxr import UsdGeom

        key = str(material.GetPath()) if material else ""
        if not key:
            colour = UsdGeom.Gprim(prim).GetDisplayColorAttr().Get(self.time) if prim is not None else None
            colour = [float(c) for c in colour[0]] if colour else [0.18, 0.18, 0.18]
            key = f"displayColor{colour}"
            entry = {"reflectance": colour}
        elif key in self.material_names:  # converted already, and its network reads no primvar
            return self.material_names[key]
        else:  # a network's primvar readers take the prim's values: one material per values read
            self.reading, self.primvars_read, self.second_uvs = prim, {}, set()
            entry = self._preview(material)
            if self.primvars_read:
                key += "[" + ", ".join(f"{name}={value}" for name, value in sorted(self.primvars_read.items())) + "]"
        if key in self.material_names:
            return self.material_names[key]
        name = f"{self.prefix}{key}"
        self.material_names[key] = name
        self.out.materials[name] = entry
        if material and self.second_uvs:  # the farm has one second uv set a mesh
            self.second_uv[name] = sorted(self.second_uvs)[0]
            if len(self.second_uvs) > 1:
                self._warn(f"{material.GetPath()}: uv sets {', '.join(sorted(self.second_uvs))} besides `st`: "
                           f"only {self.second_uv[name]!r} is read (the farm has two uv sets)")
        return name

    def _preview(self, material) -> dict:
        surface = material.ComputeSurfaceSource()[0]
        if not surface or surface.GetIdAttr().Get() != PREVIEW:
            found = surface.GetIdAttr().Get() if surface else "none"
            self._warn(f"{material.GetPath()}: surface shader {found} is not a {PREVIEW}; grey diffuse instead")
            return {"reflectance": 0.5}
        entry: dict = {"type": "principled"}
        for usd_name, farm_name, default in (("diffuseColor", "base_color", (0.18, 0.18, 0.18)),
                                             ("metallic", "metallic", 0.0), ("roughness", "roughness", 0.5),
                                             ("ior", "ior", 1.5), ("emissiveColor", "emission", None)):
            value = self._input(surface, usd_name, default, f"{material.GetPath()}.{usd_name}")
            if value is not None:
                entry[farm_name] = value
        if entry.get("emission") in ([0.0, 0.0, 0.0], 0.0):
            del entry["emission"]
        where = str(material.GetPath())
        # opacity below opacityThreshold: no surface there, for every ray (the farm's cut-out);
        # without a threshold USD blends, which the kernel does not: a cut-out at 0.5
        opacity = self._input(surface, "opacity", 1.0, f"{where}.opacity")
        if opacity != 1.0:
            threshold = float(self._value(surface, "opacityThreshold") or 0.0)
            entry["alpha"], entry["alpha_cutoff"] = opacity, min(threshold, 1.0) if threshold > 0 else 0.5
            if threshold <= 0:
                self._warn(f"{where}: opacity without an opacityThreshold (blending) is rendered as a cut-out at 0.5")
        normal = surface.GetInput("normal")
        if normal and normal.HasConnectedSource():
            value = self._input(surface, "normal", None, f"{where}.normal", normal_map=True)
            if isinstance(value, dict):
                entry["normal_map"] = value
        for other in ("clearcoat", "specularColor", "displacement", "occlusion"):
            source = surface.GetInput(other)
            if source and (source.HasConnectedSource() or source.Get() not in (None, 0.0)):
                self._warn(f"{where}: {other} is not rendered (the kernel has no {other} yet)")
        return entry

    def _input(self, shader, name: str, default, where: str, normal_map: bool = False):
        """A UsdPreviewSurface input as the document's value: a constant, or a texture
        (UsdUVTexture's file, its `scale` the factor; `normal_map`: a tangent-space normal
        map's, whose scale and bias decode it)."""
        from pxr import UsdShade

        source = shader.GetInput(name)
        if not source:
            return _plain(default)
        # what gives it its value, through a material's or node graph's interface inputs
        producers = source.GetValueProducingAttributes()
        if not producers:
            return _plain(default)
        producer = producers[0]
        if UsdShade.Output.IsOutput(producer):  # a shader's output: a texture, or a network not read
            texture = UsdShade.Shader(producer.GetPrim())
            if texture and str(texture.GetIdAttr().Get() or "").startswith("UsdPrimvarReader_"):
                return self._primvar(texture, where, default)
            if not texture or texture.GetIdAttr().Get() != "UsdUVTexture":
                found = texture.GetIdAttr().Get() if texture else producer.GetPrim().GetTypeName()
                self._warn(f"{where}: a {found} network is not rendered; its default instead")
                return _plain(default)
            return self._texture(texture, UsdShade.Output(producer).GetBaseName(), where, default, normal_map)
        value = producer.Get(self.time)
        return _plain(default if value is None else value)

    def _primvar(self, reader, where: str, default):
        """A UsdPrimvarReader's value on the prim being converted (its displayColor, say): the
        primvar, inherited from an ancestor if need be, else the reader's fallback. One value
        a material: a primvar that varies over the prim is read as its first value."""
        from pxr import UsdGeom

        varname = str(self._value(reader, "varname") or "")
        primvar = UsdGeom.PrimvarsAPI(self.reading).FindPrimvarWithInheritance(varname) \
            if self.reading is not None and varname else None
        values = list(primvar.ComputeFlattened(self.time) or []) if primvar and primvar.HasValue() else []
        if not values:
            fallback = self._value(reader, "fallback")
            value = _plain(default if fallback is None else fallback)
        else:
            value = _plain(values[0])
            if any(_plain(v) != value for v in values[1:]):
                self._warn(f"{where}: primvar {varname!r} varies over {self.reading.GetPath()}: read as its first value")
        self.primvars_read[varname] = value
        return value

    def _value(self, shader, name: str):
        """An input's value, through interface connections; None where it has none."""
        producer = self._producer(shader, name)
        return producer.Get(self.time) if producer else None

    @staticmethod
    def _producer(shader, name: str):
        """The attribute that gives an input its value, through interface connections; None."""
        source = shader.GetInput(name)
        producers = source.GetValueProducingAttributes() if source else []
        return producers[0] if producers else None

    def _texture(self, texture, output: str, where: str, default, normal_map: bool = False):
        producer = self._producer(texture, "file")
        asset = producer.Get(self.time) if producer else None
        name = self.file_name(asset, producer)
        if name is None:
            self._warn(f"{where}: texture {asset.path if asset else '(none)'} is not a file under the stage's "
                       f"folder (nor one USD's resolver can open in its package); its default instead")
            return _plain(default)
        colorspace = self._value(texture, "sourceColorSpace")
        key = f"{self.prefix}{texture.GetPath()}"
        self.out.textures[key] = {"type": "image", "file": name, "colorspace": "linear" if normal_map else
                                  {"sRGB": "srgb", "raw": "linear"}.get(str(colorspace), "auto")}
        value: dict = {"texture": key}
        if output in ("r", "g", "b", "a"):
            value["channel"] = output
        scale, bias = self._value(texture, "scale"), self._value(texture, "bias")
        if normal_map:  # UsdPreviewSurface's encoding: scale 2, bias -1 (what the farm's normal maps decode)
            if tuple(scale or (1, 1, 1, 1))[:3] != (2.0, 2.0, 2.0) or tuple(bias or (0, 0, 0, 0))[:3] != (-1.0, -1.0, -1.0):
                self._warn(f"{where}: a normal map's scale {tuple(scale or ())} and bias {tuple(bias or ())} "
                           f"are read as 2 and -1 (UsdPreviewSurface's encoding)")
            scale = bias = None
            value.pop("channel", None)
            value["factor"] = 1.0
        if scale is not None and tuple(scale) != (1.0, 1.0, 1.0, 1.0):
            value["factor"] = float(scale["rgba".index(output)]) if "channel" in value else \
                [float(s) for s in tuple(scale)[:3]]
        reader = texture.GetInput("st")
        varname = self._reader_varname(reader) if reader else None
        if varname not in (None, "st"):  # a second uv set: the mesh's uvs1, from that primvar (farm.scene.usd)
            self.out.textures[key]["uv_set"] = 1
            self.second_uvs.add(varname)
        if bias is not None and tuple(bias) != (0.0, 0.0, 0.0, 0.0):
            value["bias"] = float(bias["rgba".index(output)]) if "channel" in value else [float(b) for b in tuple(bias)[:3]]
        # one wrap mode for both axes (the farm's textures have one): useMetadata is repeat
        modes = [str(self._value(texture, axis) or "useMetadata").replace("useMetadata", "repeat")
                 for axis in ("wrapS", "wrapT")]
        wrap = modes[0] if modes[0] in ("repeat", "mirror", "clamp") else "clamp"
        if modes[0] != modes[1] or modes[0] != wrap:
            self._warn(f"{where}: texture wraps {modes[0]}, {modes[1]} read as {wrap} on both axes "
                       f"(the farm has repeat, mirror and clamp, one for both)")
        if wrap != "repeat":
            self.out.textures[key]["wrap"] = wrap
        return value

    def _reader_varname(self, reader):
        """The primvar name a UsdPrimvarReader_float2 feeding `reader` reads."""
        from pxr import UsdShade

        producers = reader.GetValueProducingAttributes()
        if not producers or not UsdShade.Output.IsOutput(producers[0]):
            return None
        value = self._value(UsdShade.Shader(producers[0].GetPrim()), "varname")
        return str(value) if value is not None else None

    def file_name(self, asset, attribute=None) -> str | None:
        """The scene's name of a resolved asset path: a file under the scene's folder, or a
        file inside a package (a .usdz's texture) read by USD's resolver and kept as a
        generated file (farm.protocol.assets.GENERATED); None for a file outside the folder
        or one that cannot be read. A path USD cannot resolve (no such file) that the
        `attribute`'s layer anchors under the folder is named all the same: the scene's
        missing file, as a glTF's (load_scene stops, or with --allow-missing turns it off)."""
        from pxr import Ar

        if asset is None:
            return None
        if not asset.resolvedPath:
            stack = attribute.GetPropertyStack(self.time) if attribute is not None and asset.path else []
            if not stack:
                return None
            layer = stack[0].layer.realPath  # the authoring layer's file: a relative path is anchored there
            if not layer or Ar.IsPackageRelativePath(layer):
                return None
            try:
                return (Path(layer).parent / asset.path).resolve().relative_to(self.folder.resolve()).as_posix()
            except (ValueError, OSError):
                return None
        if Ar.IsPackageRelativePath(asset.resolvedPath):
            return self._packaged(asset.resolvedPath)
        try:
            return Path(asset.resolvedPath).resolve().relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            return None


    def _packaged(self, resolved: str) -> str | None:
        """A file inside a package, as a generated file of the same suffix (once a package
        path), within the limit on a scene's files."""
        from pxr import Ar

        from farm.protocol.assets import check_size, write_generated

        if resolved not in self.packaged:
            opened = Ar.GetResolver().OpenAsset(Ar.ResolvedPath(resolved))
            if opened is None:
                self.packaged[resolved] = None
            else:
                check_size(resolved, opened.GetSize())
                inner = Ar.SplitPackageRelativePathInner(resolved)[1]
                self.packaged[resolved] = write_generated(bytes(opened.GetBuffer()), Path(inner).suffix.lower())
        return self.packaged[resolved]


def bound(prim):
    """The material bound to `prim` for a final render (its `full` binding, else its all-purpose one)."""
    from pxr import UsdShade

    return UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial(UsdShade.Tokens.full)[0]


def _plain(value):
    """A USD value (Gf vector, float) as the document's number or list."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return [float(v) for v in value]
