"""`pip install .` (not only editable) ships the OpenCL sources and the default scene of
`farm bench`, and finds them at run time."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.files import ROOT

# Every OpenCL source of the checkout: an #include the wheel lacks fails only at build time.
KERNEL_FILES = {p.name for p in (ROOT / "kernels").iterdir() if p.suffix in (".cl", ".h")}
assert "pathtrace.cl" in KERNEL_FILES and "types.h" in KERNEL_FILES


def test_wheel_ships_the_kernels_and_the_default_scene_and_finds_them(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("farm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"farm/kernels/{name}" for name in KERNEL_FILES} <= names
    assert {"farm/scene/parse.py", "farm/tasks.py", "farm/scenes/cornell-box.json"} <= names
    # the compiled loops' code: without it each new machine compiles them (farm.scene.compiled)
    prebuilt = {f"farm/scene/prebuilt/{p.name}" for p in (ROOT / "farm" / "scene" / "prebuilt").iterdir()}
    assert prebuilt and prebuilt <= names
    # every package of the checkout: a regular install lacked farm.manager, and `submit` failed to start
    packages = {str(p.relative_to(ROOT)) for p in (ROOT / "farm").rglob("__init__.py")
                if "kernels" not in p.parts and "scenes" not in p.parts}
    assert packages <= names, packages - names

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    probe = "import farm.worker.render, os; d = farm.worker.render.kernel_dir(); print(d); print(sorted(os.listdir(d)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    ).stdout.splitlines()
    assert Path(out[0]).is_relative_to(site)
    assert KERNEL_FILES <= set(eval(out[1]))
    # the commands' module imports every part of farm a command may reach
    subprocess.run([sys.executable, "-c", "import farm.client.cli"], cwd=tmp_path, capture_output=True, check=True,
                   env={**os.environ, "PYTHONPATH": str(site)})

    # `farm bench` and `farm chaos` parse this default; a file it named would be missing too
    probe = ("from farm.tools.bench import default_scene; from farm.scene.load import load_scene; "
             "path = default_scene(); scene, _ = load_scene(path); print(path); print(dict(scene.assets))")
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    ).stdout.splitlines()
    assert Path(out[0]).resolve() == (site / "farm" / "scenes" / "cornell-box.json").resolve()
    assert out[1] == "{}"


def test_source_checkout_without_install_finds_the_kernels(monkeypatch):
    """`celery -A farm worker` started inside a checkout with a regular install imports
    farm/ from the checkout, where no farm.kernels package exists; the sources must
    still be found beside it."""
    import importlib.resources

    import farm.worker.render

    def no_package(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib.resources, "files", no_package)
    assert Path(farm.worker.render.kernel_dir()).resolve() == (ROOT / "kernels").resolve()


def test_source_checkout_without_install_finds_the_default_scene(monkeypatch):
    """As for the kernels: no farm.scenes package, the Cornell box beside farm/."""
    import importlib.resources

    import farm.tools.bench

    def no_package(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib.resources, "files", no_package)
    assert Path(farm.tools.bench.default_scene()) == ROOT / "scenes" / "cornell-box.json"
