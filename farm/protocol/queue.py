"""The bucket queue: buckets sent as Celery tasks, and where their messages are now.

Celery on Redis keeps a queue as a Redis list of JSON messages (kombu's, one list per
priority step). A message a worker took is in no list (farm runs kombu without its
acknowledgement emulation: farm.celeryconfig), and its bucket is under a lease a moment
later (farm.protocol.deliveries). A message can also be nowhere: deleted by hand, lost
with a Redis that kept no journal, or taken by a worker that died before its lease. The
client reads the lists to tell these apart; it never relies on a message still existing.

Task ids are `<job id>.<bucket index>.<serial>`, so Flower shows which bucket a task is
and a scan needs no message body. Tasks are sent by name: the client never imports the
worker's code.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from bisect import bisect
from dataclasses import dataclass, field

from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from farm import defaults
from farm.exceptions import FarmError
from farm.protocol import flower

log = logging.getLogger(__name__)

TASK_NAME = "farm.render_bucket"  # farm/tasks.py: (job_id, bucket_index, copy=False)

# Errors of a broker that went away mid-send: worth sending the batch again.
_LOST = (OperationalError, RedisConnectionError, RedisTimeoutError)


@dataclass
class QueueScan:
    """Where a job's bucket messages were at one moment."""

    queued: set[int] = field(default_factory=set)  # waiting in the queue


# kombu's `sep` (set in celeryconfig): a priority list is named `<queue><SEP><step>`.
# kombu's Redis layout, undocumented: no kombu API reads a queue's messages without taking them.
SEP = ":"


def queue_lists(name: str | None = None) -> list[str]:
    """The Redis lists of a bucket queue (`farm`, or a pool's: farm.protocol.pools), first
    served first (kombu's priority lists)."""
    name = name or defaults.QUEUE
    return [list_for(name, step) for step in defaults.PRIORITY_STEPS]


_MARK = "<farm:"  # in a message's template, where a task's own value goes (BucketQueue._messages)


def list_for(name: str, step: int) -> str:
    """The Redis list of queue `name` a message of priority `step` goes to, as kombu's Redis
    channel names it (Channel._q_for_pri: the highest of PRIORITY_STEPS not above it)."""
    steps = defaults.PRIORITY_STEPS
    step = steps[max(0, bisect(steps, max(0, int(step))) - 1)]
    return f"{name}{SEP}{step}" if step else name


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


# The first letter of the serial of a bucket's message sent again (a serial is otherwise
# hex, or quiet's): its worker takes it first, never as a quick delivery (farm.worker.quick),
# so that a bucket whose delivery killed a whole worker is counted the next time.
RESENT = "r"


def task_id(job_id: str, bucket_index: int, quiet: bool = False, resent: bool = False) -> str:
    """A new task id of the bucket; a `quiet` one makes no routine task event (farm.protocol.flower)."""
    serial = uuid.uuid4().hex[:8]
    mark = RESENT if resent else flower.QUIET if quiet else serial[0]
    return f"{job_id}.{bucket_index}.{mark}{serial[1:]}"


def is_resent(task_id_text: str) -> bool:
    """Whether a farm task id is of a message sent again (RESENT)."""
    return task_id_text.rpartition(".")[2].startswith(RESENT)


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
             pool: str | None = None, resent: bool = False) -> None:
        """One Celery task message per bucket, in the given order, with their task-sent
        events for Flower, in batches of SEND_BATCH buckets: one LPUSH and one event
        message each. The messages are Celery's own (protocol 2, JSON, `_messages`), made
        without what costs most in `send_task` and does nothing here: a repr of the
        arguments, a declare and a retry wrapper per message. A batch the broker drops is
        sent again after a pause, as PUBLISH_RETRY says; a message that went out twice is
        a duplicate, which the workers skip. `priority`: see priority_for (0, the default,
        goes first: what is sent again is late already). `countdown`: seconds before a
        worker may start them (Celery's eta; the worker holding one stays free for others):
        farm.protocol.recovery's back-off. `pool`: the job's queue (farm.protocol.pools), else `farm`.
        `resent`: the buckets were sent before (RESENT; their task events always shown)."""
        started = time.perf_counter()
        indexes = [int(index) for index in bucket_indexes]
        for start in range(0, len(indexes), self.batch):
            self._send_batch(job_id, indexes[start : start + self.batch], copy, priority, countdown,
                             pool or defaults.QUEUE, resent)
        self.sent += len(indexes)
        self.seconds += time.perf_counter() - started

    def _send_batch(self, job_id: str, indexes: list[int], copy: bool, priority: int, countdown: float,
                    pool: str, resent: bool) -> None:
        policy = defaults.PUBLISH_RETRY
        pause = policy["interval_start"]
        messages, events = self._messages(job_id, indexes, copy, priority, countdown, pool, resent)
        for attempt in range(policy["max_retries"] + 1):
            try:
                # the batch's messages in one LPUSH (as kombu pushes each: on the left, so
                # that a worker's BRPOP takes them in order)
                self.redis.lpush(list_for(pool, priority), *messages)
                break
            except _LOST as exc:  # anything else is a refusal (an ACL, a full Redis): it says which
                if attempt == policy["max_retries"]:
                    raise
                log.warning("sending %d buckets failed (%s); again in %.1fs", len(indexes), exc, pause)
                time.sleep(pause)
                pause = min(pause + policy["interval_step"], policy["interval_max"])
        if not events:
            return
        try:  # one message of their task-sent events, as Celery's own dispatcher buffers a
            # worker's (routing key task.multi; Flower and every event receiver read a list
            # body as its events); the buckets are out whatever becomes of it
            self._announce(events)
        except (*_LOST, RedisResponseError) as exc:
            log.warning("could not tell Flower of %d buckets sent: %s", len(events), exc)

    @property
    def _events(self):
        """The Celery event dispatcher `send_task` itself publishes task-sent events with."""
        # private: app.events.Dispatcher() would be a second one, with a broker Connection, per BucketQueue
        return self.app.amqp._event_dispatcher

    def _messages(self, job_id: str, indexes: list[int], copy: bool, priority: int, countdown: float,
                  pool: str, resent: bool = False) -> tuple[list[bytes], list[dict]]:
        """The Celery task messages of the buckets, as kombu's Redis channel writes them into
        a queue's list (JSON: the body base64, the delivery tag a uuid4), and their
        task-sent events. Celery makes one (protocol 2, `as_task_v2`); each message is
        it with what differs from task to task put in, which costs a tenth of Celery and
        kombu making each (issue 31: the client's CPU per bucket). tests/test_queue.py
        holds them to what kombu's own publish writes. Past this process's budget of
        task events (farm.protocol.flower), a task is quiet: no task-sent event."""
        kwargs = {"copy": True} if copy else {}
        kwargsrepr = repr(kwargs)
        # undocumented: send_task costs 3x a bucket (saferepr, declare, retry; issue 14); scan reads v2's headers
        headers, properties, (_, _, embed), sent = self.app.amqp.as_task_v2(
            task_id(job_id, indexes[0]), TASK_NAME, (job_id, indexes[0]), kwargs, countdown=countdown or None,
            argsrepr=repr((job_id, indexes[0])), kwargsrepr=kwargsrepr, create_sent_event=True,
        )
        sent.update(queue=pool, exchange="", routing_key=pool)
        dispatcher = self._events
        budget = flower.budget()
        # The message's JSON once, with a mark where each task's own values go (none of
        # them needs escaping in JSON: hex ids, digits, base64, a repr of those).
        template = json.dumps({
            "body": _MARK + "body",
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {**headers, "id": _MARK + "id", "root_id": _MARK + "id", "argsrepr": _MARK + "args"},
            "properties": {**properties, "correlation_id": _MARK + "id", "delivery_mode": 2,
                           "delivery_info": {"exchange": "", "routing_key": pool}, "priority": priority,
                           "body_encoding": "base64", "delivery_tag": _MARK + "tag"},
        })
        parts = template.split(_MARK)  # the text between marks, each part after the first led by its mark's name
        if len(parts) != 7:  # a setting's value (the queue's name, the host's) holding the mark
            raise FarmError(f"a task message cannot be made: {_MARK!r} is in one of its headers: {template[:300]}")
        marks = [next(name for name in ("id", "args", "body", "tag") if part.startswith(name)) for part in parts[1:]]
        tails = [part[len(name):] for name, part in zip(marks, parts[1:])]
        body_tail = json.dumps([kwargs, embed])[1:]  # the body after its arguments
        messages, events = [], []
        for index in indexes:
            show = resent or budget.take()
            tid = task_id(job_id, index, quiet=not show, resent=resent)
            argsrepr = repr((job_id, index))
            body = base64.b64encode(f'[["{job_id}", {index}], {body_tail}'.encode()).decode()
            values = {"id": tid, "args": argsrepr, "body": body, "tag": str(uuid.uuid4())}
            text = [parts[0]]
            for name, tail in zip(marks, tails):
                text += (values[name], tail)
            messages.append("".join(text))
            if show:
                # private: the public send() and publish() publish each event alone, not the batch's as one task.multi
                events.append(dispatcher._prepare_event("task-sent", {**sent, "uuid": tid, "root_id": tid,
                                                                       "args": argsrepr}))
        return messages, events

    def _announce(self, events: list[dict]) -> None:
        """Publish `events` (Celery's, prepared) as one task.multi message."""
        dispatcher = self._events
        with self.app.producer_or_acquire() as producer:
            producer.maybe_declare(dispatcher.exchange)
            producer.publish(events, routing_key="task.multi", exchange=dispatcher.exchange.name,
                             serializer=dispatcher.serializer, headers=dispatcher.headers,
                             delivery_mode=dispatcher.delivery_mode, retry=False, declare=None)

    def scan(self, job_id: str, pool: str | None = None) -> QueueScan:
        """Which buckets of `job_id` (on the queue `pool`) have a message queued right now."""
        scan = QueueScan()
        marker = job_id.encode()
        for raw in self._queued(pool):
            if marker not in raw:  # another job's: not parsed
                continue
            found = _job_bucket(raw)
            if found and found[0] == job_id:
                scan.queued.add(found[1])
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
        dispatcher = self._events
        try:
            # private, as in _messages: one message for all the job's task-revoked events
            self._announce([dispatcher._prepare_event("task-revoked", {"uuid": tid, "terminated": False,
                                                                        "expired": False, "signum": None})
                            for tid in task_ids])
        except _LOST as exc:  # the purge stands; only Flower's view is late
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
