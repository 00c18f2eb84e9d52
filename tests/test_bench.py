"""The benchmark runs end to end and prints measured figures (not a timing assertion)."""

import re
import subprocess
import sys


def test_bench_prints_kernel_speed_and_farm_efficiency():
    result = subprocess.run(
        [sys.executable, "-m", "farm.cli", "bench", "--spp", "2", "--width", "48", "--repeat", "1", "--bucket-size", "16"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"kernel: [\d.]+s per frame, [\d.]+ M samples/s", out), out
    assert re.search(r"farm: 1 worker\(s\), 9 buckets of 16px: [\d.]+s wall", out), out
    efficiency = float(re.search(r"farm efficiency: ([\d.]+)%", out).group(1))
    assert 0 < efficiency < 1000
    assert re.search(r"per-bucket overhead: -?[\d.]+ ms", out), out


def _bench(*args) -> str:
    result = subprocess.run([sys.executable, "-m", "farm.cli", "bench", *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bench_mesh_times_each_step_of_a_generated_mesh():
    out = _bench("--mesh", "5000", "--spp", "1", "--width", "32", "--repeat", "1")
    assert re.search(r"mesh: [\d,]+ triangles", out), out
    for step in ("load OBJ \\(trimesh\\)", "build BVH", "upload", "render 32x32 at 1 spp"):
        assert re.search(step + r" [\d.]+s", out), (step, out)


def test_bench_samplers_compares_their_error():
    out = _bench("--samplers", "--spp", "4", "--width", "24")
    errors = {name: float(value) for name, value in re.findall(r"(sobol|independent): RMSE ([\d.]+)", out)}
    assert set(errors) == {"sobol", "independent"} and all(e > 0 for e in errors.values()), out


def test_bench_against_mitsuba_reports_a_ratio():
    out = _bench("--mitsuba", "--skip-farm", "--spp", "2", "--width", "32", "--repeat", "1")
    assert re.search(r"mitsuba scalar_rgb: [\d.]+s per frame, [\d.]+ M samples/s; farm kernel / mitsuba = [\d.]+", out)
    assert re.search(r"farm kernel / the issue's Mitsuba LLVM figure \(2.9 M samples/s\): [\d.]+", out), out
