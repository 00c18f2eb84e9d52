"""Build the compiled loops' code that farm ships (farm/scene/prebuilt/, read by
farm.scene.compiled): `python -m farm.tools.prebuild`, after a change to farm/scene/bvh_loop.py
or obj_loop.py (tests/test_bvh.py fails until then), with the numba and the Python the
shipped code is for (those of the test extra; each Python has files of its own)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from farm.scene.compiled import PREBUILT


def build(folder: Path = PREBUILT) -> list[str]:
    """Compile every loop into an empty cache and copy its files into `folder` (in a
    process that has not imported numba)."""
    if "numba" in sys.modules:  # its settings are read once, as it is imported
        raise RuntimeError("numba was imported before the build: run `python -m farm.tools.prebuild`")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["NUMBA_CACHE_DIR"] = cache
        os.environ["NUMBA_CPU_NAME"] = "generic"
        from farm.scene import bvh, compiled, geometry, obj_reader

        compiled.seeding = False  # compiled here, not copied from what is shipped
        bvh.warm_up()
        geometry.warm_up()
        obj_reader.warm_up()
        dispatchers = list(compiled.loaded().values())
        folder.mkdir(exist_ok=True)
        tag = f".py{sys.version_info.major}{sys.version_info.minor}"
        for old in folder.glob(f"*{tag}.*"):
            old.unlink()
        (folder / "options").write_text(compiled.TAG + "\n")
        written = ["options"]
        for dispatcher in dispatchers:
            base = dispatcher._cache._cache_file._index_name[:-len(".nbi")]
            for path in sorted(Path(dispatcher._cache._cache_path).glob(base + ".*")):
                shutil.copyfile(path, folder / path.name)
                written.append(path.name)
    return written


if __name__ == "__main__":
    for name in build():
        print(PREBUILT / name)
