"""The Celery app of the render farm. It only builds the app; tasks import it."""

import os

from celery import Celery

from farm.protocol.broker import reuse_kombu_clients

reuse_kombu_clients()
app = Celery("farm", include=["farm.tasks"])
app.config_from_object(os.environ.get("FARM_CELERY_CONFIG", "farm.celeryconfig"))
