"""Two managers (farm.manager.lease): one leads, the other takes over within 15 s of the
leader's SIGKILL and finishes its job, every frame exact; a leader SIGSTOPped past its lease
and continued writes nothing more and exits. Real `farm manager` processes, real workers."""

from __future__ import annotations

import copy
import signal
import time

import numpy as np

from farm.client.film import read_exr
from tests import commands, frames
from tests.test_manager import detach
from tests.test_shot import animated


# A lease of 5 s, not 10: a standby takes over, and a stopped leader loses the lead, once it
# lapses.
LEASE = {"FARM_MANAGER_LEASE": "5"}


def _manager(out, farm):
    return commands.start("manager", "--output-dir", out, "--broker", farm.url, "--address", "127.0.0.1:0", env=LEASE)


def _leader(farm):
    from farm.manager.lease import leader

    return leader(farm.redis)


def _snapshot(folder):
    return {path.name: (path.stat().st_mtime_ns, path.stat().st_size) for path in folder.iterdir()}


def test_the_standby_takes_over_and_a_stopped_leader_writes_nothing_after(make_farm, make_document, write_scene,
                                                                          tmp_path, device):
    farm = make_farm([{"FARM_FAULTS": "slow=3"}, {"FARM_FAULTS": "slow=3"}], name="lead")
    shot = animated(make_document(width=32, height=32, spp=64))
    out_a, out_b, out_c = (tmp_path / name for name in ("a", "b", "c"))
    for folder in (out_a, out_b, out_c):
        folder.mkdir()
    first = detach(write_scene(shot), "shot.exr", farm.url, "--frames", "0-5", "--fps", "2", "--bucket-size", "16")
    a = _manager(out_a, farm)
    commands.wait_for(lambda: _leader(farm) and _leader(farm)[1].endswith(f":{a.pid}"), 30, "manager a to lead")
    b = _manager(out_b, farm)
    c = None
    try:
        commands.wait_for(lambda: (out_a / first / "shot.0000.exr").exists(), 120, "a's first frame")
        a.kill()
        killed = time.monotonic()
        commands.wait_for(lambda: _leader(farm) and _leader(farm)[1].endswith(f":{b.pid}"), 20, "manager b to lead")
        took_over = time.monotonic() - killed
        assert took_over < 15, took_over
        print(f"the standby led {took_over:.1f} s after the leader's SIGKILL")
        result = commands.run("wait", first, "--broker", farm.url, timeout=300)
        assert result.returncode == 0, result.stderr
        for number in range(6):  # each frame written by a before its death, or by b
            path = next(p for p in (out_b / first / f"shot.{number:04d}.exr", out_a / first / f"shot.{number:04d}.exr")
                        if p.exists())
            assert np.array_equal(read_exr(path), frames.reference(device, copy.deepcopy(shot), time=number / 2))

        second = detach(write_scene(shot, "again.json"), "again.exr", farm.url, "--frames", "0-5", "--fps", "2",
                        "--bucket-size", "16")
        c = _manager(out_c, farm)
        commands.wait_for(lambda: (out_b / second / "again.0000.exr").exists(), 120, "b's first frame of the second")
        b.send_signal(signal.SIGSTOP)
        commands.wait_for(lambda: _leader(farm) and _leader(farm)[1].endswith(f":{c.pid}"), 20, "manager c to lead")
        before = _snapshot(out_b / second)
        b.send_signal(signal.SIGCONT)
        returncode, _, stderr = commands.finish(b, timeout=30)
        assert returncode == 2 and "lost the lead" in stderr.strip().splitlines()[-1], stderr
        assert _snapshot(out_b / second) == before, "the old leader wrote after it lost its lease"
        result = commands.run("wait", second, "--broker", farm.url, timeout=300)
        assert result.returncode == 0, result.stderr
        for number in range(6):
            path = next(p for p in (out_c / second / f"again.{number:04d}.exr", out_b / second / f"again.{number:04d}.exr")
                        if p.exists())
            assert np.array_equal(read_exr(path), frames.reference(device, copy.deepcopy(shot), time=number / 2))
    finally:
        for process in (a, b, c):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
                commands.finish(process, timeout=30)
