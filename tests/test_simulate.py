"""The scale model of `farm bench --simulate` (farm/tools/simulate.py): its frames add up as
the farm's steps do, its queues hold back a farm whose client is the bottleneck, a split tail
takes the last bucket off a slow worker; and the bench runs it against real frames."""

import re

import pytest
from PIL import Image

from farm.tools import bench_simulate, simulate
from farm.tools.simulate import Costs
from tests import commands

FREE = Costs(send=0.0, collect=0.0, redis=0.0, worker=0.0)


def test_a_free_farm_renders_at_its_workers_speed():
    outcome = simulate.simulate(256, 256, 64, 64, [2e6, 2e6], FREE)
    assert outcome.buckets == 16 and outcome.parts == 0
    assert outcome.seconds == pytest.approx(256 * 256 * 64 / 4e6) and outcome.efficiency == pytest.approx(1.0)


def test_one_worker_pays_each_step_of_each_bucket_in_turn():
    costs = Costs(send=0.001, collect=0.002, redis=0.003, worker=0.004)
    outcome = simulate.simulate(100, 50, 16, 50, [1e5], costs)  # two buckets of 50x50
    render = 50 * 50 * 16 / 1e5
    # the first send and publish, then per bucket: fetch, the worker's own, render, store;
    # then the client takes the last tile
    expected = 0.001 + 0.001 + 2 * (0.001 + 0.004 + render + 0.001) + 0.002
    assert outcome.seconds == pytest.approx(expected)


def test_a_farm_faster_than_its_client_waits_on_the_client():
    costs = Costs(send=0.0005, collect=0.0005, redis=0.0001, worker=0.001)
    outcome = simulate.simulate(1024, 1024, 16, 16, [1e9] * 256, costs)
    assert outcome.buckets == 4096
    assert outcome.seconds >= 4096 * (0.0005 + 0.0005)  # every send and every tile through one client
    assert outcome.efficiency < 0.01


def test_a_split_tail_takes_the_last_bucket_off_a_slow_worker():
    costs = Costs(send=0.0001, collect=0.0001, redis=0.0001, worker=0.001)
    rates = [1e6, 1e6, 1e6, 1e5]  # the last worker ten times slower
    whole = simulate.simulate(128, 128, 64, 64, rates, costs)  # four buckets, one each
    split = simulate.simulate(128, 128, 64, 64, rates, costs, split_tail=True)
    assert whole.seconds == pytest.approx(64 * 64 * 64 / 1e5, rel=0.01)  # the slow worker's bucket
    assert split.parts >= 3 and split.seconds < 0.3 * whole.seconds


def test_the_farm_s_split_tail_cuts_its_last_buckets_in_parts_from_the_start():
    whole = simulate.simulate(128, 64, 64, 64, [1e6] * 4, FREE)  # two buckets on four workers: two idle
    split = simulate.simulate(128, 64, 64, 64, [1e6] * 4, FREE, tail=(2, 4))  # each in four parts of 16 spp
    assert (split.buckets, split.parts) == (2, 6)
    assert whole.seconds == pytest.approx(64 * 64 * 64 / 1e6) and split.seconds == pytest.approx(whole.seconds / 2)
    assert split.efficiency == pytest.approx(1.0)


def test_self_sized_buckets_render_in_the_seconds_asked_on_the_median_worker():
    assert simulate.self_sized(3840, 2160, 1024, [1e9] * 8, 1.0) == 992  # sqrt(1e9 / 1024) = 988
    assert simulate.self_sized(3840, 2160, 1024, [3e6, 3e6, 1e9], 1.0) == 56  # the median worker: a CPU
    assert simulate.self_sized(3840, 2160, 64, [1e3], 1.0) == 8  # the least: the noise cell
    assert simulate.self_sized(3840, 2160, 1, [1e12], 1.0) == 1024  # the most a bucket may be
    assert simulate.self_sized(100, 60, 1, [1e12], 1.0) == 104  # no larger than the frame needs


def test_self_sized_buckets_of_a_big_farm_fill_its_waves():
    """128 GPUs of 1 G samples/s on a 1080p frame at 1024 spp: buckets of 1 s (992 px, two of
    them to the frame, each in parts) leave most GPUs idle; of the sides within twice or
    half that time the farm takes the one its model of the frame ends soonest in, and the
    scale model agrees it is better."""
    from farm import defaults
    from farm.buckets import count, tail_split

    gpus, costs = [1e9] * 128, Costs(send=0.026e-3, collect=0.062e-3, redis=0.117e-3, worker=1.2e-3)
    side = simulate.self_sized(1920, 1080, 1024, gpus, 1.0)
    assert 992 / 2 ** 0.5 <= side < 992

    def efficiency(side: int) -> float:
        tail = tail_split(128, count(1920, 1080, side), 1024, defaults.MAX_SPLIT, side * side * 1024 / 1e9)
        return simulate.simulate(1920, 1080, 1024, side, gpus, costs, tail=tail).efficiency

    assert efficiency(side) > efficiency(992) + 0.1


def test_the_prediction_table_and_its_plot(tmp_path):
    costs = Costs(send=0.0001, collect=0.0003, redis=0.0004, worker=0.0017)
    table = bench_simulate.predict({"GPU": 1e9}, costs, 1.0)
    assert set(table) == {("GPU", w) for w in bench_simulate.WORKER_COUNTS}
    fixed, sized, cooperative = table["GPU", 16]
    assert fixed.side == 64 and sized.side == cooperative.side == 992 and sized.efficiency > fixed.efficiency
    assert (sized.buckets, sized.parts) == (4 * 3, 12 * 15)  # every bucket in 16 parts: 16 workers, 12 buckets
    bench_simulate.plot(table, tmp_path / "plot.png")
    assert Image.open(tmp_path / "plot.png").size == (720, 420)


def test_bench_simulate_measures_checks_and_predicts(tmp_path):
    # 128 px: 256 buckets of 8 px for the costs, enough CPU for psutil's 10 ms ticks to see
    result = commands.run("bench", "--simulate", "--width", 128, "--repeat", 1, "--gpu-rates", "1e9",
                          "--bucket-size", 64, "--plot", tmp_path / "plot.png", timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^device: .*: [\d.]+ M samples/s on ", out, re.M), out
    costs = re.search(r"^costs per bucket .*: client send ([\d.]+) ms, collect ([\d.]+) ms, redis ([\d.]+) ms, "
                      r"worker ([\d.]+) ms \(a launch ([\d.]+) ms of it\)$", out, re.M)
    assert costs and float(costs[3]) > 0 and float(costs[4]) > 0, out
    # the checks' workers render on a core each (PoCL here, with no GPU): measured so too
    core = re.search(r"^one core: ([\d.]+) M samples/s, a launch ([\d.]+) ms \(PoCL with one thread", out, re.M)
    assert core and float(core[1]) > 0, out
    for workers in (1, 2):
        assert re.search(rf"^check: {workers} worker\(s\), 4 buckets of 64 px: real farm [\d.]+ s, model [\d.]+ s "
                         r"\([+-][\d.]+%\)$", out, re.M), out
    rows = re.findall(r"^(this CPU|GPU 1 G/s) +(\d+) +[\d.]+ s +[\d.]+% +\d+ +[\d.]+ s +[\d.]+% +\d+ x +\d+ px +\d+ "
                      r"+[\d.]+ s +[\d.]+%$", out, re.M)
    assert len(rows) == 2 * len(bench_simulate.WORKER_COUNTS), out
    assert (tmp_path / "plot.png").exists()


@pytest.mark.parametrize("given, said", [
    (("--gpu-rates=-1",), "argument --gpu-rates: expected a number above 0, got '-1'"),
    (("--gpu-rates=1e9,x",), "argument --gpu-rates: expected numbers separated by commas, got '1e9,x'"),
    (("--bucket-seconds=nan",), "argument --bucket-seconds: expected a number above 0, got 'nan'"),
])
def test_bad_model_settings_are_one_line_before_anything_runs(given, said):
    result = commands.run("bench", "--simulate", *given, timeout=60)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == f"farm bench: error: {said}"
    assert result.seconds < 30  # refused by the parser, not after the measurements
