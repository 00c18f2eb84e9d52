"""Command line: `submit` renders a scene on the farm; `farm` holds it and its friends.

Argument parsing and printing only; the work happens in farm.client.run, farm.client.local and friends.
Every error a user can cause ends as one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import logging
import signal
import sys
import time
from pathlib import Path

from farm import defaults
from farm.buckets import ORDERS
from farm.exceptions import FarmError, JobError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM: the command stops as after Ctrl-C (job cancelled, what was rendered saved,
    the embedded farm closed), without asking."""


def _terminate(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up short
    raise Terminated()


INTERRUPT_CHOICES = ("ask", "cancel", "detach")


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scene", nargs="?", help="scene file: JSON (format version 1), or glTF 2.0 (.gltf, .glb)")
    parser.add_argument("-o", "--output", required=True, help="image to write: .png (sRGB, 8-bit) or .exr (linear float)")
    parser.add_argument("--resume", metavar="JOB",
                        help="collect a job already on the farm (its client died or detached) instead of a scene")
    parser.add_argument("--on-interrupt", choices=INTERRUPT_CHOICES, default="ask",
                        help="what Ctrl-C does to the job: ask (default; cancel when there is no terminal to "
                             "ask on), cancel, or detach (it keeps rendering; `farm collect JOB` fetches it)")
    parser.add_argument("--spp", type=int, help="samples per pixel (overrides the scene's film.spp)")
    parser.add_argument("--resolution", type=_resolution, metavar="WxH",
                        help="image size in pixels, e.g. 1920x1080 (overrides the scene's film)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="render even if textures or environment maps are missing, with those maps turned "
                             "off (each named in a warning); by default a missing file stops the submit")
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
    _add_output_options(parser)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--aov", default="", metavar="LIST",
                        help="also render these layers, comma-separated, into the EXR output: albedo, normal "
                             "(at the first hit that is not a mirror or smooth glass; world space), depth "
                             "(distance along the camera ray), variance (of each pixel's mean luminance), material (index of "
                             "the material the pixel's first sample hits first; -1: none)")
    parser.add_argument("--progressive", action="store_true",
                        help="render the whole frame in rounds of 1, 2, 4, ... samples per pixel, rewriting the "
                             "output after each; Ctrl-C keeps the last complete round. The last round is the "
                             "same bits as one render of all the samples")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="with --progressive or --noise, stop the rounds when SECONDS have passed: a round "
                             "that would not finish in the time left is cut to the share of its samples that fits "
                             "(or not started where none does), and one still rendering at the limit is cancelled; "
                             "the first round always finishes. The output holds the last complete round")
    parser.add_argument("--split-tail", action="store_true",
                        help="send the frame's last N buckets (N: the live workers) as N parts of their samples "
                             "each (at most FARM_MAX_SPLIT), so the last bucket does not keep the others idle; "
                             "the parts add up to the same bits as the whole bucket")
    parser.add_argument("--noise", type=float, metavar="E",
                        help="render in rounds until every 8-px cell's relative standard error (RMS over its "
                             "pixels) is at most E, e.g. 0.01: the first round gives every pixel --min-spp "
                             "samples, each next one only the cells still above E, up to --max-spp. The EXR "
                             "gets the variance layer it steered by")
    parser.add_argument("--min-spp", type=int, default=defaults.NOISE_MIN_SPP,
                        help=f"with --noise, samples every pixel gets (default {defaults.NOISE_MIN_SPP})")
    parser.add_argument("--max-spp", type=int,
                        help="with --noise, the most samples a pixel gets (default: the scene's spp)")
    denoising = parser.add_mutually_exclusive_group()  # one `denoise` setting: None, "guided" or "prefiltered"
    denoising.add_argument("--denoise", action="store_const", const="guided",
                           help="denoise the assembled frame with Intel Open Image Denoise (pyoidn), guided by "
                                "albedo and normal; an EXR keeps the raw beauty as its layer `raw`")
    denoising.add_argument("--denoise-prefilter", dest="denoise", action="store_const", const="prefiltered",
                              help="--denoise with the albedo and normal guides denoised first (OIDN's prefiltering, "
                                "cleanAux): better where the guides are noisy (depth of field, glass, fine texture), "
                                "worse where they are clean; `farm bench --quality` measures both on a scene")
    parser.add_argument("--watch", nargs="?", const="127.0.0.1:0", metavar="[HOST:]PORT", type=_watch_address,
                        help="serve a live view of the render (the frame filling in, the buckets rendering with "
                             "their workers, progress, notices, the farm's jobs) and print its URL; on 127.0.0.1 "
                             "and any free port by default; bound to another address it asks for a token "
                             "(FARM_WATCH_TOKEN, or a random one in the printed URL)")
    parser.add_argument("--report", help="write a report of the job to this path: JSON, or with .html the page of "
                                         "`farm report` (bucket map, timeline, figures)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the client does")


def _add_broker_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", default=defaults.BROKER_URL or None,
                        help="Redis URL of the farm (default FARM_BROKER_URL)")


def _watch_address(text: str) -> tuple[str, int]:
    from farm.client.watch import parse_address

    try:
        return parse_address(text)
    except FarmError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--watch: ")) from None


def _resolution(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from None
    return width, height


def _aovs(text: str) -> tuple[str, ...]:
    """--aov's comma-separated names, each one of AOVS."""
    from farm.protocol.description import AOVS

    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in AOVS]
    if unknown:
        raise FarmError(f"--aov: unknown AOV {', '.join(unknown)} (known: {', '.join(AOVS)})")
    return names


def submit_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="submit", description="Render a scene on the farm, bucket by bucket.")
    _add_render_options(parser)
    return parser


def submit_main(argv: list[str] | None = None) -> int:
    """Entry point of `submit`."""
    args = submit_parser().parse_args(argv)
    return _run_guarded("submit", _submit, args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `farm`: submit, collect, cancel, status, secret, devices, bench, chaos."""
    parser = argparse.ArgumentParser(prog="farm", description="Distributed rendering on Celery, Redis and OpenCL.")
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="render a scene (same as the submit command)")
    _add_render_options(submit)
    submit.set_defaults(program="submit", handler=_submit)
    collect = commands.add_parser("collect", help="collect a job already on the farm and write its image")
    collect.add_argument("job", help="job id (see `farm status`)")
    collect.add_argument("-o", "--output", required=True, help="image to write: .png or .exr")
    _add_broker_option(collect)
    _add_output_options(collect)
    collect.set_defaults(program="farm collect", handler=_collect)
    cancel = commands.add_parser("cancel", help="cancel a job: queued buckets dropped, running ones stopped")
    cancel.add_argument("job", help="job id (see `farm status`)")
    _add_broker_option(cancel)
    cancel.set_defaults(program="farm cancel", handler=_cancel)
    status = commands.add_parser("status", help="list the farm's jobs with their progress, and its workers")
    _add_broker_option(status)
    status.set_defaults(program="farm status", handler=_status_command)
    secret = commands.add_parser("secret", help="print a new secret for FARM_SECRET or FARM_SECRET_FILE "
                                                "(only holders of it can put pixels into a frame)")
    secret.set_defaults(program="farm secret", handler=_new_secret)
    watch = commands.add_parser("watch", help="serve the live view of a job another client is rendering, until "
                                              "it ends (the tiles as they are stored, lost deliveries and failures "
                                              "from the job's record)")
    watch.add_argument("job", help="job id (see `farm status`)")
    watch.add_argument("--watch", dest="address", default="127.0.0.1:0", type=_watch_address, metavar="[HOST:]PORT",
                       help="where to serve it (default 127.0.0.1 and a free port)")
    _add_broker_option(watch)
    watch.set_defaults(program="farm watch", handler=_watch_job)
    report = commands.add_parser("report", help="draw a job's report (submit --report) as an HTML page: the bucket "
                                                "map by worker, the timeline of every bucket, the figures")
    report.add_argument("report", help="the JSON report of `submit --report` or `farm collect --report`")
    report.add_argument("-o", "--output", required=True, help="the page to write (.html)")
    report.set_defaults(program="farm report", handler=_report_page)
    devices = commands.add_parser("devices", help="list the OpenCL devices this machine has")
    devices.set_defaults(program="farm devices", handler=_devices)
    _add_tool_commands(commands, sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    return _run_guarded(args.program, args.handler, args)


TOOL_COMMANDS = "farm.commands"  # the entry-point group of commands the tools add (pyproject.toml)


def _add_tool_commands(commands, argv: list[str]) -> None:
    """The tools' commands (`farm bench`, `farm chaos`), from the entry points of
    TOOL_COMMANDS: a module with HELP, add_arguments(parser) and run(args). Only the
    command asked for is imported (all of them for `farm --help`)."""
    from importlib.metadata import entry_points

    asked = next((arg for arg in argv if not arg.startswith("-")), None)
    for point in sorted(entry_points(group=TOOL_COMMANDS), key=lambda point: point.name):
        if asked not in (point.name, None):
            commands.add_parser(point.name, help=f"(a tool: `farm {point.name} --help`)", add_help=False)
            continue
        tool = point.load()
        parser = commands.add_parser(point.name, help=tool.HELP)
        tool.add_arguments(parser)
        parser.set_defaults(program=f"farm {point.name}", handler=tool.run)


def _run_guarded(program: str, function, args) -> int:
    """Run a command; a FarmError becomes one line and exit 2, Ctrl-C exit 130.
    `kill -USR1` prints every thread's stack to stderr, for a client that seems stuck."""
    faulthandler.register(signal.SIGUSR1)
    signal.signal(signal.SIGTERM, _terminate)
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
        from farm.protocol.broker import refusal

        line = refusal(exc, getattr(args, "broker", None) or "") or f"lost the connection to the broker: {exc}"
        print(f"{program}: error: {line}", file=sys.stderr)
        return EXIT_ERROR
    except Terminated:
        print(f"{program}: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _broker_errors() -> tuple[type[BaseException], ...]:
    """Connection failures of redis-py and kombu (the broker went away mid-command), and
    the broker's refusals (a login, an ACL denial), which broker.refusal tells apart."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoPermissionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, OperationalError, NoPermissionError)


def _submit(args) -> int:
    from farm.client.film import check_output_path
    from farm.scene.load import load_scene

    if args.resume:  # _collect checks the output and report paths
        if args.scene:
            raise FarmError("give a scene or --resume JOB, not both")
        return _collect(argparse.Namespace(**{**vars(args), "job": args.resume}))
    output = check_output_path(args.output)
    if args.report:
        check_report_path(args.report)
    args.aov = _aovs(args.aov)
    if args.aov and output.suffix.lower() != ".exr":
        raise FarmError(f"--aov writes layers of an EXR image; {output.name} is not one (use -o NAME.exr)")
    if not args.scene:
        raise FarmError("no scene given (or --resume JOB to collect a job already on the farm)")
    if args.spp is not None and not 1 <= args.spp <= defaults.MAX_SPP:
        raise FarmError(f"--spp must be between 1 and {defaults.MAX_SPP}, got {args.spp}")
    if args.noise is not None:
        if not 0 < args.noise < 1:
            raise FarmError(f"--noise is a relative standard error between 0 and 1 (e.g. 0.01), got {args.noise:g}")
        if args.progressive:
            raise FarmError("--noise renders in rounds of its own; leave out --progressive")
    if args.time_limit is not None:
        if not args.time_limit > 0:
            raise FarmError(f"--time-limit must be a positive number of seconds, got {args.time_limit:g}")
        if not args.progressive and args.noise is None:
            raise FarmError("--time-limit ends rounds: add --progressive or --noise")
    if args.split_tail and (args.progressive or args.noise is not None):
        raise FarmError("--split-tail splits a render of one round; leave out --progressive and --noise")
    for name in ("min_spp", "max_spp"):
        value = getattr(args, name)
        if value is not None and not 2 <= value <= defaults.MAX_SPP:
            raise FarmError(f"--{name.replace('_', '-')} must be between 2 and {defaults.MAX_SPP}, got {value}")
    limit = defaults.MAX_RESOLUTION
    if args.resolution and not all(1 <= side <= limit for side in args.resolution):
        raise FarmError(f"--resolution: width and height must be between 1 and {limit} (FARM_MAX_RESOLUTION), "
                        f"got {'x'.join(map(str, args.resolution))}")
    if not defaults.MIN_BUCKET_SIZE <= args.bucket_size <= defaults.MAX_BUCKET_SIZE:
        raise FarmError(
            f"--bucket-size must be between {defaults.MIN_BUCKET_SIZE} and {defaults.MAX_BUCKET_SIZE}, got {args.bucket_size}"
        )
    scene, document = load_scene(args.scene, spp=args.spp, allow_missing=args.allow_missing,
                                 resolution=args.resolution)
    for warning in scene.warnings:
        print(f"submit: warning: {warning}", file=sys.stderr)
    from farm.protocol.jobs import Job

    Job.describe(scene, args.bucket_size, args.order)  # the frame's limits, before anything starts
    assets = None
    if scene.assets:
        from farm.protocol.assets import FolderAssets
        from farm.scene.files import check_files

        assets = FolderAssets(Path(args.scene).parent, scene.assets)
        check_files(scene, assets)

    from farm.client.local import LocalFarm

    local = None
    with contextlib.ExitStack() as stack:
        if args.broker:
            broker_url = args.broker
        else:
            env = {"FARM_DEVICE": args.device} if args.device else None
            _status(args, f"starting an embedded Redis and {args.workers} local worker(s)...")
            local = stack.enter_context(LocalFarm(args.workers, env=env))
            broker_url = local.broker_url
        redis_client, app = _farm(broker_url)
        if local is not None:
            local.wait_ready(app)
        from farm.client.run import start_job

        if args.watch:
            from farm.client.watch import LiveView

            args.view = LiveView(*args.watch, redis=redis_client)
            stack.callback(args.view.close)
            _status(args, f"watch: {args.view.start()}")
        aovs = tuple(dict.fromkeys(args.aov + (("albedo", "normal") if args.denoise else ())))  # the denoiser's guides
        if args.noise is not None:
            aovs = tuple(dict.fromkeys(aovs + ("variance",)))  # its luminance squares steer the rounds
        if not args.progressive and args.noise is None:
            split = _split(args, redis_client, scene) if args.split_tail else (0, 0)
            run = start_job(redis_client, app, scene, document, args.bucket_size, args.order, assets, aovs=aovs,
                            split=split)
            return _collect_run(args, run, output, local)
        from farm.client.film import Film

        film, run = Film(scene.film.width, scene.film.height, aovs, scene.film.spp), None
        from farm.client.timelimit import RoundClock, TimeUp

        clock = RoundClock(args.time_limit, scene.film.width, scene.film.height) if args.time_limit else None
        kept = None  # what the output holds: the last complete round
        for number, plan, what in _rounds(args, scene, film):
            last = False
            if clock is not None and run is not None:  # the first round always renders: an image at all
                fitted = clock.fit(plan)
                if fitted is None:
                    _status(args, f"time limit: no time left for round {number} ({clock.left():.1f}s left)")
                    break
                if fitted is not plan:
                    plan, last = fitted, True
                    first, end = plan.bounds
                    what = (f"samples {first} to {end} of {scene.film.spp}" if plan.uniform_range else
                            f"cells to at most {end} samples per pixel") + f" (what fits in the {clock.left():.1f}s left)"
            if run is not None:  # its sums are in the film; the last round stays for `farm status`
                with contextlib.suppress(JobError):
                    run.job.forget()
            label = f"round {number}: {what}"
            _status(args, label)
            run = start_job(redis_client, app, scene, document, args.bucket_size, args.order, assets, aovs=aovs,
                            plan=plan, film=film)
            began = time.perf_counter()
            try:
                _collect_run(args, run, output, local, deadline=clock.deadline if clock and kept else None, label=label)
            except TimeUp:
                _status(args, f"time limit: round {number} cancelled at {args.time_limit:g}s")
                break
            kept = (number, film.counts)
            if clock is not None:
                clock.done(plan, time.perf_counter() - began)
            if last:
                break
        if clock is not None:
            counts = kept[1]
            spp = f"{int(counts.max())} samples per pixel" if counts.min() == counts.max() else \
                f"{float(counts.mean()):.1f} samples per pixel in the mean"
            _status(args, f"time limit: {output} holds round {kept[0]}, {spp}, after {clock.elapsed():.1f}s")
        return 0


def _split(args, redis_client, scene) -> tuple[int, int]:
    """--split-tail's (tail buckets, parts): as many of each as live workers, within the
    frame's buckets, its samples and MAX_SPLIT; (0, 0) where fewer than two workers live."""
    from farm.buckets import count
    from farm.protocol import registry

    workers = sum(not worker.bad for worker in registry.workers(redis_client).values())
    parts = min(workers, defaults.MAX_SPLIT, scene.film.spp)
    if parts < 2:
        return 0, 0
    return min(workers, count(scene.film.width, scene.film.height, args.bucket_size)), parts


def _rounds(args, scene, film):
    """(number, plan, what it renders) of each round of `submit --progressive` or `--noise`;
    `film` is the rounds' film, which a noise target's plans read."""
    from farm.client import adaptive
    from farm.protocol.plans import Plan

    width, height, spp = scene.film.width, scene.film.height, scene.film.spp
    if args.noise is None:
        rounds = progressive_rounds(spp)
        for number, (first, end) in enumerate(rounds, 1):
            yield f"{number}/{len(rounds)}", Plan.uniform(width, height, first, end), \
                f"samples {first} to {end} of {spp}"
        return
    max_spp = args.max_spp or spp
    for number, plan in enumerate(adaptive.plans(width, height, args.noise, args.min_spp, max_spp, film), 1):
        busy = plan.ranges[..., 1] > plan.ranges[..., 0]
        taken = plan.ranges[..., 1][busy]
        yield str(number), plan, (f"{int(busy.sum())} of {busy.size} cells to {int(taken.min())}-{int(taken.max())} "
                                  f"samples per pixel (target {args.noise:g}, at most {max_spp})")


def progressive_rounds(spp: int) -> list[tuple[int, int]]:
    """The samples of each round of `submit --progressive`: 1, 2, 4, ... per pixel in all,
    the last round ending at spp."""
    ends, total = [], 1
    while total < spp:
        ends.append(total)
        total *= 2
    ends.append(spp)
    return list(zip([0] + ends[:-1], ends))


def _farm(broker_url: str):
    """A patient Redis client and the Celery app (to send tasks by name), both pointed at
    `broker_url`."""
    from farm.app import app
    from farm.protocol.broker import connect

    redis_client = connect(broker_url)
    app.conf.broker_url = broker_url
    return redis_client, app


def _collect(args) -> int:
    """`farm collect JOB` (and `submit --resume JOB`): reconcile a job and write its image."""
    from farm.client.film import check_output_path
    from farm.client.run import resume

    output = check_output_path(args.output)
    if args.report:
        check_report_path(args.report)
    if not args.broker:
        raise FarmError("collecting a job needs the farm's broker: --broker URL or FARM_BROKER_URL")
    redis_client, app = _farm(args.broker)
    run = resume(redis_client, app, args.job)
    _status(args, f"job {args.job}: {len(run.job.tiles.stored())}/{run.total} buckets already rendered")
    if args.watch:  # `farm collect JOB --watch`: the live view of any job on the farm
        from farm.client.watch import LiveView

        args.view = LiveView(*args.watch, redis=redis_client)
        _status(args, f"watch: {args.view.start()}")
    try:
        return _collect_run(args, run, output, None)
    finally:
        if args.watch:
            args.view.close()


def _collect_run(args, run, output: Path, local, deadline: float | None = None, label: str = "") -> int:
    """Collect `run` into `output` (`label`: which round it is); past `deadline`
    (perf_counter), cancel it and raise TimeUp."""
    progress = None
    view = getattr(args, "view", None)
    if view is not None:
        view.show(run, label)

    def notice(message: str) -> None:
        (progress.write if progress else print)(message, file=sys.stderr)
        if view is not None:
            view.notice(message)

    def bucket(record) -> None:
        if progress:
            progress.update(1)
        if view is not None:
            view.tile(record)

    from farm.client.timelimit import TimeUp

    def check() -> None:
        if local is not None:
            local.check_alive()
        if deadline is not None and time.perf_counter() >= deadline:
            raise TimeUp()

    try:
        progress = _progress(args, run.total)  # inside: a Ctrl-C while it starts is handled too
        run.collect(on_bucket=bucket, on_notice=notice, check_alive=check)
    except BaseException as exc:
        if progress:
            progress.close()
        if isinstance(exc, TimeUp):  # a planned stop: no question, no partial image
            with contextlib.suppress(Exception):
                run.cancel()
            raise
        if not isinstance(exc, JobError):  # failed or cancelled jobs are over; a live one is cancelled or left
            _stop_or_detach(args, run, local, interrupted=exc)
        with contextlib.suppress(Exception):  # the broker may be what failed
            run.take_stored()
        _save_partial(run, output)
        raise
    if progress:
        progress.close()
    if args.denoise:
        from farm.exceptions import DenoiserUnavailable

        try:
            run.film.denoise(prefilter=args.denoise == "prefiltered")
        except DenoiserUnavailable as exc:
            print(f"submit: warning: {exc}; the raw image is written", file=sys.stderr)
    output = run.film.write(output)
    if args.report:
        _write_report(run.report(), args.report)
    _summary(run, output)
    return 0


def _stop_or_detach(args, run, local, interrupted: BaseException) -> None:
    """After Ctrl-C or SIGTERM (or an error), cancel the job, or leave it rendering for
    `farm collect`; only Ctrl-C asks."""
    choice = "cancel"
    if isinstance(interrupted, KeyboardInterrupt) and local is None:
        choice = args.on_interrupt
        if choice == "ask":
            choice = "cancel" if isinstance(interrupted, Terminated) else _ask_cancel(run.job.job_id)
    if choice == "detach":
        print(f"job {run.job.job_id} keeps rendering; collect it with "
              f"`farm collect {run.job.job_id} -o {args.output}`", file=sys.stderr)
        return
    with contextlib.suppress(Exception):  # the broker may be what failed
        run.cancel()


def _ask_cancel(job_id: str) -> str:
    """Ask on the terminal whether to cancel; without a terminal the job is cancelled."""
    if not sys.stdin.isatty():
        return "cancel"
    try:
        answer = input(f"\ncancel job {job_id}? [Y/n] (n: it keeps rendering for `farm collect`) ")
    except (EOFError, KeyboardInterrupt):
        return "cancel"
    return "detach" if answer.strip().lower() in ("n", "no") else "cancel"


def _cancel(args) -> int:
    from farm.protocol.jobs import Job
    from farm.protocol.queue import BucketQueue

    if not args.broker:
        raise FarmError("cancelling a job needs the farm's broker: --broker URL or FARM_BROKER_URL")
    redis_client, app = _farm(args.broker)
    job = Job.load(redis_client, args.job)
    if job.state:
        raise FarmError(f"job {args.job} is already {job.state}")
    removed = job.cancel(BucketQueue(redis_client, app))
    running = sorted({lease.bucket for lease in job.deliveries.leases()})
    print(f"job {job.job_id} cancelled: {removed} queued bucket(s) dropped, "
          f"{len(running)} running bucket(s) stop within about {defaults.PASS_SECONDS:g}s")
    return 0


def _status_command(args) -> int:
    from farm.protocol import registry

    if not args.broker:
        raise FarmError("farm status needs the farm's broker: --broker URL or FARM_BROKER_URL")
    redis_client, _ = _farm(args.broker)
    lines = job_lines(redis_client)
    print(f"{len(lines)} job(s)")
    for line in lines:
        print(f"  {line}")
    workers = registry.workers(redis_client)
    print(f"{len(workers)} worker(s)")
    for record in sorted(workers.values(), key=lambda w: w.hostname):
        what = f"bad: {record.bad}" if record.bad else ("busy" if record.busy else "idle")
        print(f"  {record.hostname}  {what}")
    return 0


def job_lines(redis_client) -> list[str]:
    """A line per job on the farm, oldest first: state, progress, frame (`farm status`,
    the live view's list)."""
    from farm.protocol.broker import server_time
    from farm.protocol.jobs import Job
    from farm.protocol.record import JobRecord

    jobs, lines = [], []
    for job_id in JobRecord.ids(redis_client):
        with contextlib.suppress(FarmError):
            jobs.append(Job.load(redis_client, job_id))
    now = server_time(redis_client)
    for job in sorted(jobs, key=lambda j: j.meta.created):
        done, total = len(job.tiles.stored()), job.unit_count
        running = len({lease.bucket for lease in job.deliveries.leases() if lease.until >= now})
        state = job.state or ("rendering" if done < total else "complete")
        note = f"  {job.error}" if job.error else ""
        unattended = job.record.unattended()  # its client refreshes it each 30 s
        if not job.state and unattended > 90:
            note = f"  no client for {unattended // 60:.0f} min: `farm collect {job.job_id} -o OUT` picks it up"
        meta = job.meta
        lines.append(f"{job.job_id}  {state:9}  {done}/{total} buckets ({100 * done / total:.0f}%), {running} running  "
                     f"{meta.width}x{meta.height} {meta.spp} spp  created "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(meta.created))}" + note)
    return lines


def _progress(args, total: int):
    if args.quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="bucket", desc="render", file=sys.stderr, dynamic_ncols=True)


def _save_partial(run, output: Path) -> None:
    """Keep what was rendered before a failure: `<name>.partial<ext>` beside the output."""
    if not run.records:
        print("no bucket had finished: no partial image written", file=sys.stderr)
        return
    partial = output.with_name(f"{output.stem}.partial{output.suffix}")
    with contextlib.suppress(FarmError):
        run.film.write(partial)
        print(f"saved {len(run.records)}/{run.total} finished buckets to {partial}", file=sys.stderr)


def _summary(run, output: Path) -> None:
    meta = run.job.meta
    samples = f"{meta.spp} spp"
    if meta.sums:  # a round: the samples it took, and what the frame now has
        first, end = meta.samples
        counts = run.film.counts
        samples = (f"samples {first} to {end} this round (per cell), {float(counts.mean()):.1f} spp in the mean now"
                   if meta.cell else f"samples {first} to {end} this round")
    print(
        f"{output}: {meta.width}x{meta.height}, {samples}, {run.total} buckets of {meta.bucket_size}px "
        f"in {run.wall_seconds:.2f}s (job {meta.job_id})"
    )
    devices = {r.worker: r.device for r in run.records.values()}
    for worker, count in sorted(run.workers().items()):
        print(f"  {worker}: {count} buckets on {devices[worker]}")
    report = run.report()
    faults = [
        (report["lost_deliveries"], "bucket deliveries lost with their worker"),
        (report["resent"], "buckets sent again"),
        (report["copies"], "copies of slow buckets"),
        (report["duplicates"], "duplicate tiles discarded"),
        (report["invalid_tiles"], "invalid tiles rejected"),
    ]
    for number, what in faults:
        if number:
            print(f"  {number} {what}")


def _write_report(report: dict, path: str) -> None:
    """The report as JSON, or as the page `farm report` draws where the path ends in .html."""
    if Path(path).suffix.lower() in (".html", ".htm"):
        from farm.client import report as pages

        pages.write(report, path)
    else:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")


def _watch_job(args) -> int:
    """`farm watch JOB`: the live view of a job without collecting it: its tiles are read
    from Redis as they are stored (its events stay for the client that collects it)."""
    from farm.client.run import JobRun, film_of
    from farm.client.watch import POLL_SECONDS, LiveView
    from farm.protocol.jobs import Job, JobState

    if not args.broker:
        raise FarmError("farm watch needs the farm's broker: --broker URL or FARM_BROKER_URL")
    redis_client, _ = _farm(args.broker)
    job = Job.load(redis_client, args.job)
    meta = job.meta
    film, wanted = film_of(job)
    run = JobRun(job, film, queue=None, wanted=wanted)
    view = LiveView(*args.address, redis=redis_client)
    print(f"watch: {view.start()}", file=sys.stderr)
    view.show(run, f"a round: samples {meta.samples[0]} to {meta.samples[1]}" + (" (per cell)" if meta.cell else "")
              if meta.sums else "")
    run._on_bucket = view.tile
    seen: dict[tuple[str, bytes], bytes] = {}
    try:
        while True:
            state = job.refresh()
            run.take_stored()
            troubles = job.deliveries.troubles()
            for part, say in (("crashes", "bucket {}: a delivery lost with its worker or render process ({} so far)"),
                              ("errors", "bucket {} failed: {}")):  # the notices its client tells
                for field, value in troubles[part].items():
                    if seen.get((part, field)) != value:
                        seen[(part, field)] = value
                        view.notice(say.format(field.decode(), value.decode(errors="replace")))
            if state or len(run.records) >= run.total:
                break
            time.sleep(POLL_SECONDS)
    finally:
        view.close()
    print(f"job {job.job_id}: {state or JobState.DONE}, {len(run.records)}/{run.total} buckets")
    return 0


def _report_page(args) -> int:
    """`farm report REPORT.json -o report.html`."""
    from farm.client import report as pages

    check_report_path(args.output)
    report = pages.read(args.report)
    written = pages.write(report, args.output)
    print(f"{written}: the bucket map, the timeline and the figures of job {report['job_id']}")
    return 0


def check_report_path(path: str) -> None:
    folder = Path(path).parent
    if str(folder) and not folder.is_dir():
        raise FarmError(f"{path}: folder {folder} does not exist")


def _status(args, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def _new_secret(args) -> int:
    from farm.protocol import secret

    print(secret.new())
    return 0


def _devices(args) -> int:
    from farm.worker.device import available

    found = available()
    if not found:
        raise FarmError("no OpenCL device found; install pocl-binary-distribution")
    for platform, name, kind in found:
        print(f"{kind:5} {name}  [{platform}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
