"""`farm manager`, and the clients that leave it their jobs: `submit --detach`, `farm jobs`,
`farm wait` (issue 28, a first slice).

A detached submit uploads the scene and its files, writes the shot's record
(farm.protocol.shots: a still is a shot of one frame), and hands the shot to the manager:
an entry in the hash `farm:manager:jobs` (its output name, name, owner, state) and its id on
the list `farm:manager:inbox`. The manager renders the shots handed to it one after
another, as `farm collect SHOT` does (picked_up, ShotRender: the frames whose jobs exist
collected, the others started from the scene on the farm), into its output folder
(`FARM_OUTPUT_DIR`/<shot id>/). Its state is in Redis only: a manager started again adopts
the shot it was rendering and the ones queued, where they stood. While it runs it renews
`farm:manager:alive`, so that `farm wait` can tell a manager that died from a long render.

Not yet (the rest of issue 28): several shots at once in one JobLoop, two managers with a
lease, an object store, pause and priorities, the web UI.
"""

from __future__ import annotations

import getpass
import json
import logging
import threading
import time
from pathlib import Path

from farm import defaults
from farm.exceptions import FarmError, JobCancelled

log = logging.getLogger(__name__)

JOBS = f"{defaults.KEY_PREFIX}:manager:jobs"
INBOX = f"{defaults.KEY_PREFIX}:manager:inbox"
ALIVE = f"{defaults.KEY_PREFIX}:manager:alive"
ALIVE_TTL = 10  # seconds a manager's sign of life lasts; it renews it every ALIVE_TTL / 3
NO_MANAGER = 15.0  # seconds `farm wait` waits for a manager to show itself before it says none runs
STATES = ("queued", "running", "done", "failed", "cancelled")
ENDED = ("done", "failed", "cancelled")
MAX_NAME = 200  # characters of a job's name


def hand_over(redis, shot_id: str, output: Path, name: str | None = None) -> dict:
    """Give a shot already on the farm (its record written) to the manager."""
    name = (name or output.stem.split(".")[0])[:MAX_NAME]
    entry = {"output": output.name, "name": name, "owner": _owner(),
             "state": "queued", "submitted": time.time(), "error": ""}
    with redis.pipeline() as pipe:
        pipe.hset(JOBS, shot_id, json.dumps(entry))
        pipe.rpush(INBOX, shot_id)
        pipe.execute()
    return entry


def _owner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def entries(redis) -> dict[str, dict]:
    """Every job handed to a manager, by id, oldest first; an entry that is not one (Redis
    is input from outside) is left out."""
    found = {}
    for key, raw in redis.hgetall(JOBS).items():
        try:
            entry = json.loads(raw)
            if not (isinstance(entry, dict) and entry.get("state") in STATES and isinstance(entry.get("output"), str)):
                continue
            found[key.decode()] = entry
        except (ValueError, UnicodeDecodeError):
            continue
    return dict(sorted(found.items(), key=lambda item: float(item[1].get("submitted", 0) or 0)))


def _update(redis, shot_id: str, **changes) -> None:
    raw = redis.hget(JOBS, shot_id)
    entry = json.loads(raw) if raw else {}
    entry.update(changes)
    redis.hset(JOBS, shot_id, json.dumps(entry))


class Manager:
    """Renders the shots handed to it, one after another, into `output_dir`."""

    def __init__(self, redis, app, output_dir: Path, listener=None):
        self.redis, self.app, self.output_dir = redis, app, Path(output_dir)
        self.say = listener or (lambda line: None)
        self._stop = threading.Event()

    def run(self, once: bool = False) -> None:
        """Adopt what an earlier manager left (running, then queued, oldest first), then take
        what comes, until stopped (or, with `once`, until nothing is left)."""
        beat = threading.Thread(target=self._alive, daemon=True)
        beat.start()
        try:
            while not self._stop.is_set():
                waiting = [shot for shot, entry in entries(self.redis).items() if entry["state"] in ("running", "queued")]
                if waiting:
                    self.render(waiting[0])
                    continue
                if once:
                    return
                self.redis.blpop([INBOX], timeout=1)  # wakes at once for a new shot; the hash says what to do
        finally:
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    def _alive(self) -> None:
        while not self._stop.is_set():
            try:
                self.redis.set(ALIVE, str(time.time()), ex=ALIVE_TTL)
            except Exception as exc:  # the broker away a moment: try again
                log.warning("manager: cannot renew its sign of life: %s", exc)
            self._stop.wait(ALIVE_TTL / 3)

    def render(self, shot_id: str) -> None:
        """One shot, to its end: its entry says done, or failed and why."""
        from farm.client.shot import FilesInRedis, ShotRender, picked_up

        entry = entries(self.redis).get(shot_id)
        if entry is None:
            return
        folder = self.output_dir / shot_id
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _update(self.redis, shot_id, state="running")
            self.say(f"shot {shot_id} ({entry['name']}, {entry['owner']}): rendering into {folder}")
            document, frames, options, record = picked_up(self.redis, shot_id, folder / Path(entry["output"]).name)
            written = ShotRender(self.redis, self.app, document, frames, FilesInRedis(), options, record=record).render()
            _update(self.redis, shot_id, state="done", frames=[str(path) for path in written])
            self.say(f"shot {shot_id}: done, {len(written)} frames")
        except JobCancelled as exc:  # farm cancel SHOT: no frame starts any more
            _update(self.redis, shot_id, state="cancelled", error=str(exc))
            self.say(f"shot {shot_id}: cancelled")
        except (FarmError, OSError) as exc:
            _update(self.redis, shot_id, state="failed", error=str(exc))
            self.say(f"shot {shot_id}: failed: {exc}")


def wait(redis, shot_id: str, poll: float = 0.5, no_manager: float = NO_MANAGER) -> dict:
    """Block until the manager ends shot `shot_id`; its entry. FarmError where no such job
    was handed over, or no manager has shown itself for `no_manager` seconds."""
    missing_since = None
    while True:
        entry = entries(redis).get(shot_id)
        if entry is None:
            raise FarmError(f"no job {shot_id} was handed to a manager (submit --detach)")
        if entry["state"] in ENDED:
            return entry
        if redis.exists(ALIVE):
            missing_since = None
        else:
            missing_since = missing_since or time.monotonic()
            if time.monotonic() - missing_since > no_manager:
                raise FarmError(f"job {shot_id} is {entry['state']}, but no manager has run for {no_manager:g} s "
                                "(start one: farm manager)")
        time.sleep(poll)
