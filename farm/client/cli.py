"""Command line: `submit` renders a scene on the farm; `farm` holds it and its friends.

Argument parsing and printing only; the work happens in farm.client.run, farm.client.local and friends.
Every error a user can cause ends as one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
from pathlib import Path

from farm import defaults, parts
from farm.client.arguments import (
    Version, add_broker_option, add_output_options, add_render_options, glued, watch_address,
)
from farm.client import submit as submitting
from farm.manager import commands as manager_commands
from farm.exceptions import FarmError, Terminated

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _terminate(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up short
    raise Terminated()


def submit_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="submit", description="Render a scene on the farm, bucket by bucket.")
    add_render_options(parser)
    parser.add_argument("--version", action=Version)
    return parser


def submit_main(argv: list[str] | None = None) -> int:
    """Entry point of `submit`."""
    argv = glued(sys.argv[1:] if argv is None else argv)
    return _quiet_when_stdout_closes(lambda: _run_guarded("submit", submitting.submit, submit_parser().parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of `farm`: submit, collect, cancel, status, secret, devices, bench, chaos."""
    return _quiet_when_stdout_closes(lambda: _farm_main(argv))


def _quiet_when_stdout_closes(command) -> int:
    """Run an entry point; a reader that stops early (`submit ... | head -1`) ends it quietly
    with exit status 1, as Python's note on SIGPIPE recommends, not in a BrokenPipeError
    traceback. stdout is flushed here, not at exit, so the error is caught (argparse's
    --help exits through here too)."""
    try:
        try:
            return command()
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python flushes stdout again at exit
        return 1


def _farm_main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="farm", description="Distributed rendering on Celery, Redis and OpenCL.")
    parser.add_argument("--version", action=Version)
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="render a scene (same as the submit command)")
    add_render_options(submit)
    submit.set_defaults(program="submit", handler=submitting.submit)
    collect = commands.add_parser("collect", help="collect a job already on the farm and write its image")
    collect.add_argument("job", help="job id (see `farm status`)")
    collect.add_argument("-o", "--output", required=True, help="image to write: .png or .exr")
    add_broker_option(collect)
    add_output_options(collect)
    collect.set_defaults(program="farm collect", handler=submitting.collect)
    cancel = commands.add_parser("cancel", help="cancel a job: queued buckets dropped, running ones stopped")
    cancel.add_argument("job", help="job id (see `farm status`)")
    add_broker_option(cancel)
    cancel.set_defaults(program="farm cancel", handler=_cancel)
    status = commands.add_parser("status", help="list the farm's jobs with their progress, and its workers")
    add_broker_option(status)
    status.set_defaults(program="farm status", handler=_status_command)
    secret = commands.add_parser("secret", help="print a new secret for FARM_SECRET or FARM_SECRET_FILE "
                                                "(only holders of it can put pixels into a frame)")
    secret.set_defaults(program="farm secret", handler=_new_secret)
    watch = commands.add_parser("watch", help="serve the live view of a job another client is rendering, until "
                                              "it ends (the tiles as they are stored, lost deliveries and failures "
                                              "from the job's record)")
    watch.add_argument("job", help="job id (see `farm status`)")
    watch.add_argument("--watch", dest="address", default="127.0.0.1:0", type=watch_address, metavar="[HOST:]PORT",
                       help="where to serve it (default 127.0.0.1 and a free port)")
    add_broker_option(watch)
    watch.set_defaults(program="farm watch", handler=_watch_job)
    report = commands.add_parser("report", help="draw a job's report (submit --report) as an HTML page: the bucket "
                                                "map by worker, the timeline of every bucket, the figures")
    report.add_argument("report", help="the JSON report of `submit --report` or `farm collect --report`")
    report.add_argument("-o", "--output", required=True, help="the page to write (.html)")
    report.set_defaults(program="farm report", handler=_report_page)
    settings = commands.add_parser("settings", help="list every setting: its value and where it comes from (a "
                                                    "FARM_* variable, the settings file or the default)")
    settings.set_defaults(program="farm settings", handler=_settings)
    check = commands.add_parser("check", help="list every worker with its renderer identity (farm version, kernel, "
                                              "device, driver) and, for a job, shot or scene, which would not "
                                              "render it and why")
    check.add_argument("target", nargs="?", help="a job or shot id, or a scene file")
    add_broker_option(check)
    check.set_defaults(program="farm check", handler=_check)
    devices = commands.add_parser("devices", help="list the OpenCL devices this machine has")
    devices.set_defaults(program="farm devices", handler=_devices)
    manager_commands.add(commands, add_broker_option)
    argv = glued(sys.argv[1:] if argv is None else argv)
    _add_tool_commands(commands, argv)
    args = parser.parse_args(argv)
    return _run_guarded(args.program, args.handler, args)


TOOL_COMMANDS = "farm.commands"  # the entry-point group of commands the tools add (pyproject.toml)


def _add_tool_commands(commands, argv: list[str]) -> None:
    """The tools' commands (`farm bench`, `farm chaos`), from the entry points of
    TOOL_COMMANDS: a module with HELP, add_arguments(parser) and run(args). Only the
    command asked for is imported (all of them for `farm --help`)."""
    from importlib.metadata import entry_points

    asked = next((arg for arg in argv if not arg.startswith("-")), None)
    if asked in commands.choices:  # a command of farm's own: no tool to look up
        return
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
        for warning in defaults.check():  # a bad setting: a line each, before anything starts
            print(f"{program}: warning: {warning}", file=sys.stderr)
        return function(args)
    except FarmError as exc:
        for line in str(exc).splitlines():  # one, or one per bad setting
            print(f"{program}: error: {line}", file=sys.stderr)
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


def _cancel(args) -> int:
    from farm.protocol.jobs import Job
    from farm.protocol.queue import BucketQueue

    if not args.broker:
        raise FarmError("cancelling a job needs the farm's broker: --broker URL or FARM_BROKER_URL")
    redis_client, app = submitting.connect_farm(args.broker)
    from farm.protocol.shots import ShotRecord

    if ShotRecord(redis_client, args.job).exists():  # a shot: no frame starts any more, the frames rendering stop
        from farm.manager.jobs import cancel

        stopped, removed = cancel(redis_client, app, args.job)
        print(f"shot {args.job} cancelled: {stopped} frame(s) stopped, {removed} queued bucket(s) dropped")
        return 0
    job = Job.load(redis_client, args.job)
    if job.state:
        raise FarmError(f"job {args.job} is already {job.state}")
    removed = job.cancel(BucketQueue(redis_client, app))
    running = sorted({lease.bucket for lease in job.deliveries.leases()})
    print(f"job {job.job_id} cancelled: {removed} queued bucket(s) dropped, "
          f"{len(running)} running bucket(s) stop within about {defaults.PASS_SECONDS:g}s")
    return 0


def _check(args) -> int:
    from farm.client.check import lines

    if not args.broker:
        raise FarmError("farm check needs the farm's broker: --broker URL or FARM_BROKER_URL")
    redis_client, _ = submitting.connect_farm(args.broker)
    print("\n".join(lines(redis_client, args.target)))
    return 0


def _status_command(args) -> int:
    from farm.client.status import farm_lines

    if not args.broker:
        raise FarmError("farm status needs the farm's broker: --broker URL or FARM_BROKER_URL")
    redis_client, _ = submitting.connect_farm(args.broker)
    print("\n".join(farm_lines(redis_client)))
    return 0


def _watch_job(args) -> int:
    """`farm watch JOB`: the live view of a job without collecting it (watch.follow)."""
    from farm.client.watch import LiveView, follow
    from farm.protocol.jobs import Job

    if not args.broker:
        raise FarmError("farm watch needs the farm's broker: --broker URL or FARM_BROKER_URL")
    redis_client, _ = submitting.connect_farm(args.broker)
    job = Job.load(redis_client, args.job)
    view = LiveView(*args.address, redis=redis_client)
    print(f"watch: {view.start()}", file=sys.stderr)
    try:
        state, run = follow(job, view)
    finally:
        view.close()
    print(f"job {job.job_id}: {state}, {len(run.records)}/{run.total} buckets")
    return 0


def _report_page(args) -> int:
    """`farm report REPORT.json -o report.html`."""
    from farm.client import report as pages

    submitting.check_report_path(args.output)
    report = pages.read(args.report)
    written = pages.write(report, args.output)
    print(f"{written}: the bucket map, the timeline and the figures of job {report['job_id']}")
    return 0


def _new_secret(args) -> int:
    from farm.protocol import secret

    print(secret.new())
    return 0


def _settings(args) -> int:
    from farm import settings
    from farm.protocol.broker import redacted

    print("\n".join(settings.lines(redacted)))
    return 0


def _devices(args) -> int:
    parts.require_worker("farm devices")
    from farm.worker.device import SIMULATORS, available

    found = available()
    if not found:
        raise FarmError("no OpenCL device found; install pocl-binary-distribution")
    for platform, name, kind in found:
        simulator = "  (a simulator: renders only when FARM_DEVICE names it)" if platform in SIMULATORS else ""
        print(f"{kind:5} {name}  [{platform}]{simulator}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
