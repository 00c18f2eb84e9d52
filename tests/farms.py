"""A private farm for a test: a real redis-server and real `celery -A farm worker`
processes (the embedded farm's LocalFarm), with what tests need around them: a Redis
client, a Celery app that sends tasks by name to this farm, the CLI pointed at it, and
waits on conditions."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests import commands


class PrivateFarm:
    def __init__(self, folder: Path, worker_envs=({}, {}), env: dict | None = None, appendonly: bool = False,
                 name: str = "w", client_env: dict | None = None, cwds: list[Path] | None = None):
        """`worker_envs`: one environment per worker (on top of `env`); `cwds`: the working
        folder of each worker (by default the farm's folder)."""
        import redis
        from celery import Celery

        from farm.client.local import LocalFarm

        local = LocalFarm(len(worker_envs), env or {}, folder, appendonly=appendonly, worker_envs=list(worker_envs),
                          name=name)
        for worker, cwd in zip(local.workers, cwds or []):
            worker.cwd = cwd
        self.local = local.__enter__()
        self.redis_server, self.workers, self.broker_url = self.local.redis, self.local.workers, self.local.broker_url
        self.url = self.broker_url
        self.redis = redis.Redis.from_url(self.url)
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
        self.wait_for(lambda: wanted <= set(registry.workers(self.redis)), 120, "workers to start")

    def restart(self, indexes) -> list:
        """Stop every worker, then start the workers at `indexes` again as new processes
        (nothing in memory, the same settings and folders); once they are ready, those."""
        for worker in self.workers:
            worker.stop()
        started = [self.workers[i].start() for i in indexes]
        self._wait_registered(started)
        return started

    def close(self) -> None:
        self.local.close()

    def wait_for(self, condition, timeout: float, what: str):
        return commands.wait_for(condition, timeout, what)

    def render(self, scene, document, bucket_size: int, order: str = "spiral", assets=None):
        """Render through this farm from this process; the collected JobRun."""
        from farm.client.run import start_job

        run = start_job(self.redis, self.app, scene, document, bucket_size, order, assets)
        run.collect(stall_timeout=60)
        return run

    def farm(self, *args, env: dict | None = None) -> subprocess.Popen:
        """`farm ARGS... --broker <this farm>` started; `commands.finish` collects it."""
        return commands.start(*args, "--broker", self.url, env={**self.client_env, **(env or {})})

    def job(self):
        """The one job on this farm, once it exists."""
        from farm.protocol.jobs import Job

        def find():
            ids = {k.decode().split(":")[2] for k in self.redis.scan_iter(match=Job.key_for("*"))}
            return Job.load(self.redis, ids.pop()) if len(ids) == 1 and self.redis.hget(
                Job.key_for(next(iter(ids))), "job_id") else None
        return self.wait_for(find, 60, "the job to be created")

    def lease(self, job, worker: str | None = None):
        """A running bucket (of `worker`, if given)."""
        return self.wait_for(
            lambda: next((l for l in job.leases() if worker is None or l.worker.startswith(worker + "@")), None),
            60, f"a bucket to be running{' on ' + worker if worker else ''}",
        )

    def log(self, worker: int) -> str:
        return self.workers[worker].log_path.read_text(errors="replace")
