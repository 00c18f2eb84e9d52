"""The Celery app of the render farm. It only builds the app; tasks import it."""

from celery import Celery

from farm import settings
from farm.protocol.broker import reuse_kombu_clients

reuse_kombu_clients()
# A worker imports these: the tasks, and its main process's handlers of Celery's signals.
app = Celery("farm", include=["farm.tasks", "farm.worker.lifecycle"])
app.config_from_object(settings.value("FARM_CELERY_CONFIG") or "farm.celeryconfig")
