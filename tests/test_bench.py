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
