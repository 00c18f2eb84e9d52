"""Celery settings of the render farm, loaded by module name (`farm.celeryconfig`).

Each setting says why; numbers a user may change come from farm.defaults (FARM_*).
"""

from farm import defaults
from farm.protocol import queue
from farm.protocol.broker import sentinel_transport_options

# The broker; `submit --broker`, FARM_BROKER_URL or celery's own -b override it.
broker_url = defaults.BROKER_URL or "redis://127.0.0.1:6379/0"

# A bucket is acknowledged only after its tile is stored: a worker that stops hands back
# the buckets it holds, and a child killed mid-bucket requeues it instead of failing it.
# A whole worker that dies loses its bucket's message; its lease lapses, and the job's
# client (or manager) sends the bucket again (no acknowledgement emulation: below).
task_acks_late = True
task_reject_on_worker_lost = True

# One bucket at a time per child: a reserved bucket is a bucket another worker cannot take.
worker_prefetch_multiplier = 1

# One device per worker and the kernel already uses all of it (every core, or the GPU).
worker_concurrency = 1

# JSON only, everywhere: a message from the broker never runs pickle.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# Tiles go to the job's own Redis keys, never through a result backend.
task_ignore_result = True

# Events for Flower: every bucket shows as sent, started, succeeded or failed, while the
# buckets come slower than Flower follows; past that a sample of whole tasks (farm.protocol.flower).
worker_send_task_events = True
task_send_sent_event = True
task_track_started = True
# ...published by the worker in batches on a timer, not one publish per bucket.
worker_consumer = "farm.worker.consumer:Consumer"

# No acknowledgement emulation in Redis (kombu's `ack_emulation`): it cost 8 of a bucket's
# 34 Redis commands (a MULTI writing each message into the `unacked` hash and index as it
# is taken, another removing it at the acknowledgement) for what the farm's own leases
# already do, sooner. A taken bucket is in its lease a few milliseconds later (Job.take),
# renewed by heartbeats; one whose worker dies is sent again when the lease lapses
# (LEASE_TIMEOUT), and one lost between the pop and the lease when it has had neither a
# message nor a lease for LEASE_TIMEOUT (farm.client.reconcile), where kombu's
# visibility timeout took an hour. Late acks stay: a worker that stops hands its
# unstarted buckets back to the queue, and a render process killed mid-bucket requeues it.
# socket_timeout: a dead broker must not hang a publish. master_name and sentinel_kwargs
# serve a sentinel:// broker (whichever setting names it) and are the ones the farm's own
# clients use; the plain redis transport ignores them.
broker_transport_options = {
    "ack_emulation": False,
    "socket_timeout": 30,
    # a job's batches carry a priority (farm.protocol.queue.priority_for); ":" keeps the
    # lists' names readable for KEDA and the ACL (farm, farm:1 ... farm:9)
    "priority_steps": list(defaults.PRIORITY_STEPS),
    "sep": queue.SEP,
    **sentinel_transport_options(),
}

# A client gives up on a lost broker after about BROKER_RETRY seconds (a worker never
# does: farm.worker.process lifts this limit in the worker process).
broker_connection_max_retries = defaults.PUBLISH_RETRY["max_retries"]

# Buckets travel on their own queue, so a shared broker can carry other work too.
task_default_queue = defaults.QUEUE

# A child builds its OpenCL program when it starts; a first build can take many seconds.
worker_proc_alive_timeout = 120

broker_connection_retry_on_startup = True
worker_hijack_root_logger = True
