"""`farm bench --simulate`: the scale model (farm/tools/simulate.py), fed with this
machine's measured costs, checked against real frames, and asked about farms this
machine is not.

Measured here, in one run: the kernel's samples/s on this machine's device (a direct
render of the scene) and a launch's own cost (the frame in 8 px buckets against whole);
the farm's own cost per bucket (a local farm of null workers, as `farm bench
--overhead`: the client's CPU to send a bucket and to take its tile, Redis's CPU, a
worker's CPU besides rendering). Checked: the scene through a real local farm of 1 and 2
workers, in 64 px buckets (mostly rendering) and 8 px ones (mostly the farm's own cost),
against the model's prediction for the same frame. The model's workers each have a
device of their own; on a CPU the checks' workers are made so: each renders on one core
(PoCL with one thread, POCL_MAX_PTHREAD_COUNT), at the rate and launch cost measured so in
a process of its own, while the client and Redis take the other cores (with fewer cores
than workers, the workers share them). Workers of PoCL's default threads, one a core
each, fight over every core: two of them rendered the frame in 64 px buckets 25% faster
than the model of two workers sharing the machine's rate said. On a GPU the checks'
workers share the one device, each at its rate over the workers. Predicted: a
3840x2160 frame at 1024 spp on 2 to 1,024 workers of this machine's CPU (all its cores)
and of GPUs of `--gpu-rates`, in 64 px buckets, in self-sized buckets with the tail split
as the farm splits it, and with the model's cooperative split (a running bucket sharing
its samples with an idle worker: not in the farm).
"""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from farm.tools import simulate, timed
from farm.tools.simulate import Costs

FRAME = (3840, 2160, 1024)  # the predicted frame: width, height, spp
WORKER_COUNTS = (2, 16, 128, 1024)
FIXED_SIDE = 64
FARM_TIMEOUT = 900  # seconds for one real farm's bench


def run(args, scene, document) -> int:
    from farm.buckets import count
    from farm.tools import bench_overhead
    from farm.worker.device import current, describe
    from farm.worker.render import POCL_PLATFORM

    width, height, spp = scene.film.width, scene.film.height, scene.film.spp
    device = current()
    rate, launch = device_speed(scene, args.scene, args.repeat)
    print(f"device: {describe(device)}: {rate / 1e6:.2f} M samples/s on {args.scene} "
          f"({width}x{height}, {spp} spp; median of {args.repeat})")
    rounds = bench_overhead.measure(2, scene, document, 8, 0.0, args.repeat)
    costs = _costs(rounds, launch)
    print(f"costs per bucket (null workers, {rounds[0].buckets} buckets of 8 px, median of {args.repeat}; a launch "
          f"on the device, the frame in {count(width, height, 8)} of them against whole, median of "
          f"{args.repeat}): client send {costs.send * 1e3:.3f} ms, collect "
          f"{costs.collect * 1e3:.3f} ms, redis {costs.redis * 1e3:.3f} ms, worker {costs.worker * 1e3:.3f} ms "
          f"(a launch {launch * 1e3:.3f} ms of it)")
    # the checks' workers: on a GPU they share its one device (a "core" of the whole rate)
    env, core_rate, cores, check_costs = None, rate, 1, costs
    if device.platform == POCL_PLATFORM and device.kind != "GPU":
        # each check's worker renders on a core of its own, as the model's on a device of its own
        env = {**os.environ, "POCL_MAX_PTHREAD_COUNT": "1"}
        core_rate, core_launch = one_core_speed(scene, args.scene, args.repeat, env)
        check_costs = dataclasses.replace(costs, worker=costs.worker - launch + core_launch)
        cores = os.cpu_count() or 1
        print(f"one core: {core_rate / 1e6:.2f} M samples/s, a launch {core_launch * 1e3:.3f} ms (PoCL with one "
              f"thread, as each check's worker renders; {cores} cores)")
    # 64 px buckets: mostly rendering; 8 px: mostly the farm's own cost per bucket
    for side in (args.bucket_size,) if args.bucket_size else (FIXED_SIDE, 8):
        for workers in (1, 2):
            measured = farm_seconds(args, scene, workers, side, env)
            farm = [core_rate * min(1.0, cores / workers)] * workers  # more workers than cores share them
            model = simulate.simulate(width, height, spp, side, farm, check_costs)
            print(f"check: {workers} worker(s), {model.buckets} buckets of {side} px: real farm {measured:.3f} s, "
                  f"model {model.seconds:.3f} s ({model.seconds / measured - 1:+.1%})")
    rates = {"this CPU": rate, **{f"GPU {r / 1e9:g} G/s": r for r in args.gpu_rates}}
    # a GPU's launch is not this CPU's (nor measured here): its rows count the worker's own cost alone
    gpu_costs = dataclasses.replace(costs, worker=costs.worker - launch)
    table = predict(rates, costs, args.bucket_seconds, {name: gpu_costs for name in rates if name != "this CPU"})
    fw, fh, fspp = FRAME
    print(f"model: {fw}x{fh} at {fspp} spp; frame seconds and efficiency (ideal / frame)")
    print(f"{'device':16} {'workers':>7}  {'64 px buckets':>24}  {'self-sized, split tail (the farm)':>40}  "
          f"{'cooperative split':>17}")
    for (name, workers), (fixed, sized, cooperative) in table.items():
        print(f"{name:16} {workers:7d}  {fixed.seconds:10.2f} s {fixed.efficiency:6.1%} {fixed.buckets:6d}  "
              f"{sized.seconds:10.2f} s {sized.efficiency:6.1%} {sized.buckets:6d} x {sized.side:4d} px {sized.parts:5d}  "
              f"{cooperative.seconds:7.2f} s {cooperative.efficiency:6.1%}")
    if args.plot:
        plot(table, Path(args.plot))
        print(f"plot: {args.plot}")
    return 0


def device_speed(scene, scene_path: str, repeat: int) -> tuple[float, float]:
    """This process's device: samples/s rendering `scene` whole (median of `repeat`), and a
    launch's own seconds: the frame rendered as 8 px buckets, beyond the frame whole, a
    bucket (a corner bucket's time against the frame's mean rate read nothing: a corner
    is cheaper than the mean)."""
    from farm.buckets import split
    from farm.protocol.assets import FolderAssets
    from farm.scene.pack import pack
    from farm.worker.device import current
    from farm.worker.render import Renderer

    width, height, spp = scene.film.width, scene.film.height, scene.film.spp
    renderer = Renderer(current(), pack(scene, FolderAssets(Path(scene_path).parent, scene.assets)))
    renderer.render(0, 0, min(8, width), min(8, height))  # warm up
    direct = statistics.median(timed(renderer.render_frame) for _ in range(repeat))
    small = split(width, height, 8)
    in_buckets = statistics.median(timed(lambda: [renderer.render(b.x, b.y, b.width, b.height) for b in small])
                                   for _ in range(repeat))
    return width * height * spp / direct, max(0.0, (in_buckets - direct) / len(small))


def one_core_speed(scene, scene_path: str, repeat: int, env: dict) -> tuple[float, float]:
    """device_speed in a process of its own with `env` (PoCL reads its thread count once a
    process, as it opens its device), waited on for at most FARM_TIMEOUT."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_send_speed, args=(send, scene, scene_path, repeat, env), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(FARM_TIMEOUT):
            raise SystemExit(f"farm bench: --simulate: the one-core device took over {FARM_TIMEOUT} s")
        return receive.recv()
    except EOFError:
        child.join(5)
        raise SystemExit(f"farm bench: --simulate: the one-core device's process ended (exit code {child.exitcode}) "
                         "without its speed") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()


def _send_speed(connection, scene, scene_path: str, repeat: int, env: dict) -> None:
    os.environ.update(env)  # before the device opens
    connection.send(device_speed(scene, scene_path, repeat))


def predict(rates: dict[str, float], costs: Costs, bucket_seconds: float, own: dict[str, Costs] | None = None
            ) -> dict:
    """(device, workers) -> Outcomes: in 64 px buckets; self-sized with the tail split as the
    farm splits it (`submit` without --bucket-size: its last buckets cut in parts from the
    start); self-sized with the model's cooperative split (not in the farm: a running bucket
    gives part of its samples to an idle worker). `own`: a device's costs, where not `costs`."""
    from farm import defaults
    from farm.buckets import count, tail_split

    width, height, spp = FRAME
    table = {}
    for name, rate in rates.items():
        device_costs = (own or {}).get(name, costs)
        for workers in WORKER_COUNTS:
            farm = [rate] * workers
            side = simulate.self_sized(width, height, spp, farm, bucket_seconds)
            tail = tail_split(workers, count(width, height, side), spp, defaults.MAX_SPLIT, side * side * spp / rate)
            table[name, workers] = (simulate.simulate(width, height, spp, FIXED_SIDE, farm, device_costs),
                                    simulate.simulate(width, height, spp, side, farm, device_costs, tail=tail),
                                    simulate.simulate(width, height, spp, side, farm, device_costs, split_tail=True))
    return table


def _costs(rounds, launch: float) -> Costs:
    """Seconds per bucket, medians over the rounds: the client's sending from the time inside
    BucketQueue.send, the rest of its CPU its collecting; a worker's CPU (the null renderer's
    workers: Celery, the task, the tile) and a launch on the device."""
    def median(figure) -> float:
        return statistics.median(figure(r) for r in rounds)
    send = median(lambda r: r.send_seconds / r.sent)
    client = median(lambda r: r.cpu["client"] / r.buckets)
    return Costs(send=send, collect=max(client - send, 0.0), redis=median(lambda r: r.cpu["redis"] / r.buckets),
                 worker=median(lambda r: r.cpu["workers"] / r.buckets) + launch)


def farm_seconds(args, scene, workers: int, side: int, env: dict | None = None) -> float:
    """The median wall time of the scene through a local farm of `workers` real workers:
    `farm bench --workers N` in a process of its own (a Celery app serves one broker),
    with `env` (its workers' too) where given."""
    command = [sys.executable, "-m", "farm.client.cli", "bench", "--scene", args.scene, "--spp", str(scene.film.spp),
               "--width", str(scene.film.width), "--workers", str(workers), "--bucket-size", str(side),
               "--repeat", str(args.repeat)]
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=FARM_TIMEOUT, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SystemExit(f"farm bench: --simulate: the real farm of {workers} worker(s) did not run: {exc}") from None
    found = re.search(r"^farm: \d+ worker\(s\), \d+ buckets of \d+px: ([\d.]+)s wall", child.stdout, re.M)
    if child.returncode != 0 or not found:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"farm bench: --simulate: the real farm of {workers} worker(s) failed: {last}")
    return float(found[1])



def plot(table: dict, path: Path) -> None:
    """Efficiency against workers (log scale), a line per device and bucket kind, as a PNG."""
    from PIL import Image, ImageDraw

    size, margin = (720, 420), (60, 20, 200, 40)  # left, top, right, bottom
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = margin[0], margin[1], size[0] - margin[2], size[1] - margin[3]
    counts = WORKER_COUNTS

    def xy(workers: int, efficiency: float) -> tuple[float, float]:
        import math
        span = math.log(counts[-1] / counts[0])
        return (left + (right - left) * math.log(workers / counts[0]) / span, bottom - (bottom - top) * efficiency)

    draw.rectangle((left, top, right, bottom), outline="black")
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = xy(counts[0], tick)[1]
        draw.line((left - 4, y, left, y), fill="black")
        draw.text((8, y - 6), f"{tick:.0%}", fill="black")
    for workers in counts:
        x = xy(workers, 0)[0]
        draw.text((x - 10, bottom + 6), str(workers), fill="black")
    draw.text(((left + right) / 2 - 30, bottom + 22), "workers", fill="black")
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    devices = list(dict.fromkeys(name for name, _ in table))
    for d, name in enumerate(devices):
        for kind, dash in ((0, False), (1, True)):
            points = [xy(w, table[name, w][kind].efficiency) for w in counts]
            colour = colours[d % len(colours)]
            for a, b in zip(points, points[1:]):
                _segment(draw, a, b, colour, dash)
            for p in points:
                draw.ellipse((p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3), fill=colour)
            label_y = top + 10 + (2 * d + kind) * 18
            _segment(draw, (right + 10, label_y + 6), (right + 40, label_y + 6), colour, dash)
            draw.text((right + 46, label_y), f"{name}, {'self-sized' if kind else '64 px'}", fill="black")
    draw.text((left, 4), f"{FRAME[0]}x{FRAME[1]} at {FRAME[2]} spp: efficiency by the scale model", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _segment(draw, a, b, colour: str, dashed: bool) -> None:
    if not dashed:
        draw.line((*a, *b), fill=colour, width=2)
        return
    steps = 12
    for i in range(0, steps, 2):
        s, e = i / steps, (i + 1) / steps
        draw.line((a[0] + (b[0] - a[0]) * s, a[1] + (b[1] - a[1]) * s, a[0] + (b[0] - a[0]) * e,
                   a[1] + (b[1] - a[1]) * e), fill=colour, width=2)
