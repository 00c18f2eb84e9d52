"""A render process keeps the memory it frees (farm.worker.heap): the next scene's arrays
come from it, not from page faults; and its arrays are faulted in as small pages, not huge
ones numpy advises (each of which may first compact memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Faults taken by a 64 MiB array allocated after one as large was freed, in a process of its
# own (4 KiB pages: numpy's huge-page advice off, so that every page counts).
FAULTS = """
import json, resource, sys
import numpy as np
from numpy._core import multiarray
from farm.worker.heap import keep_freed_memory
multiarray._set_madvise_hugepage(False)
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
first = np.ones(2**23)
del first
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
second = np.ones(2**23)
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def faults(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux")
def test_freed_memory_is_kept_for_the_next_allocation():
    given_back, kept = faults("default"), faults("keep")
    assert kept["kept"] is True
    assert given_back["faults"] >= 2**23 * 8 // 4096 // 2  # about 16,384 pages faulted in anew
    assert kept["faults"] < 200  # the freed block serves the new one


def test_a_render_process_s_arrays_are_not_advised_huge_pages():
    # numpy's own switch (NUMPY_MADVISE_HUGEPAGE is read only at import), in a process of its own
    code = ("from numpy._core import multiarray\nfrom farm.worker.heap import small_pages_for_arrays\n"
            "before = multiarray._get_madvise_hugepage()\nprint(small_pages_for_arrays(), before, "
            "multiarray._get_madvise_hugepage())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                          env={**os.environ, "NUMPY_MADVISE_HUGEPAGE": "1"})
    assert done.stdout.split() == ["True", "True", "False"]
