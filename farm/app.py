"""The Celery app of the render farm. It only builds the app; tasks import it."""

import os

from celery import Celery

app = Celery("farm", include=["farm.tasks"])
app.config_from_object(os.environ.get("FARM_CELERY_CONFIG", "farm.celeryconfig"))
