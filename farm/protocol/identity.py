"""Which renderer a worker runs, and which a job was submitted for (pinned versions).

A job's record holds `kernel`: the digest of the OpenCL sources its client has (every farm
install carries them, package data `farm.kernels`). A worker renders a job's buckets only
where its own sources have that digest, and, unless the job allows mixed devices
(`submit --allow-mixed-devices`), only where its whole kernel identity (sources, build
options, OpenCL platform and device kind) is the one the job was pinned to by the first
worker that took one of its buckets: a frame is then never split across kernels or device
kinds whose results may differ in their last bits. A worker that may not render a bucket
passes it on (farm.protocol.recovery's Cause.MISMATCH), and the job's client fails the job
within NO_HEALTHY_WORKER_TIMEOUT where no live worker may render it, naming why. Cf.
V-Ray's "DR check", Deadline's pinned plugin versions.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from functools import lru_cache
from pathlib import Path

from farm.exceptions import KernelBuildError

KERNEL_FILE = "pathtrace.cl"


def kernel_dir() -> str:
    """The folder holding the OpenCL sources: package data (`farm.kernels`) when installed,
    else `kernels/` beside the `farm/` being imported (a source checkout on sys.path)."""
    try:
        return str(importlib.resources.files("farm.kernels"))
    except ModuleNotFoundError:
        checkout = Path(__file__).resolve().parents[2] / "kernels"
        if (checkout / KERNEL_FILE).is_file():
            return str(checkout)
        raise KernelBuildError(f"OpenCL sources not found (no farm.kernels package, no {checkout})") from None


@lru_cache(maxsize=1)
def sources_digest() -> str:
    """The digest of this install's OpenCL sources (every .cl and .h, by name and bytes)."""
    digest = hashlib.sha256()
    folder = Path(kernel_dir())
    for path in sorted(folder.glob("*.cl")) + sorted(folder.glob("*.h")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def kernel_identity(sources: str, options: list[str], platform: str, kind: str) -> str:
    """`<sources digest>.<build digest>`: the build digest covers the build options (the
    sources' folder left out: installs differ in it, not in their kernel), the OpenCL
    platform and the device kind."""
    kept = [option for option, before in zip(options, [None, *options]) if option != "-I" and before != "-I"]
    build = hashlib.sha256("\0".join([*kept, platform, kind]).encode()).hexdigest()[:12]
    return f"{sources}.{build}"


def excluded(job_kernel: str, job_pin: str, mixed: bool, worker_kernel: str) -> str:
    """Why a worker of kernel identity `worker_kernel` may not render a job (its record's
    `kernel` and `pin`), or "" where it may."""
    if not worker_kernel:
        return ""  # a worker of before identities (or one still starting): not excluded on a guess
    sources = worker_kernel.split(".")[0]
    if job_kernel and sources != job_kernel:
        return f"its kernel sources are {sources}, the job's {job_kernel} (another farm version)"
    if job_pin and not mixed and worker_kernel != job_pin:
        return (f"its kernel is {worker_kernel}, the job is pinned to {job_pin} (other build options, "
                "platform or device kind; submit --allow-mixed-devices allows it)")
    return ""
