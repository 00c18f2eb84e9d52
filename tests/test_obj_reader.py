"""The compiled OBJ reader gives trimesh's arrays, bit for bit, or leaves the file to trimesh."""

import numpy as np
import pytest

from farm.exceptions import SceneError
from farm.scene import mesh, obj_reader


def trimesh_read(data: bytes) -> tuple:
    """What farm read of the file before the compiled reader: trimesh's one geometry."""
    parts = mesh._trimesh_parts("test.obj", data)
    assert len(parts) == 1
    return tuple(None if a is None else np.asarray(a) for a in parts[0])


def assert_same(fast: tuple, slow: tuple) -> None:
    for name, a, b in zip(("vertices", "faces", "normals", "uvs"), fast, slow):
        assert (a is None) == (b is None), f"{name}: {'present' if a is not None else 'absent'} here only"
        if a is not None:
            assert a.shape == b.shape and a.dtype == b.dtype, name
            assert a.tobytes() == b.tobytes(), name


def obj_text(v, faces, vn=None, vt=None, form="a", fmt="{:.6f}", faces_tex=None, faces_norm=None, extra=""):
    lines = [extra] if extra else []
    lines += ["v " + " ".join(fmt.format(x) for x in p) for p in v]
    lines += ["vn " + " ".join(fmt.format(x) for x in p) for p in (vn if vn is not None else [])]
    lines += ["vt " + " ".join(fmt.format(x) for x in p) for p in (vt if vt is not None else [])]
    faces_tex = faces if faces_tex is None else faces_tex
    faces_norm = faces if faces_norm is None else faces_norm
    for f, t, n in zip(faces + 1, faces_tex + 1, faces_norm + 1):
        corner = {"a": "{0}", "a/t": "{0}/{1}", "a//n": "{0}//{2}", "a/t/n": "{0}/{1}/{2}"}[form]
        lines.append("f " + " ".join(corner.format(*c) for c in zip(f, t, n)))
    return ("\n".join(lines) + "\n").encode()


def grid(n=6, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.uniform(-3, 3, (n * n, 3))
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, 1:].ravel(), index[1:, :-1].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return rng, v, faces


@pytest.mark.parametrize("form", ["a", "a/t", "a//n", "a/t/n"])
def test_every_corner_form_reads_as_trimesh_reads_it(form):
    rng, v, faces = grid()
    vn, vt = rng.normal(size=(len(v), 3)), rng.uniform(size=(len(v), 2))
    # texture and normal indices that differ from the vertex's and between its faces: the
    # per-vertex median trimesh takes over 1, 2 or 3 corner slots
    faces_tex = rng.integers(0, len(v), faces.shape)
    faces_norm = rng.integers(0, len(v), faces.shape)
    data = obj_text(v, faces, vn, vt, form, faces_tex=faces_tex, faces_norm=faces_norm)
    fast = obj_reader.read(data)
    assert fast is not None
    assert_same(fast, trimesh_read(data))


@pytest.mark.parametrize("case", ["unreferenced last", "unreferenced inside", "normal past the end",
                                  "texture past the end", "faces name normals, none given", "vt of three"])
def test_the_attributes_trimesh_drops_are_dropped(case):
    rng, v, faces = grid(5, seed=3)
    vn, vt = rng.normal(size=(len(v), 3)), rng.uniform(size=(len(v), 2))
    form, faces_tex, faces_norm = "a/t/n", None, None
    if case == "unreferenced last":
        v = np.concatenate([v, [[9.0, 9.0, 9.0]]])
    elif case == "unreferenced inside":
        faces = faces[faces.min(axis=1) > 0]
    elif case == "normal past the end":
        faces_norm = faces.copy()
        faces_norm[0, 0] = len(vn) + 4
    elif case == "texture past the end":
        faces_tex = faces.copy()
        faces_tex[2, 1] = len(vt) + 1
    elif case == "faces name normals, none given":
        vn, form = None, "a//n"
    else:
        vt = rng.uniform(size=(len(v), 3))
    data = obj_text(v, faces, vn, vt, form, faces_tex=faces_tex, faces_norm=faces_norm)
    fast = obj_reader.read(data)
    assert fast is not None
    assert_same(fast, trimesh_read(data))


@pytest.mark.parametrize("fmt", ["{:.1f}", "{:.6f}", "{:.9g}", "{:.15g}", "{:.6e}", "{:.3E}", "{:+.4f}", "{:.0f}"])
def test_numbers_read_to_the_bits_strtod_gives(fmt):
    rng, v, faces = grid(7, seed=5)
    v = v * 10.0 ** rng.integers(-8, 9, v.shape)
    v[0] = [0.0, -0.0, 1e-20]
    data = obj_text(v, faces, form="a", fmt=fmt)
    fast = obj_reader.read(data)
    assert fast is not None
    assert_same(fast, trimesh_read(data))


def test_numbers_past_the_fast_path_read_through_python_s_float(monkeypatch):
    """Over 15 significant digits, powers of ten past 22, long exponents: left by the loop
    to float(), to strtod's bits all the same; past HARD_NUMBERS of them, trimesh reads."""
    data = (b"v 0.12345678901234567 1e30 -4.9e-324\nv 123456789012345678901234 1.7976931348623157e308 2e-0000001\n"
            b"v 1.000000000000000000000e-20 -0.1e-30 3\nvt 0.333333333333333333 1e23\nvt 1 2\nvt 0 0\n"
            b"f 1/1 2/2 3/3\n")
    fast = obj_reader.read(data)
    assert fast is not None
    assert_same(fast, trimesh_read(data))
    monkeypatch.setattr(obj_reader, "HARD_NUMBERS", 2)
    assert obj_reader.read(data) is None


def test_layout_freedoms_read_the_same():
    """Comments, blank lines, o/g/s/mtllib lines, CRLF, several spaces, short numbers, no
    newline at the end."""
    data = (b"# made by hand\r\nmtllib x.mtl\r\no thing\r\n\r\nv  1 .5 -2.\r\nv 0 0 0   \r\ng part\r\n"
            b"v 1e2 2E-1 -0\r\nvn 0 0 1\r\ns off\r\nf 1//1   2//1 3//1\r\n   \r\nf 3//1 2//1 1//1")
    fast = obj_reader.read(data)
    assert fast is not None
    assert_same(fast, trimesh_read(data))


@pytest.mark.parametrize("text", [
    b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 4 3\n",  # a quad
    b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\n",  # relative indices
    b"v 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl red\nf 1 2 3\n",  # materials split geometries
    b"v 0 0 0 1\nv 1 0 0 1\nv 0 1 0 1\nf 1 2 3\n",  # w, or colours
    b"v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
    b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2/1 3\n",  # corners of two forms
    b"v 0 0 0\nv 1 0 0\nv 0 1 0\n  f 1 2 3\n",  # an indented line
    b"v 0 0 0\nv 1 0 0\nv 0 1 0\nl 1 2\nf 1 2 3\n",  # a line element
    b"v 0 0 0\rv 1 0 0\nv 0 1 0\nf 1 2 3\n",  # a lone carriage return
    b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n",  # a vertex that does not exist
    b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n",  # index 0
    b"v 0 0 0\nv 1 0 0\nv 0 1 0\n",  # no faces
    b"# from C:\\models\\\nv 9 9 9\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",  # a backslash joins the next line
    b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\n# usemtl red\nf 2 4 3\n",  # usemtl even in a comment splits
    "# caf\u00e9\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n".encode("latin-1"),  # not ASCII
])
def test_files_the_loop_does_not_take_go_to_trimesh(text):
    assert obj_reader.read(text) is None


def test_a_big_plain_file_is_read_by_the_loop_to_trimesh_s_mesh(monkeypatch):
    """load_obj picks the loop from COMPILED_MIN_BYTES on: the mesh is the one it made
    through trimesh."""
    rng, v, faces = grid(30, seed=7)
    data = obj_text(v, faces, rng.normal(size=(len(v), 3)), None, "a//n")
    monkeypatch.setattr(obj_reader, "COMPILED_MIN_BYTES", 1 << 40)
    slow = mesh.load_obj("grid.obj", data)
    calls = []
    monkeypatch.setattr(obj_reader, "COMPILED_MIN_BYTES", 0)
    monkeypatch.setattr(mesh, "_trimesh_parts", lambda *a: calls.append(a))
    fast = mesh.load_obj("grid.obj", data)
    assert not calls
    for a, b in zip(vars(fast).values(), vars(slow).values()):
        assert (a is None and b is None) or (a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes())


def test_trimesh_still_names_a_bad_index(monkeypatch):
    monkeypatch.setattr(obj_reader, "COMPILED_MIN_BYTES", 0)
    with pytest.raises(SceneError, match="bad.obj"):
        mesh.load_obj("bad.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n")


def test_mangled_files_read_as_trimesh_reads_them_or_go_to_it():
    """Bytes from outside: a plain file with random bytes changed reads to trimesh's arrays
    or is left to trimesh, and never crashes the process (numba checks no index)."""
    rng, v, faces = grid(4, seed=11)
    base = obj_text(v, faces, rng.normal(size=(len(v), 3)), rng.uniform(size=(len(v), 2)), "a/t/n")
    alphabet = np.frombuffer(b" /\n\r\\-+.eE0123456789fvntsmu#g\xe9", np.uint8)
    taken = 0
    for trial in range(400):
        mangled = np.frombuffer(base, np.uint8).copy()
        at = rng.integers(0, len(mangled), rng.integers(1, 4))
        mangled[at] = rng.choice(alphabet, len(at))
        data = mangled.tobytes()
        fast = obj_reader.read(data)
        if fast is None:
            continue
        taken += 1
        try:
            slow = trimesh_read(data)
        except (SceneError, AssertionError):
            raise AssertionError(f"the loop read a file trimesh does not: {data!r}") from None
        assert_same(fast, slow)
    assert taken > 50  # most single changes keep the file plain


@pytest.mark.parametrize("form", ["a", "a/t/n"])
def test_a_big_obj_travels_as_its_arrays_and_packs_to_the_same_scene(form, tmp_path, monkeypatch):
    """From OBJ_BINARY_MIN on, load_scene gives a mesh shape the OBJ's arrays as a generated
    binary file (mesh.obj_as_binary): read back, they are load_obj's bit for bit (uvs
    included, v up), and the scene packs to the same arrays as from the OBJ itself."""
    import json

    from farm.protocol.assets import GENERATED, FolderAssets
    from farm.scene import load, parse_scene
    from farm.scene.load import load_scene
    from farm.scene.pack import pack

    monkeypatch.setenv("FARM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("farm.defaults.CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(load, "OBJ_BINARY_MIN", 1000)  # the mechanism, on a small file
    rng, v, faces = grid(12, seed=3)
    data = obj_text(v, faces, rng.normal(size=(len(v), 3)), rng.uniform(size=(len(v), 2)), form)
    assert len(data) >= 1000
    (tmp_path / "big.obj").write_bytes(data)
    binary, layout = mesh.obj_as_binary("big.obj", data)
    assert_same(tuple(getattr(mesh.load_binary("big.bin", binary, layout), k) for k in ("vertices", "faces", "normals", "uvs")),
                tuple(getattr(mesh.load_obj("big.obj", data), k) for k in ("vertices", "faces", "normals", "uvs")))
    document = {"version": 1, "camera": {"position": [0, 0, 9], "look_at": [0, 0, 0], "fov": 40},
                "film": {"width": 8, "height": 8, "spp": 1}, "materials": {"m": {"reflectance": 0.5}},
                "shapes": [{"type": "mesh", "file": "big.obj", "material": "m"},
                           {"type": "mesh", "file": "big.obj", "material": "m", "transform": {"translate": [1, 0, 0]}}]}
    (tmp_path / "scene.json").write_text(json.dumps(document))
    scene, sent = load_scene(tmp_path / "scene.json")
    names = [shape["file"] for shape in sent["shapes"]]
    assert names[0] == names[1] and names[0].startswith(GENERATED) and list(scene.assets) == names[:1]
    assert sent["shapes"][0]["binary"] == layout
    # the benches' exports to Mitsuba and Cycles read the OBJ itself
    assert load_scene(tmp_path / "scene.json", obj_arrays=False)[1]["shapes"][0]["file"] == "big.obj"
    folder = FolderAssets(tmp_path)
    converted, direct = pack(scene, folder), pack(parse_scene(document), folder)
    for name in ("nodes", "packs", "triangle_data", "normals", "extras"):
        assert getattr(converted, name).tobytes() == getattr(direct, name).tobytes(), name
