"""The bodies of `submit` and `farm collect`: a scene (or a job already on the farm) to
written images, on a farm given by its broker or an embedded one started here."""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import replace
from pathlib import Path

from farm import defaults, parts
from farm.client.arguments import aovs
from farm.exceptions import FarmError


def submit(args) -> int:
    from farm.client.film import check_output_path
    from farm.scene.load import load_scene

    if args.resume:  # _collect checks the output and report paths
        if args.scene:
            raise FarmError("give a scene or --resume JOB, not both")
        return collect(argparse.Namespace(**{**vars(args), "job": args.resume}))
    output = check_output_path(args.output)
    if args.report:
        check_report_path(args.report)
    from farm import settings

    chosen_size = args.bucket_size is not None or settings.source("FARM_BUCKET_SIZE") != "default"
    if args.bucket_size is None:  # 0 is a size given, and refused below
        args.bucket_size = defaults.BUCKET_SIZE
    args.aov = aovs(args.aov)
    if args.aov and output.suffix.lower() != ".exr":
        raise FarmError(f"--aov writes layers of an EXR image; {output.name} is not one (use -o NAME.exr)")
    if not args.scene:
        raise FarmError("no scene given (or --resume JOB to collect a job already on the farm)")
    if args.spp is not None and not 1 <= args.spp <= defaults.MAX_SPP:
        raise FarmError(f"--spp must be between 1 and {defaults.MAX_SPP}, got {args.spp}")
    options = render_options(args)
    options.check()
    limit = defaults.MAX_RESOLUTION
    if args.resolution and not all(1 <= side <= limit for side in args.resolution):
        raise FarmError(f"--resolution: width and height must be between 1 and {limit} (FARM_MAX_RESOLUTION), "
                        f"got {'x'.join(map(str, args.resolution))}")
    scene, document = load_scene(args.scene, spp=args.spp, allow_missing=args.allow_missing,
                                 resolution=args.resolution, animation=args.animation,
                                 camera=args.camera)
    for warning in scene.warnings:
        print(f"submit: warning: {warning}", file=sys.stderr)
    from farm.protocol.jobs import Job

    Job.describe(scene, args.bucket_size, args.order)  # the frame's limits, before anything starts
    frames = None
    if getattr(args, "detach", False) and not args.broker:
        raise FarmError("--detach hands the job to a farm's manager: give its broker (--broker URL or "
                        "FARM_BROKER_URL)")
    if args.frames is not None or getattr(args, "detach", False):  # a detached still: a shot of one frame
        from farm.client.shot import plan_shot

        frames = plan_shot(scene, document, args.scene, args.frames or "0", args.fps, output, args.skip_existing)
        if not frames:
            print(f"submit: every frame of --frames {args.frames} is written already (--skip-existing)", file=sys.stderr)
            return 0
    elif args.skip_existing:
        raise FarmError("--skip-existing leaves out frames of a shot: add --frames")
    if getattr(args, "name", None) is not None and not getattr(args, "detach", False):
        raise FarmError("--name names a job handed to the manager: add --detach")
    assets = None
    if scene.assets:
        from farm.protocol.assets import FolderAssets
        from farm.scene.files import check_files

        assets = FolderAssets(Path(args.scene).parent, scene.assets)
        check_files(scene, assets)

    from farm.client.local import LocalFarm
    from farm.client.render import FrameRender

    local = None
    with contextlib.ExitStack() as stack:
        if args.broker:
            broker_url = args.broker
        else:
            env = {"FARM_DEVICE": args.device} if args.device else None
            parts.require_worker(LocalFarm.WHAT)
            status_line(args, f"starting an embedded Redis and {args.workers} local worker(s)...")
            local = stack.enter_context(LocalFarm(args.workers, env=env))
            broker_url = local.broker_url
        redis_client, app = connect_farm(broker_url)
        if local is not None:
            local.wait_ready(app)
        check_alive = local.check_alive if local is not None else None
        if not chosen_size:
            options = _sized(args, redis_client, scene, frames, options, local is not None)
        if frames is not None:
            from farm.client.shot import ShotRender
            from farm.protocol.shots import ShotRecord

            record = ShotRecord.create(redis_client, document, scene.digest, tuple(f.number for f in frames), args.fps,
                                       options.bucket_size, options.order, options.kept(), options.priority)
            if args.detach:
                return _detach(redis_client, record, scene, assets, output, args)
            if local is None:
                status_line(args, f"shot {record.shot_id}: {len(frames)} frames (should this command stop, "
                                  f"`farm collect {record.shot_id} -o {args.output}` goes on with them)")
            listener = terminal_listener(args, redis_client, stack, local=local is not None, frames=frames)
            ShotRender(redis_client, app, document, frames, assets, options, listener, check_alive, record).render()
            return 0
        listener = terminal_listener(args, redis_client, stack, local=local is not None)
        FrameRender(redis_client, app, scene, document, assets, options, output, listener, check_alive).render()
        return 0


def _sized(args, redis_client, scene, frames, options, local: bool):
    """The options with the bucket size the farm picks where none was given: a shot of many
    small frames renders a frame a bucket (shot_bucket_size); else buckets sized by the
    workers' speeds (farm.client.sizing), a still's tail split across the workers
    (`--split-tail`; a shot's next frames fill them instead); else BUCKET_SIZE."""
    film = scene.film
    if frames is not None:
        from farm.client.shot import shot_bucket_size

        whole = shot_bucket_size(redis_client, frames, args.bucket_size, local and args.workers)
        if whole >= max(max(f.scene.film.width, f.scene.film.height) for f in frames):  # a frame a bucket
            args.bucket_size = whole
            return replace(options, bucket_size=whole)
    from farm.client.sizing import self_sized
    from farm.protocol import registry

    split = not options.in_rounds and (frames is None or len(frames) == 1)
    shot = frames is not None and len(frames) >= 2 * registry.healthy(redis_client)  # frames fill the workers
    found = self_sized(redis_client, scene.digest, film.width, film.height, film.spp, covered=split or shot,
                       split=split)
    if found is None:
        return options
    args.bucket_size, what = found
    status_line(args, f"submit: {what}")
    return replace(options, bucket_size=args.bucket_size, split_tail=options.split_tail or split)


def _detach(redis_client, record, scene, assets, output: Path, args) -> int:
    """`submit --detach`: the shot's files uploaded now (its frames start on the manager),
    the shot handed over, its id and its page printed."""
    from farm.manager.jobs import hand_over, manager_url
    from farm.protocol.assets import RedisAssets

    if scene.assets:
        RedisAssets.upload(redis_client, scene.assets, assets, defaults.JOB_TTL)
    hand_over(redis_client, record.shot_id, output.name, args.name, args.priority, len(record.meta.frames))
    page = manager_url(redis_client)
    print(f"{record.shot_id}: handed to the farm's manager (`farm wait {record.shot_id}`, "
          f"`farm fetch {record.shot_id} -o DIR`)" + (f"; its page: {page}/jobs/{record.shot_id}" if page else ""))
    return 0


def render_options(args):
    from farm.client.render import RenderOptions

    return RenderOptions(
        bucket_size=getattr(args, "bucket_size", defaults.BUCKET_SIZE), order=getattr(args, "order", defaults.BUCKET_ORDER),
        aovs=tuple(args.aov), denoise=args.denoise, progressive=args.progressive, noise=args.noise,
        min_spp=args.min_spp, max_spp=args.max_spp, time_limit=args.time_limit, split_tail=args.split_tail,
        report=args.report, shutter=shutter_seconds(args),
        priority=defaults.DEFAULT_PRIORITY if getattr(args, "priority", None) is None else args.priority,
        max_workers=getattr(args, "max_workers", None), allow_mixed=getattr(args, "allow_mixed_devices", False),
        require=_required(getattr(args, "require", None)),
    )


def _required(text: str | None) -> tuple[str, ...]:
    from farm.protocol.pools import parse_tags

    return parse_tags(text, "--require") if text else ()


def shutter_seconds(args) -> tuple[float, float]:
    """--shutter (frames) in seconds at --fps; closed where --fps is no rate (refused later, in one line)."""
    opens, closes = getattr(args, "shutter", (0.0, 0.0))
    fps = getattr(args, "fps", 24.0)
    return (opens / fps, closes / fps) if fps > 0 else (0.0, 0.0)


def terminal_listener(args, redis_client, stack: contextlib.ExitStack, local: bool = False, frames=None):
    """The terminal's listener (a shot's, for `frames`), with the live view started where
    --watch asks for it."""
    from farm.client.terminal import TerminalListener, TerminalShotListener

    view = None
    if args.watch:
        from farm.client.watch import LiveView

        view = LiveView(*args.watch, redis=redis_client)
        stack.callback(view.close)
        status_line(args, f"watch: {view.start()}")
    on_interrupt = getattr(args, "on_interrupt", "ask")
    if frames is not None:
        from farm.buckets import count

        buckets = sum(count(f.scene.film.width, f.scene.film.height, args.bucket_size) for f in frames)
        return TerminalShotListener(args.quiet, on_interrupt, local, view, args.output, buckets)
    return TerminalListener(args.quiet, on_interrupt, local, view, args.output)


def connect_farm(broker_url: str):
    """A patient Redis client and the Celery app (to send tasks by name), both pointed at
    `broker_url`."""
    from farm.app import app
    from farm.protocol import secret
    from farm.protocol.broker import connect

    warning = secret.guard(broker_url)  # before a byte goes to the broker
    if warning:
        print(f"farm: {warning}", file=sys.stderr)
    redis_client = connect(broker_url)
    app.conf.broker_url = broker_url
    return redis_client, app


def collect(args) -> int:
    """`farm collect JOB` (and `submit --resume JOB`): reconcile a job and write its image."""
    from farm.client.film import check_output_path
    from farm.client.render import FrameRender
    from farm.client.start import resume

    output = check_output_path(args.output)
    if args.report:
        check_report_path(args.report)
    if not args.broker:
        raise FarmError("collecting a job needs the farm's broker: --broker URL or FARM_BROKER_URL")
    redis_client, app = connect_farm(args.broker)
    from farm.protocol.shots import ShotRecord

    if ShotRecord(redis_client, args.job).exists():
        return _collect_shot(args, redis_client, app, output)
    run = resume(redis_client, app, args.job)
    done = len(run.job.tiles.stored() & set(run.wanted))  # a split bucket's spare parts are no buckets
    status_line(args, f"job {args.job}: {done}/{run.total} buckets already rendered")
    args.aov = ()
    with contextlib.ExitStack() as stack:
        listener = terminal_listener(args, redis_client, stack)
        FrameRender(redis_client, app, None, {}, None, render_options(args), output, listener).collect(run)
    return 0


def check_report_path(path: str) -> None:
    folder = Path(path).parent
    if str(folder) and not folder.is_dir():
        raise FarmError(f"{path}: folder {folder} does not exist")


def status_line(args, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def _collect_shot(args, redis_client, app, output: Path) -> int:
    """`farm collect SHOT -o PATTERN`: the frames of a shot whose client stopped, those with
    a job collected, the others started from the scene on the farm."""
    from farm.client.shot import FilesInRedis, ShotRender, picked_up

    document, frames, options, record = picked_up(redis_client, args.job, output)
    started = sum(frame.job_id is not None for frame in frames)
    status_line(args, f"shot {args.job}: {len(frames)} frames, {started} of them started")
    with contextlib.ExitStack() as stack:
        args.aov, args.bucket_size = options.aovs, options.bucket_size
        listener = terminal_listener(args, redis_client, stack, frames=frames)
        ShotRender(redis_client, app, document, frames, FilesInRedis(), replace(options, report=args.report),
                   listener, record=record).render()
    return 0
