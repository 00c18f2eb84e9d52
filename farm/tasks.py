"""Celery tasks: thin, like a web view. Arguments stay small (job id, bucket index)."""

from farm.app import app
from farm.worker import process


@app.task(name="farm.render_bucket", bind=True, Request="farm.worker.quick:BucketRequest")
def render_bucket(self, job_id: str, bucket_index: int, copy: bool = False) -> bool:
    """Render bucket `bucket_index` of job `job_id` into the job's Redis keys; `copy` marks
    a deliberate second copy of a slow bucket."""
    return process.render(self, job_id, int(bucket_index), bool(copy))
