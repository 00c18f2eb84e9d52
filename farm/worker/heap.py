"""A render process keeps the memory it frees (FARM_KEEP_MEMORY): glibc's malloc otherwise
hands a freed block of more than 128 KiB (up to 32 MiB as it adapts) back to the kernel,
and trims the heap's free top, so the next scene's arrays are faulted in again, page by
page. A 1M-triangle scene allocates about 1 GB on its way to the device (pack's arrays,
peak 640 MiB, then the device's buffers). On the Zen 4 of issue 30 a fresh 512 MiB costs
0.2 s of faults in 4 KiB pages and 0.06-1.0 s in huge pages; one process packing and
uploading that scene five times spent 0.3-1.6 s of system time a scene.

Kept (mallopt: M_MMAP_MAX 0, no block mmap'd; M_TRIM_THRESHOLD the most, the heap never
trimmed), a render process's later scenes take their memory from what the earlier ones
freed. `farm bench --mesh 1000000 --on-farm --workers 1 --repeat 8`, twice each way,
alternating: the first tile of rounds 2-8 a median 1.33 s after the job was sent without,
1.04 s with; round 1 2.51 and 2.21 s without, 1.73 and 1.54 s with. The price: the process
holds its peak (about the two largest scenes it kept, farm.worker.scenes.SCENES_KEPT, 2.2-2.3
GB there either way) until it ends.

And its arrays are faulted in as small pages (small_pages_for_arrays): numpy advises the
kernel to back every array of 4 MiB or more with transparent huge pages (madvise), and where
the system's THP `defrag` setting is `madvise` (Debian's and Ubuntu's default) each fault of
such a page may first compact memory to find 2 MiB free. The first 1M-triangle scene of a
render process took 1.1-1.4 s of system time packing so on the Zen 4 of issue 30, 0.27-0.33
s in small pages (pack 1.73-2.07 s against 1.28-1.31 s, three fresh processes each,
alternating). The kernel's buffers are PoCL's own memory, not numpy's: rendering is the same.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory in this process; False where the C library
    is not glibc (musl, macOS), which then does as it does."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc's own symbol: mallopt's options differ elsewhere
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    kept = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    if not kept:
        log.warning("render process: glibc refused to keep freed memory; each scene faults its memory in anew")
    return kept


def small_pages_for_arrays() -> bool:
    """Stop numpy advising huge pages for this process's new arrays (the run-time switch of
    NUMPY_MADVISE_HUGEPAGE, which numpy reads only at import); False where this numpy has
    no such switch."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, numpy 1
        try:
            switch = importlib.import_module(module)._set_madvise_hugepage
        except (ImportError, AttributeError):
            continue
        switch(False)
        return True
    log.info("render process: this numpy has no switch for huge pages; its arrays are advised as numpy does")
    return False
