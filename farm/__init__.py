"""farm: distributed bucket rendering on Celery, Redis and OpenCL.

`celery -A farm worker` finds the Celery app as `farm.app`.
"""

from farm.app import app

__all__ = ["app"]
