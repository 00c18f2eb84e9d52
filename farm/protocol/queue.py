"""The bucket queue: buckets sent as Celery tasks, and where their messages are now.

Celery on Redis keeps a queue as a Redis list of JSON messages, and a message a worker has
taken but not acknowledged in kombu's `unacked` hash (its acknowledgement emulation). A
message can also be nowhere: deleted by hand, lost with a Redis that kept no journal, or
dropped between the worker's pop and its bookkeeping. The client reads the list and the
hash to tell these apart; it never relies on a message still existing.

Task ids are `<job id>.<bucket index>.<serial>`, so Flower shows which bucket a task is
and a scan needs no message body. Tasks are sent by name: the client never imports the
worker's code.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field

from kombu.exceptions import BatchPublishError, OperationalError
from kombu.transport.redis import Channel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from farm import defaults

log = logging.getLogger(__name__)

TASK_NAME = "farm.render_bucket"  # farm/tasks.py: (job_id, bucket_index, copy=False)

# Errors of a broker that went away mid-send: worth sending the batch again.
_LOST = (OperationalError, RedisConnectionError, RedisTimeoutError)


@dataclass
class QueueScan:
    """Where a job's bucket messages were at one moment."""

    queued: set[int] = field(default_factory=set)  # waiting in the queue
    held: dict[int, float] = field(default_factory=dict)  # taken by a worker, not acknowledged: since (epoch s)


# kombu's `sep` (set in celeryconfig): a priority list is named `<queue><SEP><step>`.
# kombu's Redis layout, undocumented: no kombu API reads a queue's messages without taking them.
SEP = ":"


def queue_lists(name: str | None = None) -> list[str]:
    """The Redis lists of a bucket queue (`farm`, or a pool's: farm.protocol.pools), first
    served first (kombu's priority lists)."""
    name = name or defaults.QUEUE
    return [name] + [f"{name}{SEP}{step}" for step in defaults.PRIORITY_STEPS[1:]]


def band(priority: int) -> int:
    """The band (0 first, 4 last) of a job's priority 0-100 (defaults.DEFAULT_PRIORITY)."""
    return 4 - min(4, max(0, int(priority)) // 20)


def priority_for(remaining: int, priority: int = defaults.DEFAULT_PRIORITY) -> int:
    """kombu's priority step (0 goes first) of a batch of a job of `priority` with
    `remaining` buckets unfinished: its band's first step for a job's last PRIORITY_TAIL
    buckets, its second for the others."""
    return 2 * band(priority) + (0 if remaining <= defaults.PRIORITY_TAIL else 1)


def resend_step(priority: int = defaults.DEFAULT_PRIORITY) -> int:
    """The step of a bucket sent again: its job's band, first (it is late already)."""
    return 2 * band(priority)


def task_id(job_id: str, bucket_index: int) -> str:
    return f"{job_id}.{bucket_index}.{uuid.uuid4().hex[:8]}"


def parse_task_id(text: str) -> tuple[str, int] | None:
    """(job id, bucket index) of a farm task id, or None for any other id."""
    parts = text.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


class BucketQueue:
    """Sends a job's buckets and finds their messages in the broker."""

    def __init__(self, redis, app):
        self.redis = redis
        self.app = app  # the Celery app whose broker the tasks go to
        self.sent = 0  # messages this queue sent, and the seconds it spent sending them
        self.seconds = 0.0

    @property
    def batch(self) -> int:
        """Buckets sent in one round trip (SEND_BATCH)."""
        return max(1, defaults.SEND_BATCH)

    def send(self, job_id: str, bucket_indexes, copy: bool = False, priority: int = 0, countdown: float = 0.0,
             pool: str | None = None) -> None:
        """One Celery task message per bucket, in the given order, with their task-sent
        events for Flower, in pipelined batches: one round trip per SEND_BATCH buckets
        (kombu's Producer.batch). The messages are Celery's own (protocol 2, JSON), made
        without what costs most in `send_task` and does nothing here: a repr of the
        arguments, a declare and a retry wrapper per message. A batch the broker drops is
        sent again after a pause, as PUBLISH_RETRY says; a message that went out twice is
        a duplicate, which the workers skip. `priority`: see priority_for (0, the default,
        goes first: what is sent again is late already). `countdown`: seconds before a
        worker may start them (Celery's eta; the worker holding one stays free for others):
        farm.protocol.recovery's back-off. `pool`: the job's queue (farm.protocol.pools), else `farm`."""
        started = time.perf_counter()
        indexes = [int(index) for index in bucket_indexes]
        for start in range(0, len(indexes), self.batch):
            self._send_batch(job_id, indexes[start : start + self.batch], copy, priority, countdown,
                             pool or defaults.QUEUE)
        self.sent += len(indexes)
        self.seconds += time.perf_counter() - started

    def _send_batch(self, job_id: str, indexes: list[int], copy: bool, priority: int, countdown: float,
                    pool: str) -> None:
        policy = defaults.PUBLISH_RETRY
        pause = policy["interval_start"]
        for attempt in range(policy["max_retries"] + 1):
            try:
                with self.app.producer_or_acquire() as producer, producer.batch(max_size=len(indexes) + 2):
                    events = self._events
                    producer.maybe_declare(events.exchange)
                    sent = [self._publish(producer, job_id, index, copy, priority, countdown, pool)
                            for index in indexes]
                    # One message holding the batch's task-sent events, as Celery's own
                    # dispatcher buffers a worker's (routing key task.multi; Flower and every
                    # event receiver read a list body as its events, one by one).
                    producer.publish(sent, routing_key="task.multi", exchange=events.exchange.name,
                                     serializer=events.serializer, headers=events.headers,
                                     delivery_mode=events.delivery_mode, retry=False, declare=None)
                return
            except (BatchPublishError, *_LOST) as exc:
                cause = exc.__cause__ if isinstance(exc, BatchPublishError) else exc
                if not isinstance(cause, _LOST):
                    raise (cause or exc) from None  # a refusal (an ACL, a full Redis): say which
                if attempt == policy["max_retries"]:
                    raise
                log.warning("sending %d buckets failed (%s); again in %.1fs", len(indexes), exc, pause)
                time.sleep(pause)
                pause = min(pause + policy["interval_step"], policy["interval_max"])

    @property
    def _events(self):
        """The Celery event dispatcher `send_task` itself publishes task-sent events with."""
        # private: app.events.Dispatcher() would be a second one, with a broker Connection, per BucketQueue
        return self.app.amqp._event_dispatcher

    def _publish(self, producer, job_id: str, index: int, copy: bool, priority: int, countdown: float,
                 pool: str) -> dict:
        """Publish the bucket's task message; returns its task-sent event."""
        kwargs = {"copy": True} if copy else {}
        tid = task_id(job_id, index)
        # undocumented: send_task costs 3x a bucket (saferepr, declare, retry; issue 14); scan reads v2's headers
        headers, properties, body, sent_event = self.app.amqp.as_task_v2(
            tid, TASK_NAME, (job_id, index), kwargs, countdown=countdown or None, argsrepr=repr((job_id, index)), kwargsrepr=repr(kwargs),
            create_sent_event=True,
        )
        producer.publish(body, exchange="", routing_key=pool, serializer="json", headers=headers,
                         delivery_mode=2, retry=False, declare=None, **{**properties, "priority": priority})
        sent_event.update(queue=pool, exchange="", routing_key=pool)
        # private: the public send() and publish() publish each event alone, not the batch's as one task.multi
        return self._events._prepare_event("task-sent", sent_event)

    def scan(self, job_id: str, pool: str | None = None) -> QueueScan:
        """Which buckets of `job_id` (on the queue `pool`) have a message queued or held by a
        worker right now."""
        scan = QueueScan()
        marker = job_id.encode()
        for raw in self._queued(pool):
            if marker not in raw:  # another job's: not parsed
                continue
            found = _job_bucket(raw)
            if found and found[0] == job_id:
                scan.queued.add(found[1])
        # kombu's ack emulation, undocumented: no API lists the unacknowledged messages, nor when each was taken
        held = self.redis.hgetall(Channel.unacked_key)
        if held:
            since = dict(self.redis.zrange(Channel.unacked_index_key, 0, -1, withscores=True))
            for tag, raw in held.items():
                try:
                    message = json.loads(raw)[0]
                except (ValueError, IndexError, KeyError, TypeError):
                    continue
                found = _job_bucket(message)
                if found and found[0] == job_id:
                    scan.held[found[1]] = since.get(tag, 0.0)
        return scan

    def purge(self, job_id: str, pool: str | None = None) -> int:
        """Remove the job's waiting messages from its queue, and tell Flower each task is
        revoked (not pending for ever); returns how many were removed."""
        return len(self.withdraw(job_id, pool))

    def withdraw(self, job_id: str, pool: str | None = None) -> list[int]:
        """`purge`, returning the bucket of each message removed (a message a worker takes
        meanwhile is not removed: it renders)."""
        revoked, buckets = [], []
        for name in queue_lists(pool):
            for raw in self.redis.lrange(name, 0, -1):
                found = _job_bucket(raw)
                if found and found[0] == job_id and self.redis.lrem(name, 0, raw):
                    revoked.append(json.loads(raw)["headers"]["id"])
                    buckets.append(found[1])
        if revoked:
            self._announce_revoked(revoked)
        return buckets

    def _announce_revoked(self, task_ids: list[str]) -> None:
        """One message of task-revoked events (task.multi, as the sends' task-sent ones)."""
        events = self._events
        try:
            with self.app.producer_or_acquire() as producer:
                producer.maybe_declare(events.exchange)
                # private, as in _publish: one message for all the job's task-revoked events
                body = [events._prepare_event("task-revoked", {"uuid": tid, "terminated": False, "expired": False,
                                                               "signum": None}) for tid in task_ids]
                producer.publish(body, routing_key="task.multi", exchange=events.exchange.name,
                                 serializer=events.serializer, headers=events.headers,
                                 delivery_mode=events.delivery_mode, retry=False, declare=None)
        except (*_LOST, BatchPublishError) as exc:  # the purge stands; only Flower's view is late
            log.warning("could not tell Flower of %d revoked buckets: %s", len(task_ids), exc)

    def _queued(self, pool: str | None = None) -> list[bytes]:
        """Every message waiting in the queue's lists, read in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for name in queue_lists(pool):
                pipe.lrange(name, 0, -1)
            return [raw for found in pipe.execute() for raw in found]


def _job_bucket(message) -> tuple[str, int] | None:
    """(job id, bucket index) of a queued message (raw JSON or decoded), or None."""
    try:
        if not isinstance(message, dict):
            message = json.loads(message)
        return parse_task_id(message["headers"]["id"])
    except (ValueError, KeyError, TypeError):
        return None
