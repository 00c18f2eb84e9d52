"""The bucket queue on a real Redis: tasks sent by name with farm task ids, found again in
the queue list, purged per job. A database of its own, so no worker takes the messages."""

from __future__ import annotations

import base64
import json

import pytest
import redis as redis_py
from celery import Celery

from farm import defaults
from farm.protocol.queue import TASK_NAME, BucketQueue, parse_task_id, task_id


@pytest.fixture
def queue(redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + "/5"
    client = redis_py.Redis.from_url(url)
    client.flushdb()
    app = Celery("queue-test", set_as_current=False)
    app.config_from_object("farm.celeryconfig")
    app.conf.broker_url = url
    yield BucketQueue(client, app)
    client.flushdb()


def test_task_ids_say_job_and_bucket():
    job_id = "a" * 32
    assert parse_task_id(task_id(job_id, 17)) == (job_id, 17)
    assert task_id(job_id, 3) != task_id(job_id, 3), "each send is a delivery of its own"
    for other in ("", "plain-uuid-4f3c", "a.b.c", f"{job_id}.x.1", f"{job_id}.1"):
        assert parse_task_id(other) is None


def test_buckets_are_sent_by_name_in_order_and_found_per_job(queue):
    queue.send("job1", [3, 1, 2])
    queue.send("job2", [0], copy=True)
    raw = queue.redis.lrange(defaults.QUEUE, 0, -1)
    messages = [json.loads(m) for m in reversed(raw)]  # Celery pushes on the left, workers pop on the right
    assert [m["headers"]["task"] for m in messages] == [TASK_NAME] * 4
    assert [parse_task_id(m["headers"]["id"]) for m in messages] == [("job1", 3), ("job1", 1), ("job1", 2), ("job2", 0)]
    assert queue.scan("job1").queued == {1, 2, 3} and queue.scan("job2").queued == {0}


def test_purge_removes_only_that_jobs_messages(queue):
    queue.send("job1", [0, 1])
    queue.send("job2", [0])
    assert queue.purge("job1") == 2
    assert queue.scan("job1").queued == set() and queue.scan("job2").queued == {0}


def test_a_message_that_is_not_a_farm_task_is_skipped(queue):
    queue.redis.lpush(defaults.QUEUE, b"not json", json.dumps({"headers": {"id": "someone-else"}}))
    queue.send("job1", [4])
    assert queue.scan("job1").queued == {4}
    assert queue.purge("job1") == 1 and queue.redis.llen(defaults.QUEUE) == 2


def test_batched_buckets_are_the_messages_send_task_makes_each_with_its_sent_event(queue):
    """Sent in batches, a bucket is still an ordinary Celery message (any worker
    reads it) with the task-sent event Flower shows it by."""
    events = queue.redis.pubsub()
    events.psubscribe("*celeryev/task.*")
    events.get_message(timeout=1)  # the subscription's confirmation
    queue.app.send_task(TASK_NAME, ("job0", 0), task_id=task_id("job0", 0))
    queue.send("job1", range(5))
    reference, *batched = [json.loads(m) for m in reversed(queue.redis.lrange(defaults.QUEUE, 0, -1))]
    for message in batched:
        assert message.keys() == reference.keys()
        assert message["headers"].keys() == reference["headers"].keys()
        assert message["properties"].keys() == reference["properties"].keys()
        assert message["properties"]["delivery_info"] == reference["properties"]["delivery_info"]
        assert message["content-type"] == reference["content-type"] == "application/json"
    assert [m["headers"]["argsrepr"] for m in batched] == [repr(("job1", i)) for i in range(5)]
    sent = []
    while (event := events.get_message(timeout=1)) is not None:
        if event["type"] == "pmessage":
            body = json.loads(base64.b64decode(json.loads(event["data"])["body"]))
            for sent_event in body if isinstance(body, list) else [body]:  # task.multi: the batch's
                assert sent_event["type"] == "task-sent"
                sent.append(sent_event["uuid"])
    assert sent[1:] == [m["headers"]["id"] for m in batched] and sent[0] == reference["headers"]["id"]


@pytest.mark.parametrize("copy, priority", [(False, 0), (True, 3)])
def test_a_message_made_by_the_queue_is_the_one_kombu_writes_for_send_task(queue, monkeypatch, copy, priority):
    """BucketQueue._messages makes every message itself (issue 31): what Celery's message
    (as_task_v2, as send_task makes it) published by kombu's Redis channel is, on the same
    priority list, but for the delivery tag (a uuid4 each)."""
    import farm.protocol.queue as module

    monkeypatch.setattr(module, "task_id", lambda job_id, index, quiet=False, resent=False: f"{job_id}.{index}.feedbeef")
    kwargs = {"copy": True} if copy else {}
    headers, properties, body, _ = queue.app.amqp.as_task_v2(
        "job1.7.feedbeef", TASK_NAME, ("job1", 7), kwargs, argsrepr=repr(("job1", 7)), kwargsrepr=repr(kwargs))
    with queue.app.producer_or_acquire() as producer:  # how Celery's send_task publishes it
        producer.publish(body, exchange="", routing_key=defaults.QUEUE, serializer="json", headers=headers,
                         delivery_mode=2, **{**properties, "priority": priority})
    queue.send("job1", [6, 7], copy=copy, priority=priority)
    name = module.list_for(defaults.QUEUE, priority)
    assert name == (defaults.QUEUE if priority == 0 else f"{defaults.QUEUE}:{priority}")
    assert queue.redis.llen(name) == 3 and not any(queue.redis.llen(other) for other in module.queue_lists()
                                                   if other != name)
    kombus, first, made = [json.loads(m) for m in reversed(queue.redis.lrange(name, 0, -1))]
    for message in (kombus, made):
        assert message["properties"].pop("delivery_tag")
        message["headers"].pop("origin")  # the process's name: the same here, but said by each
    assert made == kombus
    assert json.loads(base64.b64decode(first["body"]))[0] == ["job1", 6]


def test_a_window_of_buckets_goes_out_as_tiles_come_in(farm, monkeypatch, cornell_document):
    """The client sends SEND_WINDOW buckets ahead, then more as tiles arrive, and records
    how many went out; the frame comes out whole."""
    from farm.client.start import start_job
    from farm.scene import parse_scene

    monkeypatch.setattr(defaults, "SEND_WINDOW", 3)
    monkeypatch.setattr(defaults, "SEND_BATCH", 1)  # one bucket per batch
    document = dict(cornell_document, film={"width": 48, "height": 32, "spp": 1})
    run = start_job(farm.redis, farm.app, parse_scene(document), document, 16, "spiral")
    assert run.job.sent() == 1 and len(run.unsent) == 5
    run.collect(stall_timeout=30)
    assert run.job.sent() == 6 and not run.unsent and run.film.complete


def test_a_bucket_sent_again_is_marked_so_and_shown_to_flower(queue):
    """Its worker takes it first, never as a quick delivery (farm.worker.quick)."""
    from farm.protocol.queue import is_resent

    queue.send("job1", [0, 1])
    queue.send("job1", [2], resent=True)
    ids = {parse_task_id(m["headers"]["id"])[1]: m["headers"]["id"]
           for m in map(json.loads, queue.redis.lrange(defaults.QUEUE, 0, -1))}
    assert [is_resent(ids[i]) for i in range(3)] == [False, False, True]
    assert not is_resent(task_id("job1", 0, quiet=True))


def test_buckets_taken_back_go_out_again_marked_as_sent_before(queue, cornell_document):
    """A paused run withdraws its queued buckets; sent again when it goes on, they are marked
    (RESENT), as recovery's are: a withdrawn message has lost any mark it had, so its next
    delivery must not be a quick one (farm.worker.quick)."""
    from farm.client.start import start_job
    from farm.protocol.queue import is_resent, queue_lists
    from farm.scene import parse_scene

    def queued() -> dict[int, str]:
        ids = [json.loads(m)["headers"]["id"] for name in queue_lists(None) for m in queue.redis.lrange(name, 0, -1)]
        return {parse_task_id(i)[1]: i for i in ids}

    document = dict(cornell_document, film={"width": 32, "height": 32, "spp": 1})
    run = start_job(queue.redis, queue.app, parse_scene(document), document, 16, "spiral")
    first = queued()
    assert sorted(first) == [0, 1, 2, 3] and not any(map(is_resent, first.values()))
    run.hold(True)
    assert queued() == {}
    run.hold(False)
    assert run.send_more() == 4
    again = queued()
    assert sorted(again) == [0, 1, 2, 3] and all(map(is_resent, again.values()))
