"""The `farm` commands of the manager and of the clients that leave it their jobs:
`farm manager`, `farm jobs`, `farm wait`, `farm fetch`, `farm pause`, `farm resume`,
`farm priority`, `farm retry` (`farm cancel` is farm.client.cli's, for any job). Argument
parsing and printing only: farm.manager.jobs and farm.manager.service do the work."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from farm import defaults
from farm.exceptions import FarmError

EXIT_FAILED = 1  # farm wait: the job failed or was cancelled
NO_MANAGER = 15.0  # seconds `farm wait` waits for a manager to show itself before it says none runs

MANAGER_SETTINGS = """settings (each a FARM_* variable, or a key of the settings file; `farm settings` shows their values):
  FARM_BROKER_URL       the farm's Redis (or --broker)
  FARM_OUTPUT_DIR       where each job's images and report go, a folder per job: a folder here, or an
                        fsspec URL such as s3://bucket/prefix (pip install 'farm[s3]'; S3's own
                        credentials apply, and AWS_ENDPOINT_URL for another S3-compatible server)
  FARM_MANAGER_ADDRESS  where the web UI and API are served, HOST:PORT (default 127.0.0.1:8780; off: none)
  FARM_MANAGER_URL      the UI's URL as clients reach it, where that is not the address (a proxy)
  FARM_MANAGER_TOKEN    the token the UI and API ask for (default: a random one kept in Redis and printed)
  FARM_MANAGER_LEASE    seconds the leader's lease lasts (default 10): run two managers, and the second
                        takes over within about this long when the leader dies
  FARM_SECRET, FARM_SECRET_FILE   the farm's secret: the manager checks every tile with it
and every other setting farm reads, as for any client:
{others}"""


def add(commands, add_broker_option) -> None:
    from farm import settings

    import textwrap

    others = textwrap.fill(", ".join(sorted(name for name in settings.KNOWN if name not in MANAGER_SETTINGS)),
                           100, initial_indent="  ", subsequent_indent="  ")
    manager = commands.add_parser(
        "manager", help="render the jobs handed to the farm (submit --detach), several at once, into an output "
                        "store, and serve the web UI that runs them; two may run (one leads)",
        epilog=MANAGER_SETTINGS.format(others=others), formatter_class=_raw())
    manager.add_argument("--output-dir", default=defaults.OUTPUT_DIR or None,
                         help="where the images go, a folder per job: a folder or s3://bucket/prefix "
                              "(default FARM_OUTPUT_DIR)")
    manager.add_argument("--address", default=defaults.MANAGER_ADDRESS,
                         help="where to serve the web UI, HOST:PORT or off (default FARM_MANAGER_ADDRESS, "
                              "127.0.0.1:8780)")
    add_broker_option(manager)
    manager.set_defaults(program="farm manager", handler=_manager)
    jobs = commands.add_parser("jobs", help="list the jobs handed to the manager: id, name, owner, state, priority, "
                                            "progress, frames, ETA")
    add_broker_option(jobs)
    jobs.set_defaults(program="farm jobs", handler=_jobs)
    wait = commands.add_parser("wait", help="block until the manager ends a job (exit 0 done, 1 failed or cancelled)")
    wait.add_argument("job", help="the id submit --detach printed")
    add_broker_option(wait)
    wait.set_defaults(program="farm wait", handler=_wait)
    fetch = commands.add_parser("fetch", help="download a managed job's images and report from the manager")
    fetch.add_argument("job", help="the id submit --detach printed")
    fetch.add_argument("-o", "--output", required=True, help="the folder to write them into")
    fetch.add_argument("--manager", default=defaults.MANAGER_URL or None,
                       help="the manager's URL (default FARM_MANAGER_URL, else the one the leader gives in Redis)")
    add_broker_option(fetch)
    fetch.set_defaults(program="farm fetch", handler=_fetch)
    for name, what in (("pause", "pause a managed job: none of its frames or buckets start; those rendering finish"),
                       ("resume", "go on with a paused job"),
                       ("retry", "queue a failed or cancelled job again: its frames written stay, the rest render")):
        command = commands.add_parser(name, help=what)
        command.add_argument("job", help="the id submit --detach printed")
        add_broker_option(command)
        command.set_defaults(program=f"farm {name}", handler=_act, action=name)
    priority = commands.add_parser("priority", help="change a job's priority while it renders (0-100, higher first): "
                                                    "a managed job, a shot or a frame's job")
    priority.add_argument("job", help="the job's or shot's id (farm jobs, farm status)")
    priority.add_argument("priority", help="0 to 100: the workers take the buckets of the highest band first")
    add_broker_option(priority)
    priority.set_defaults(program="farm priority", handler=_act, action="priority")


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def _connect(args):
    from farm.client.submit import connect_farm

    if not args.broker:
        raise FarmError("this needs the farm's broker: --broker URL or FARM_BROKER_URL")
    return connect_farm(args.broker)


def _manager(args) -> int:
    from farm.manager.service import Manager
    from farm.manager.store import OutputStore

    if not args.output_dir:
        raise FarmError("the manager needs an output store: --output-dir DIR (or s3://bucket/prefix) or FARM_OUTPUT_DIR")
    store = OutputStore(args.output_dir)
    redis_client, app = _connect(args)

    def say(line: str) -> None:
        print(f"farm manager: {line}", file=sys.stderr, flush=True)

    manager = Manager(redis_client, app, store, say)
    web = None
    if args.address.strip().lower() != "off":
        from farm.manager.web import ManagerWeb

        web = ManagerWeb(redis_client, app, store, args.address, manager)
        say(f"web UI on {web.start()}/?token={web.token}")
    manager.web_url = web.url if web else ""
    say(f"rendering the farm's detached jobs into {args.output_dir}; waiting to lead")
    try:
        manager.run()
    finally:
        if web is not None:
            web.stop()
        store.close()
    return 0


def _jobs(args) -> int:
    from farm.manager.jobs import entries, eta

    redis_client, _ = _connect(args)
    found = entries(redis_client)
    if not found:
        print("no jobs handed to a manager")
        return 0
    print(f"{'ID':32}  {'NAME':20}  {'OWNER':10}  {'STATE':16}  PRI  PROGRESS  FRAMES     ETA")
    for job_id, entry in found.items():
        state = entry["state"] + (" (paused)" if entry["paused"] and entry["state"] in ("queued", "running") else "")
        frames = f"{len(entry['frames_done'])}/{entry['frames_total']}"
        print(f"{job_id:32}  {entry['name']:20.20}  {entry['owner']:10.10}  {state:16}  {entry['priority']:3}  "
              f"{100 * entry['progress']:7.0f}%  {frames:9}  {eta(entry)}"
              + (f"  {entry['error']}" if entry["error"] else ""))
    return 0


def _wait(args) -> int:
    from farm.manager.jobs import ENDED, entry
    from farm.manager.lease import leader

    redis_client, _ = _connect(args)
    missing_since = None
    while True:
        found = entry(redis_client, args.job)
        if found is None:
            raise FarmError(f"no job {args.job} was handed to a manager (submit --detach)")
        if found["state"] in ENDED:
            break
        if leader(redis_client) is not None:
            missing_since = None
        else:
            missing_since = missing_since or time.monotonic()
            if time.monotonic() - missing_since > NO_MANAGER:
                raise FarmError(f"job {args.job} is {found['state']}, but no manager has run for {NO_MANAGER:g} s "
                                "(start one: farm manager)")
        time.sleep(0.5)
    if found["state"] != "done":
        print(f"farm wait: job {args.job} {found['state']}: {found['error']}", file=sys.stderr)
        return EXIT_FAILED
    print(f"job {args.job}: done, {len(found['frames_done'])} frame(s)")
    return 0


def _fetch(args) -> int:
    from farm.manager import jobs
    from farm.manager.web import download

    redis_client, _ = _connect(args)
    url = args.manager or jobs.manager_url(redis_client)
    if not url:
        raise FarmError("no manager serves its files (none leads, or it runs with --address off): --manager URL")
    if jobs.entry(redis_client, args.job) is None:
        raise FarmError(f"no job {args.job} was handed to a manager (see farm jobs)")
    written = download(url.rstrip("/"), jobs.token(redis_client), args.job, Path(args.output))
    for path, size in written:
        print(f"{path}  {size} bytes")
    if not written:
        print(f"job {args.job}: no file written yet")
    return 0


def _act(args) -> int:
    from farm.manager import jobs

    redis_client, _ = _connect(args)
    if args.action == "pause":
        jobs.pause(redis_client, args.job, True)
    elif args.action == "resume":
        jobs.pause(redis_client, args.job, False)
    elif args.action == "retry":
        jobs.retry(redis_client, args.job)
    else:
        jobs.set_priority(redis_client, args.job, args.priority)
    print(f"job {args.job}: {args.action}" + (f" {args.priority}" if args.action == "priority" else ""))
    return 0
