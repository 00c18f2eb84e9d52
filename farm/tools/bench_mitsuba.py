"""Mitsuba 3 in `farm bench --mitsuba`: the same scene in each variant that runs here, timed
in the bench's alternating rounds; for a variant that cannot run, why, and how to get it."""

from __future__ import annotations

import os
from pathlib import Path

# What the LLVM variant needs, said when it cannot run: Dr.Jit refuses LLVM 14 and older,
# and LLVM 15 aborts compiling Mitsuba's kernels ("LLVM ERROR: Cannot select: ... fminimum").
LLVM_HINT = ("Mitsuba's llvm_ad_rgb needs LLVM 17 or newer (Debian: apt-get install libllvm19), found "
             "through DRJIT_LIBLLVM_PATH=/path/to/libLLVM.so or Dr.Jit's default search")


def mitsuba_frames(args, scene, gpu: bool = False) -> tuple[dict, dict[str, str]]:
    """Mitsuba 3 on the same scene, per variant: (select, render one frame) for `_rounds`,
    warmed up; and, for a variant that cannot run here, why. With `gpu` (the kernel runs on
    one), the CUDA variant too."""
    try:
        import mitsuba as mi
    except ImportError:
        print("mitsuba: not installed (pip install mitsuba)")
        return {}, {}
    frames, cannot_run = {}, {}
    for variant in ("scalar_rgb", "llvm_ad_rgb") + (("cuda_ad_rgb",) if gpu else ()):
        # The LLVM variant needs a recent libLLVM (an old one can abort the process), the
        # CUDA variant NVIDIA's driver: each is tried in a child process first.
        why = None if variant == "scalar_rgb" else _variant_failure(variant)
        if why:
            cannot_run[variant] = why
            continue
        mi.set_variant(variant)
        if variant == "llvm_ad_rgb" and getattr(args, "avx2", False):
            why = llvm_without_avx512()
            if why:
                cannot_run[variant] = why
                continue
            from farm.worker import pocl

            print(f"mitsuba {variant}: code for {pocl.this_processor()} without AVX-512, 8 lanes (--avx2; "
                  "Mitsuba's Embree picks its own instruction set)")
        loaded = load_boxed(mi, scene, Path(args.scene).parent)
        _mitsuba_frame(mi, loaded, 1)  # compile / warm up
        frames[variant] = (lambda variant=variant: mi.set_variant(variant),
                           lambda loaded=loaded: _mitsuba_frame(mi, loaded, scene.film.spp))
    return frames, cannot_run


def llvm_without_avx512() -> str | None:
    """Dr.Jit's LLVM backend set to build AVX2's code in 8 lanes, the processor named as farm
    names it for PoCL without AVX-512 (`farm bench --avx2`: an AVX2 machine's ratio estimated
    on an AVX-512 one), before its first kernel; None once set, else why not. Dr.Jit's Python
    has no call for it: drjit-core's jit_llvm_set_target is called by its C++ name. Mitsuba's
    Embree still picks its own instruction set (its device's options are Mitsuba's)."""
    import ctypes

    import drjit

    from farm.worker import pocl

    try:
        core = ctypes.CDLL(str(Path(drjit.__file__).parent / "libdrjit-core.so"))
        features, set_target = core._Z24jit_llvm_target_featuresv, core._Z19jit_llvm_set_targetPKcS0_j
        width = core._Z21jit_llvm_vector_widthv
    except (OSError, AttributeError) as exc:
        return f"Dr.Jit's LLVM target cannot be set here ({exc})"
    features.restype, width.restype = ctypes.c_char_p, ctypes.c_uint32
    wide = ("avx512", "avx10", "evex512")  # LLVM's features of AVX-512's code
    kept = ["-" + feature[1:] if feature[1:].startswith(wide) else feature
            for feature in (features() or b"").decode().split(",") if feature]
    set_target(pocl.this_processor().encode(), ",".join(kept).encode(), 8)
    return None if width() == 8 else f"Dr.Jit kept {width()} lanes after its target was set to 8"


def load_boxed(mi, scene, folder: Path):
    """The scene as Mitsuba loads it (farm.scene.mitsuba, in the variant set), with a box
    pixel filter. Like with like: our samples stay in their pixel, so Mitsuba's must too
    (to_mitsuba chooses its default filter for the reference tests; ratios and errors
    against the farm depend on it)."""
    from farm.scene.mitsuba import to_mitsuba

    document = to_mitsuba(scene, folder)
    document["sensor"]["film"]["rfilter"] = {"type": "box"}
    return mi.load_dict(document)


def _mitsuba_frame(mi, loaded, spp: int) -> None:
    import numpy as np

    # spp every time: a render with spp= keeps that count in the scene's sampler
    np.asarray(mi.render(loaded, spp=spp))  # asarray forces evaluation in the JIT variants


def _variant_failure(variant: str) -> str | None:
    """Render a small frame with `variant` in a child process: None if it works, else why not."""
    import signal
    import subprocess
    import sys

    probe = (
        "import mitsuba as mi; mi.set_variant(%r); "
        "s = mi.load_dict(mi.cornell_box()); import numpy as np; np.asarray(mi.render(s, spp=1))" % variant
    )
    timeout = 300
    try:
        child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"a one-sample frame took over {timeout}s in a child process"
    if child.returncode == 0:
        return None
    why = _stderr_reason(child.stderr)
    if child.returncode < 0:
        why = f"{why} (the child process died of {signal.Signals(-child.returncode).name})"
    return why


def _stderr_reason(stderr: str) -> str:
    """The line of a failed probe's stderr that says why: LLVM's fatal error, else Dr.Jit's
    first complaint (the exception after it names only a consequence), else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for cause in ("LLVM ERROR:", "jit"):
        found = [line for line in lines if line.startswith(cause)]
        if found:
            return found[0]
    return lines[-1] if lines else "no message"


def how_to_get(variant: str = "llvm_ad_rgb") -> str:
    """What Mitsuba's variant needs when it cannot run here (for the LLVM one, where Dr.Jit looked)."""
    if variant == "cuda_ad_rgb":
        return "Mitsuba's cuda_ad_rgb needs an NVIDIA GPU and its driver's libcuda.so"
    looked = f" (DRJIT_LIBLLVM_PATH={os.environ['DRJIT_LIBLLVM_PATH']} now)" if "DRJIT_LIBLLVM_PATH" in os.environ else ""
    return LLVM_HINT + looked
