"""A private farm for a test: a real redis-server and real `celery -A farm worker`
processes (the embedded farm's LocalFarm), with what tests need around them: a Redis
client, a Celery app that sends tasks by name to this farm, the CLI pointed at it, and
waits on conditions. The one way tests start a farm: conftest's `farm` (the session's)
and `make_farm` (a test's own) build on it. Also a Redis Sentinel, for the tests of one."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests import commands
from tests.ports import free_port


class PrivateFarm:
    def __init__(self, folder: Path, worker_envs=({}, {}), env: dict | None = None, appendonly: bool = False,
                 name: str = "w", client_env: dict | None = None, cwds: list[Path] | None = None,
                 broker: tuple | None = None):
        """`worker_envs`: one environment per worker (on top of `env`; faults by FARM_FAULTS);
        `cwds`: the working folder of each worker (by default the farm's folder);
        `client_env`: what the CLI started by `farm()` gets; `broker`: (URL, Redis client) of
        a broker the test runs itself (Sentinel's, say), for the workers alone: the farm then
        has no Redis of its own (`redis_server` is None)."""
        import redis
        from celery import Celery

        from farm.client.local import LocalFarm, WorkerProcess

        if broker is None:
            local = LocalFarm(len(worker_envs), env or {}, folder, appendonly=appendonly,
                              worker_envs=list(worker_envs), name=name)
            for worker, cwd in zip(local.workers, cwds or []):
                worker.cwd = cwd
            self.local = local.__enter__()
            self.redis_server, self.workers, self.url = self.local.redis, self.local.workers, self.local.broker_url
            self.redis = redis.Redis.from_url(self.url)
        else:
            self.local, self.redis_server, (self.url, self.redis) = None, None, broker
            self.workers = [WorkerProcess(f"{name}{i + 1}", self.url, folder, {**(env or {}), **worker_env})
                            for i, worker_env in enumerate(worker_envs)]
            for worker, cwd in zip(self.workers, cwds or [None] * len(self.workers)):
                worker.cwd = cwd or worker.cwd
                worker.start()
        self.broker_url = self.url
        self.app = Celery(f"{name}-client", set_as_current=False)
        self.app.config_from_object("farm.celeryconfig")
        self.app.conf.broker_url = self.url
        self.client_env = client_env or {}
        try:
            self._wait_registered(self.workers)
        except BaseException:
            self.close()
            raise

    def _wait_registered(self, workers) -> None:
        from farm.protocol import registry

        wanted = {worker.hostname for worker in workers}
        self.wait_for(lambda: wanted <= set(registry.workers(self.redis)) or not all(w.alive() for w in workers), 120,
                      "workers to start")
        for worker in workers:
            assert worker.alive(), f"worker {worker.name} exited at start:\n{worker.log_tail()}"

    def restart(self, indexes) -> list:
        """Stop every worker, then start the workers at `indexes` again as new processes
        (nothing in memory, the same settings and folders); once they are ready, those."""
        self._stop_workers()
        started = [self.workers[i].start() for i in indexes]
        self._wait_registered(started)
        return started

    def close(self, grace: float = 10.0) -> None:
        """Stop the workers, then the farm's Redis; again, nothing."""
        if self.local is not None:
            self.local.close(grace)
        else:
            self._stop_workers(grace)

    def discard(self) -> None:
        """Close it once its test is over: the workers killed, not stopped. A worker's warm
        stop takes 1-2 s even when idle (billiard's pool process sleeps a second on its way
        out, and the render process, ended first by the group's SIGTERM, is replaced and
        opens its device before the pool closes): a minute of the suite. The tests of
        stopping stop theirs themselves."""
        self.close(grace=0)

    def _stop_workers(self, grace: float = 10.0) -> None:
        for worker in self.workers:  # all told at once, then waited for
            worker.terminate()
        for worker in self.workers:
            worker.stop(grace)

    def wait_for(self, condition, timeout: float, what: str):
        return commands.wait_for(condition, timeout, what)

    def render(self, scene, document, bucket_size: int, order: str = "spiral", assets=None, aovs=(),
               plan=None, film=None, split=(0, 0)):
        """Render through this farm from this process (a round of `plan`, into `film`); the
        collected JobRun."""
        from farm.client.start import start_job

        run = start_job(self.redis, self.app, scene, document, bucket_size, order, assets, aovs=aovs,
                        plan=plan, film=film, split=split)
        run.collect(stall_timeout=60)
        return run

    def farm(self, *args, env: dict | None = None) -> subprocess.Popen:
        """`farm ARGS... --broker <this farm>` started; `commands.finish` collects it."""
        return commands.start(*args, "--broker", self.url, env={**self.client_env, **(env or {})})

    def job(self):
        """The one job on this farm, once it exists."""
        from farm.protocol.jobs import Job
        from farm.protocol.record import JobRecord

        def find():
            ids = {k.decode().split(":")[2] for k in self.redis.scan_iter(match=JobRecord.key_for("*"))}
            return Job.load(self.redis, ids.pop()) if len(ids) == 1 and self.redis.hget(
                JobRecord.key_for(next(iter(ids))), "job_id") else None
        return self.wait_for(find, 60, "the job to be created")

    def lease(self, job, worker: str | None = None):
        """A running bucket (of `worker`, if given)."""
        return self.wait_for(
            lambda: next((l for l in job.deliveries.leases() if worker is None or l.worker.startswith(worker + "@")), None),
            60, f"a bucket to be running{' on ' + worker if worker else ''}",
        )

    def log(self, worker: int) -> str:
        return self.workers[worker].log_path.read_text(errors="replace")


class SentinelServer:
    """A Redis Sentinel (redis-server in sentinel mode) on a free loopback port, watching
    one master as `name`; its config file, which Sentinel rewrites, lives in `folder`.
    `password`: what clients must log in with; `auth_pass`: its login to the master."""

    def __init__(self, folder: Path, master_port: int, name: str = "mymaster", password: str | None = None,
                 auth_pass: str | None = None, down_after_ms: int = 500):
        self.port = free_port()
        self.folder, self.name = folder, name
        self.config_path = folder / f"sentinel-{self.port}.conf"
        self.log_path = folder / f"sentinel-{self.port}.log"
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {folder}",
                 f"sentinel monitor {name} 127.0.0.1 {master_port} 1",
                 f"sentinel down-after-milliseconds {name} {down_after_ms}",
                 f"sentinel failover-timeout {name} 10000"]
        if password:
            lines.append(f"requirepass {password}")
        if auth_pass:
            lines.append(f"sentinel auth-pass {name} {auth_pass}")
        self.config_path.write_text("\n".join(lines) + "\n")
        self.password = password
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> SentinelServer:
        """Start it and return once it names the master (FarmSetupError if it exits)."""
        from farm.client.local import _die_with_parent, redis_server_binary
        from farm.exceptions import FarmSetupError

        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([redis_server_binary(), str(self.config_path), "--sentinel"],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, preexec_fn=_die_with_parent())

        def named():
            if self.process.poll() is not None:
                raise FarmSetupError(f"redis-server exited in sentinel mode: {self.log_tail()}")
            return self.client().sentinel_get_master_addr_by_name(self.name)
        try:
            commands.wait_for(named, timeout, "Sentinel to name its master")
        except AssertionError:
            named()  # it exited: say so
            raise
        return self

    def ran(self) -> bool:
        """Whether the binary ran in sentinel mode at all (it logs its Sentinel ID)."""
        return "Sentinel ID is" in self.log_tail(1000)

    def client(self):
        import redis

        return redis.Redis(port=self.port, password=self.password, socket_timeout=2, socket_connect_timeout=1)

    def master_port(self) -> int:
        return int(self.client().sentinel_get_master_addr_by_name(self.name)[1])

    def log_tail(self, lines: int = 5) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
