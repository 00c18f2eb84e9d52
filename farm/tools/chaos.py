"""`farm chaos`: render a frame while killing workers, render processes and, once, Redis.

Starts its own Redis (with an append-only file) and workers on this machine, renders the
frame once undisturbed for the time to beat, then again while a chaos thread injects
faults at random moments: SIGKILL of a render process, SIGKILL of a whole worker (its
process group, as when a host dies) and a later restart, SIGTERM of a worker and a
restart, and one SIGKILL of Redis followed by a restart. It then prints what it did and
checks the outcome against a one-process render: no bucket lost, every pixel identical.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from farm.exceptions import FarmError


HELP = "render while killing workers and Redis; check nothing was lost"  # its line in `farm --help`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from farm.tools.bench import default_scene

    parser.add_argument("--scene", default=default_scene(), help="scene file (default: the bundled Cornell box)")
    parser.add_argument("--spp", type=int, default=256, help="samples per pixel (default 256)")
    parser.add_argument("--width", type=int, default=192, help="film width; the height keeps the aspect (default 192)")
    parser.add_argument("--bucket-size", type=int, default=32, help="bucket side in pixels (default 32)")
    parser.add_argument("--workers", type=int, default=4, help="local workers (default 4)")
    parser.add_argument("--faults", type=int, default=6, help="worker faults to inject, Redis's one aside (default 6)")
    parser.add_argument("--lease-timeout", type=float, default=4.0,
                        help="FARM_LEASE_TIMEOUT for this run, seconds (default and least: 4)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault schedule (default 1)")


def run(args) -> int:
    from farm.app import app
    from farm.client.local import LocalFarm
    from farm.protocol.assets import FolderAssets
    from farm.protocol.broker import connect
    from farm.scene.pack import pack
    from farm.tools.bench import load_scaled
    from farm.worker.device import current
    from farm.worker.render import Renderer

    args.lease_timeout = max(4.0, args.lease_timeout)
    scene, document = load_scaled(args)
    assets = FolderAssets(Path(args.scene).parent, scene.assets)
    print(f"scene: {args.scene} {scene.film.width}x{scene.film.height}, {scene.film.spp} spp, "
          f"{args.bucket_size}px buckets, {args.workers} workers")
    reference = Renderer(current(), pack(scene, assets)).render_frame()

    env = {"FARM_LEASE_TIMEOUT": str(args.lease_timeout)}
    with LocalFarm(args.workers, env, appendonly=True, name="chaos") as local:
        app.conf.broker_url = local.broker_url
        local.wait_ready(app)
        redis_client = connect(local.broker_url)
        undisturbed = _render(redis_client, app, scene, document, args, assets)
        calm_seconds = undisturbed.wall_seconds
        print(f"undisturbed: {calm_seconds:.2f}s, identical to one process: "
              f"{'yes' if np.array_equal(undisturbed.film.pixels, reference) else 'NO'}")

        chaos = _Chaos(local.redis, local.workers, random.Random(args.seed), args.faults, calm_seconds)
        try:
            run = _render(redis_client, app, scene, document, args, assets, chaos)
            attempts = run.job.deliveries.attempts()
            report = run.report()
        finally:
            chaos.stop()

    rerendered = sum(1 for index in range(run.total) if attempts.get(index, 0) > 1)
    lost = run.total - len(run.records)
    once = bool((run.film.coverage == 1).all())
    identical = np.array_equal(run.film.pixels, reference)
    print(f"faults injected: {sum(chaos.injected.values())} "
          f"({', '.join(f'{n} {kind}' for kind, n in sorted(chaos.injected.items()))})")
    print(f"buckets re-rendered: {rerendered} of {run.total} "
          f"({sum(attempts.values()) - run.total} extra deliveries, {report['duplicates']} duplicate tiles "
          f"discarded, {report['resent']} sent again by the client)")
    print(f"buckets lost: {lost}")
    print(f"every bucket in the image exactly once: {'yes' if once else 'NO'}")
    print(f"image identical: {'yes' if identical else 'NO'}")
    print(f"time: {run.wall_seconds:.2f}s against {calm_seconds:.2f}s undisturbed "
          f"({run.wall_seconds / calm_seconds:.2f}x)")
    if lost or not once or not identical:
        raise FarmError("the chaos run lost buckets or changed the image")
    return 0


def _render(redis_client, app, scene, document, args, assets, chaos=None):
    from farm.client.start import start_job

    run = start_job(redis_client, app, scene, document, args.bucket_size, "spiral", assets)
    run.lease_timeout = args.lease_timeout  # the workers get it by environment
    if chaos is not None:
        chaos.start(run)
    run.collect(on_notice=(lambda message: print(f"  [{run.wall_seconds:6.2f}s] {message}")) if chaos else None)
    return run


class _Chaos(threading.Thread):
    """Injects `faults` worker faults spread over about the undisturbed frame time, and
    kills and restarts Redis once, halfway. The thread lives until `stop()`: the processes
    it restarts die with the thread that started them (PR_SET_PDEATHSIG)."""

    def __init__(self, redis_server, workers, rng: random.Random, faults: int, seconds: float):
        super().__init__(daemon=True, name="farm-chaos")
        self.redis_server, self.workers, self.rng = redis_server, workers, rng
        self.faults, self.seconds = faults, seconds
        self.injected: Counter = Counter()
        self._done = threading.Event()
        self.run_ = None

    def start(self, run) -> None:
        self.run_ = run
        super().start()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def _say(self, message: str) -> None:
        print(f"  [{self.run_.wall_seconds:6.2f}s] chaos: {message}")

    def run(self) -> None:
        gap = self.seconds / (self.faults + 2)
        redis_at = self.faults // 2
        for number in range(self.faults):
            if self._done.wait(gap * self.rng.uniform(0.5, 1.2)):
                return
            if number == redis_at:
                self._kill_redis()
            self.rng.choice([self._kill_child, self._kill_worker, self._term_worker])()
        self._done.wait()

    def _leases(self):
        try:
            return self.run_.job.deliveries.leases()
        except Exception:
            return []

    def _kill_child(self) -> None:
        leases = [lease for lease in self._leases() if lease.host == os.uname().nodename]
        if not leases:
            return self._kill_worker()
        lease = self.rng.choice(leases)
        try:
            os.kill(lease.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.injected["render processes SIGKILLed"] += 1
        self._say(f"SIGKILL render process {lease.pid} of {lease.worker} (bucket {lease.bucket})")

    def _kill_worker(self, sig: int = signal.SIGKILL) -> None:
        worker = self.rng.choice(self.workers)
        worker.kill(sig)
        name = "SIGKILL" if sig == signal.SIGKILL else "SIGTERM"
        self.injected[f"whole workers {name}ed"] += 1
        self._say(f"{name} worker {worker.name} (process group); restarting it in 2s")
        self._done.wait(2.0)
        worker.stop(grace=15.0)
        worker.start()

    def _term_worker(self) -> None:
        self._kill_worker(signal.SIGTERM)

    def _kill_redis(self) -> None:
        self.redis_server.kill()
        self.injected["Redis SIGKILLed and restarted"] += 1
        self._say("SIGKILL Redis; restarting it in 2s")
        self._done.wait(2.0)
        self.redis_server.start()
        self._say("Redis is back")
