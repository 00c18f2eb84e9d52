"""Command line: `submit` renders a scene on the farm; `farm` holds it and its friends.

Argument parsing and printing only; the work happens in farm.job, farm.local and friends.
Every error a user can cause ends as one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

from farm import defaults
from farm.buckets import ORDERS
from farm.exceptions import BrokerError, FarmError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scene", help="scene file (JSON, format version 1)")
    parser.add_argument("-o", "--output", required=True, help="image to write: .png (sRGB, 8-bit) or .exr (linear float)")
    parser.add_argument("--spp", type=int, help="samples per pixel (overrides the scene's film.spp)")
    parser.add_argument("--bucket-size", type=int, default=defaults.BUCKET_SIZE,
                        help=f"bucket side in pixels (default {defaults.BUCKET_SIZE}, FARM_BUCKET_SIZE)")
    parser.add_argument("--order", choices=ORDERS, default=defaults.BUCKET_ORDER,
                        help=f"order buckets are handed out in (default {defaults.BUCKET_ORDER})")
    parser.add_argument("--broker", default=defaults.BROKER_URL or None,
                        help="Redis URL of a running farm (default FARM_BROKER_URL); without one, an embedded "
                             "Redis and --workers local workers are started")
    parser.add_argument("--workers", type=int, default=defaults.LOCAL_WORKERS,
                        help=f"local workers in embedded mode (default {defaults.LOCAL_WORKERS}, FARM_WORKERS)")
    parser.add_argument("--device", help="OpenCL device of the local workers: auto, gpu, cpu or a name (FARM_DEVICE)")
    parser.add_argument("--report", help="write a JSON report of the job to this path")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the client does")


def submit_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="submit", description="Render a scene on the farm, bucket by bucket.")
    _add_render_options(parser)
    return parser


def submit_main(argv: list[str] | None = None) -> int:
    """Entry point of `submit`."""
    args = submit_parser().parse_args(argv)
    return _run_guarded("submit", _submit, args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `farm`: submit, devices, bench."""
    parser = argparse.ArgumentParser(prog="farm", description="Distributed rendering on Celery, Redis and OpenCL.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_render_options(commands.add_parser("submit", help="render a scene (same as the submit command)"))
    commands.add_parser("devices", help="list the OpenCL devices this machine has")
    bench = commands.add_parser("bench", help="measure the kernel and the farm's efficiency")
    from farm.bench import add_arguments

    add_arguments(bench)
    args = parser.parse_args(argv)
    if args.command == "submit":
        return _run_guarded("submit", _submit, args)
    if args.command == "devices":
        return _run_guarded("farm devices", _devices, args)
    from farm.bench import run as run_bench

    return _run_guarded("farm bench", run_bench, args)


def _run_guarded(program: str, function, args) -> int:
    """Run a command; a FarmError becomes one line and exit 2, Ctrl-C exit 130."""
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return function(args)
    except FarmError as exc:
        print(f"{program}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except _broker_errors() as exc:
        print(f"{program}: error: lost the connection to the broker: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _broker_errors() -> tuple[type[BaseException], ...]:
    """Connection failures of redis-py and kombu: the broker went away mid-command."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, OperationalError)


def connect(url: str):
    """A Redis client for `url`, proven reachable within the connect timeout."""
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=defaults.CONNECT_TIMEOUT, socket_timeout=30, health_check_interval=30
        )
        client.ping()
    except ValueError as exc:
        raise BrokerError(f"invalid broker URL {url!r}: {exc}") from None
    except redis.RedisError as exc:
        raise BrokerError(f"cannot reach broker {url}: {exc}") from None
    return client


def _submit(args) -> int:
    from farm.film import check_output_path
    from farm.scene import load_scene

    output = check_output_path(args.output)
    if args.report:
        check_report_path(args.report)
    if args.spp is not None and not 1 <= args.spp <= defaults.MAX_SPP:
        raise FarmError(f"--spp must be between 1 and {defaults.MAX_SPP}, got {args.spp}")
    if not defaults.MIN_BUCKET_SIZE <= args.bucket_size <= defaults.MAX_BUCKET_SIZE:
        raise FarmError(
            f"--bucket-size must be between {defaults.MIN_BUCKET_SIZE} and {defaults.MAX_BUCKET_SIZE}, got {args.bucket_size}"
        )
    scene, document = load_scene(args.scene, spp=args.spp)
    if scene.assets:
        from farm.assets import FolderAssets
        from farm.scene.pack import check_files

        check_files(scene, FolderAssets(Path(args.scene).parent, scene.assets))

    from farm.local import LocalFarm

    local = None
    with contextlib.ExitStack() as stack:
        if args.broker:
            broker_url = args.broker
        else:
            env = {"FARM_DEVICE": args.device} if args.device else None
            _status(args, f"starting an embedded Redis and {args.workers} local worker(s)...")
            local = stack.enter_context(LocalFarm(args.workers, env=env))
            broker_url = local.broker_url
        redis_client = connect(broker_url)

        from farm.app import app
        from farm.tasks import render_bucket

        app.conf.broker_url = broker_url
        if local is not None:
            local.wait_ready(app)
        return _render(args, app, redis_client, render_bucket, scene, document, output, local)


def _render(args, app, redis_client, task, scene, document, output: Path, local) -> int:
    from farm.job import start_job

    from farm.assets import FolderAssets

    assets = FolderAssets(Path(args.scene).parent, scene.assets)
    run = start_job(redis_client, task, scene, document, args.bucket_size, args.order, assets)
    progress = _progress(args, run.total)
    try:
        run.collect(
            on_bucket=lambda record: progress.update(1) if progress else None,
            check_alive=local.check_alive if local is not None else None,
        )
    except BaseException:
        if progress:
            progress.close()
        with contextlib.suppress(Exception):  # the broker may be what failed
            run.job.cancel()
        _save_partial(run, output)
        raise
    if progress:
        progress.close()
    output = run.film.write(output)
    if args.report:
        Path(args.report).write_text(json.dumps(run.report(), indent=2) + "\n")
    _summary(run, output)
    return 0


def _progress(args, total: int):
    if args.quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="bucket", desc="render", file=sys.stderr, dynamic_ncols=True)


def _save_partial(run, output: Path) -> None:
    """Keep what was rendered before a failure: `<name>.partial<ext>` beside the output."""
    if not run.records:
        return
    partial = output.with_name(f"{output.stem}.partial{output.suffix}")
    with contextlib.suppress(FarmError):
        run.film.write(partial)
        print(f"saved {len(run.records)}/{run.total} finished buckets to {partial}", file=sys.stderr)


def _summary(run, output: Path) -> None:
    meta = run.job.meta
    print(
        f"{output}: {meta.width}x{meta.height}, {meta.spp} spp, {run.total} buckets of {meta.bucket_size}px "
        f"in {run.wall_seconds:.2f}s (job {meta.job_id})"
    )
    devices = {r.worker: r.device for r in run.records.values()}
    for worker, count in sorted(run.workers().items()):
        print(f"  {worker}: {count} buckets on {devices[worker]}")
    duplicates = run.job.duplicates()
    if duplicates:
        print(f"  {duplicates} duplicate tiles discarded")


def check_report_path(path: str) -> None:
    folder = Path(path).parent
    if str(folder) and not folder.is_dir():
        raise FarmError(f"{path}: folder {folder} does not exist")


def _status(args, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def _devices(args) -> int:
    from farm.device import available

    found = available()
    if not found:
        raise FarmError("no OpenCL device found; install pocl-binary-distribution")
    for platform, name, kind in found:
        print(f"{kind:5} {name}  [{platform}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
