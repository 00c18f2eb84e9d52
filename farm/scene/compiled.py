"""numba for farm's compiled loops (the BVH builder and its collapse, the big-OBJ reader, a
big scene's triangle rows and node records), with their code built ahead of time and
shipped beside this module, so that no machine compiles them.

numba caches a compiled function in an index (`<name>-<line>.pyXY.nbi`: numba's version, a
hash of the function's source file, and per signature the machine code's target) and one
object file a signature (`.nbc`). farm asks numba for code of the generic x86-64 (or of
the machine's architecture elsewhere), not for this processor's, so that an index built on
one machine serves every other with the same numba and Python: `python -m
farm.tools.prebuild` builds them into farm/scene/prebuilt/, and a process that first needs
a loop copies the shipped files into numba's cache folder. Where they do not match (another
numba, another Python, a source edited since), numba compiles as before, once a machine
(3-4 s a loop here), and keeps it under FARM_CACHE_DIR. Generic code builds the BVH as fast
as code for the machine's own processor (1.03-1.14 s against 1.04-1.10 s for a million
boxes, measured): the loops are branches and scalar arithmetic.

What it takes of numba's insides (numba.core.caching): a dispatcher's `_cache` with its
`_cache_path`, and the cache file's `_index_name`; and the index's layout (a pickled numba
version, then the pickled source stamp and overloads). Without them it only loses the
shipped code.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import threading
import uuid
from pathlib import Path

from farm import defaults

PREBUILT = Path(__file__).with_name("prebuilt")
# How every loop is compiled. numba's cache keys its code by the source, the signature and the
# target, not by these: a change here gets a cache folder of its own (TAG), and the shipped
# code serves only where it was built with the same (PREBUILT/options).
OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}  # numpy's: a division by zero is inf or nan
TAG = hashlib.sha256(repr(sorted(OPTIONS.items())).encode()).hexdigest()[:12]
seeding = True  # farm.tools.prebuild turns it off: it compiles, and ships what it compiled

_dispatchers: dict = {}
_compiling = threading.Lock()


def numba_module():
    """numba, imported for farm's loops: its cache under FARM_CACHE_DIR, code for the
    architecture's generic processor (settings a caller has made win: NUMBA_CACHE_DIR,
    NUMBA_CPU_NAME)."""
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(defaults.CACHE_DIR, "numba", TAG))
    os.environ.setdefault("NUMBA_CPU_NAME", "generic")
    import numba

    return numba


def compiled(function):
    """`function` compiled by numba (without the GIL, cached), its shipped code put in
    numba's cache folder first; one dispatcher a function, however many threads ask."""
    with _compiling:
        if function not in _dispatchers:
            dispatcher = numba_module().njit(**OPTIONS)(function)
            try:
                if seeding:
                    seed(dispatcher)
            except Exception:  # noqa: BLE001 - numba's insides moved: it compiles, as without shipped code
                pass
            _dispatchers[function] = dispatcher
        return _dispatchers[function]


def loaded() -> dict:
    """The dispatchers made so far, by function."""
    with _compiling:
        return dict(_dispatchers)


def seed(dispatcher) -> bool:
    """Copy the shipped index and object files of `dispatcher`'s function into numba's
    cache folder for it, unless what is there already serves this source. True if copied."""
    cache = dispatcher._cache
    index_name = cache._cache_file._index_name
    shipped = PREBUILT / index_name
    options = PREBUILT / "options"
    if not shipped.is_file() or not options.is_file() or options.read_text().strip() != TAG:
        return False
    folder = Path(cache._cache_path)
    stamp = cache._impl.locator.get_source_stamp()
    if _stamp_of(folder / index_name) == stamp or _stamp_of(shipped) != stamp:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    base = index_name[:-len(".nbi")]
    for path in sorted(PREBUILT.glob(base + ".*.nbc")) + [shipped]:  # the index last: it names the rest
        temporary = folder / f".{path.name}.{uuid.uuid4().hex}"  # pids repeat across containers sharing a cache
        shutil.copyfile(path, temporary)
        os.replace(temporary, folder / path.name)
    return True


def _stamp_of(index: Path):
    """The source stamp an index was written for, or None (absent, another numba)."""
    import numba

    try:
        with open(index, "rb") as file:
            if pickle.load(file) != numba.__version__:
                return None
            stamp, _ = pickle.loads(file.read())
    except (OSError, pickle.UnpicklingError, ValueError, EOFError):
        return None
    return stamp
