"""The Celery settings the farm's guarantees rest on, and Flower seeing the buckets."""

import json
import os
import subprocess
import sys
import urllib.request


from farm.app import app
from tests import commands
from tests.ports import free_port


def test_settings_that_keep_buckets_safe():
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.result_accept_content == ["json"] and conf.event_serializer == "json"
    assert conf.worker_send_task_events and conf.task_send_sent_event
    # no acknowledgement emulation: the farm's leases find a lost bucket (farm.celeryconfig)
    assert conf.broker_transport_options["ack_emulation"] is False
    app.loader.import_default_modules()  # what a worker does at start
    assert "farm.render_bucket" in app.tasks


def test_task_messages_are_small_json(farm):
    """What a bucket puts on the wire: a JSON body holding only (job id, bucket index)."""
    import base64

    from farm.tasks import render_bucket

    render_bucket.apply_async(("f" * 32, 7), queue="farm-inspect")  # a queue no worker reads
    raw = farm.redis.lpop("farm-inspect")
    envelope = json.loads(raw)
    assert envelope["content-type"] == "application/json"
    body = json.loads(base64.b64decode(envelope["body"]))
    assert body[0] == ["f" * 32, 7] and body[1] == {}
    assert len(raw) < 4096


def test_flower_shows_each_bucket_with_job_and_index(farm, make_document, tmp_path):
    """A real Flower on the farm's broker: every bucket of a job with its job id and index,
    a success; the buckets of a cancelled job revoked (the queued ones by the client's
    purge, the running one by its worker), none left pending or running."""
    from farm.client.start import start_job
    from farm.scene import parse_scene

    port = free_port()
    env = {**os.environ, "FARM_BROKER_URL": farm.broker_url, "FLOWER_UNAUTHENTICATED_API": "true"}
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "farm", "flower", f"--port={port}", "--address=127.0.0.1"],
        env=env, stdout=open(tmp_path / "flower.log", "wb"), stderr=subprocess.STDOUT,
    )
    try:
        def workers_seen() -> bool:  # by Flower's event consumer: it is subscribed
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/workers?json=1", timeout=2) as response:
                names = {worker.get("hostname") for worker in json.load(response)["data"]}
            return {worker.hostname for worker in farm.workers} <= names

        commands.wait_for(workers_seen, 60, "Flower to see the workers' events", interval=0.3)
        document = make_document(width=40, height=40, spp=2)
        run = farm.render(parse_scene(document), document, bucket_size=20)
        job_id = run.job.job_id

        def finished():  # the job's four buckets, each a success
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks?limit=1000", timeout=5) as response:
                tasks = json.load(response)
            seen = {t["args"]: t for t in tasks.values() if job_id in (t.get("args") or "")}
            return seen if len(seen) == 4 and all(t["state"] == "SUCCESS" for t in seen.values()) else None

        try:
            seen = commands.wait_for(finished, 60, "Flower to show the job's four buckets done", interval=0.3)
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; Flower's log ends:\n{(tmp_path / 'flower.log').read_text()[-2000:]}")
        for args, task in seen.items():
            assert task["name"] == "farm.render_bucket"
            assert task["state"] == "SUCCESS" and task["worker"] in {w.hostname for w in farm.workers}
        assert {eval(args)[1] for args in seen} == {0, 1, 2, 3}  # Flower shows args as Python repr

        document = make_document(width=64, height=64, spp=2048)  # 16 buckets of about a second
        scene = parse_scene(document)
        run = start_job(farm.redis, farm.app, scene, document, 16, "spiral")
        commands.wait_for(lambda: run.job.tiles.stored() and run.job.deliveries.leases(), 60, "a tile and a running bucket")
        run.cancel()
        cancelled = run.job.job_id

        def settled():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks?limit=1000", timeout=5) as response:
                tasks = [t for t in json.load(response).values() if cancelled in (t.get("args") or "")]
            return tasks if tasks and all(t["state"] in ("SUCCESS", "REVOKED") for t in tasks) else None

        tasks = commands.wait_for(settled, 30, "Flower to show the cancelled job's buckets revoked", interval=0.3)
        assert sum(t["state"] == "REVOKED" for t in tasks) >= 2, tasks
    finally:
        flower.terminate()
        flower.wait(10)
