"""A frame through real Redis and two real `celery -A farm worker` processes."""

import uuid
from dataclasses import replace

import numpy as np
import pytest

from farm import defaults
from farm.client.start import start_job
from farm.exceptions import JobDataError, JobError
from farm.protocol.jobs import Job, JobState
from farm.protocol.record import JobRecord
from farm.protocol.scenes import SceneStore
from farm.protocol.plans import Plan
from farm.protocol.queue import BucketQueue
from farm.protocol.tiles import TileHeader
from farm.scene import parse_scene
from tests import frames


@pytest.fixture(scope="module")
def odd_frame(cornell_document, device):
    """A 97x61 frame (no bucket size divides it) and its one-call in-process render."""
    document = dict(cornell_document, film={"width": 97, "height": 61, "spp": 16})
    scene = parse_scene(document)
    return scene, document, frames.reference(device, scene)


def test_farm_frame_is_bit_identical_to_one_process(farm, odd_frame):
    scene, document, reference = odd_frame
    run = farm.render(scene, document, bucket_size=16)
    assert run.film.complete and (run.film.coverage == 1).all()
    assert np.array_equal(run.film.pixels, reference)
    assert set(run.workers()) == {w.hostname for w in farm.workers}, "both workers took part"
    assert sum(run.workers().values()) == run.total == 7 * 4


@pytest.mark.parametrize("bucket_size,order", [(32, "top-down"), (61, "spiral"), (5, "spiral")])
def test_bucket_size_and_order_do_not_change_a_pixel(farm, odd_frame, bucket_size, order):
    scene, document, reference = odd_frame
    run = farm.render(scene, document, bucket_size=bucket_size, order=order)
    assert np.array_equal(run.film.pixels, reference)


def test_report_describes_every_bucket(farm, odd_frame, monkeypatch):
    scene, document, _ = odd_frame
    # one attempt a bucket: no straggler copies, which a loaded machine can make of any bucket
    monkeypatch.setattr(defaults, "SPECULATE", 0.0)
    run = farm.render(scene, document, bucket_size=32)
    report = run.report()
    assert report["job_id"] == run.job.job_id and report["scene_digest"] == scene.digest
    assert (report["width"], report["height"], report["spp"], report["bucket_size"]) == (97, 61, 16, 32)
    assert report["wall_seconds"] > 0
    assert [b["index"] for b in report["buckets"]] == list(range(8))
    hostnames = {w.hostname for w in farm.workers}
    for entry in report["buckets"]:
        assert set(entry) == {"index", "x", "y", "width", "height", "worker", "device", "attempts", "seconds", "sent",
                              "arrived"}
        assert entry["worker"] in hostnames and entry["device"] and entry["attempts"] == 1 and entry["seconds"] > 0
        assert 0 <= entry["sent"] < entry["arrived"] <= report["wall_seconds"] + 1e-6  # the report rounds to 1 us
    timing = {"worker": "", "device": "", "seconds": 0, "sent": 0, "arrived": 0}
    assert report["buckets"][4] | timing == {"index": 4, "x": 0, "y": 32, "width": 32, "height": 29, "attempts": 1,
                                             **timing}


def test_first_tile_wins_and_duplicates_are_counted(farm, odd_frame):
    scene, document, reference = odd_frame
    run = farm.render(scene, document, bucket_size=32)
    job = run.job
    impostor = np.full((32, 32, 3), 7.0, np.float32)
    before = job.stats.read().get("duplicates", 0)  # a straggler's copy may already have lost a race on the farm
    assert not job.tiles.store(TileHeader(job.job_id, 0, 32, 32, "impostor@nowhere"), impostor, b"")
    assert job.stats.read().get("duplicates", 0) == before + 1
    header, pixels = job.tile(0)
    assert np.array_equal(pixels, reference[:32, :32]) and header.worker in {w.hostname for w in farm.workers}


@pytest.mark.parametrize("stray", [999999, -1])
def test_a_stray_message_is_dropped_and_the_job_renders(farm, odd_frame, stray):
    """A message for a bucket the job does not have (not sent by its client) touches
    nothing: it is counted, and the job renders. Bucket -1 too (issue 26 item 6b: it was
    taken, rendered as Python's last bucket or failed, and counted as a failure)."""
    from farm.app import app
    from farm.client.film import Film
    from farm.client.run import JobRun

    scene, document, reference = odd_frame
    job = Job.create(farm.redis, Job.describe(scene, 64, "spiral"), document)
    app.send_task("farm.render_bucket", (job.job_id, stray))
    queue = BucketQueue(farm.redis, app)
    queue.send(job.job_id, range(job.bucket_count))
    run = JobRun(job, Film(97, 61), queue)
    run.collect(stall_timeout=30)
    assert np.array_equal(run.film.pixels, reference) and Job.load(farm.redis, job.job_id).state == "done"
    farm.wait_for(lambda: job.stats.read().get("stray") == 1, 30, "the stray message to be counted")
    assert -1 not in job.deliveries.attempts() and not any(job.deliveries.troubles().values())


@pytest.mark.parametrize("scene_text, error", [
    ("{not json", "is not JSON"),
    ('{"version": 1}', "missing field"),
    ('"' + "x" * (16 << 20) + '"', r"is 16.0 MiB, over the limit of 16.0 MiB \(FARM_MAX_SCENE_BYTES\)"),
], ids=["not-json", "not-a-scene", "too-large"])
def test_a_job_whose_scene_is_bad_in_redis_fails_once_and_no_worker_is_blamed(farm, odd_frame, scene_text, error):
    """Anyone with broker access can enqueue such a job. It fails with the reason, the
    workers stay healthy (before, three of these made every worker refuse all work), and
    the next job renders."""
    from farm.app import app
    from farm.client.film import Film
    from farm.client.run import JobRun
    from farm.protocol import registry

    scene, document, reference = odd_frame
    meta = replace(Job.describe(scene, 64, "spiral"), digest=uuid.uuid4().hex * 2)  # a scene no worker has
    job = Job.create(farm.redis, meta, document)
    farm.redis.set(SceneStore.key_for(meta.digest), scene_text, ex=60)
    queue = BucketQueue(farm.redis, app)
    queue.send(job.job_id, range(job.bucket_count))
    with pytest.raises(JobError, match=rf"bucket \d failed: .*scene {meta.digest[:12]}.*{error}"):
        JobRun(job, Film(97, 61), queue).collect(stall_timeout=30)
    assert not any(w.bad for w in registry.workers(farm.redis).values())
    assert np.array_equal(farm.render(scene, document, bucket_size=64).film.pixels, reference)


def test_cancelled_job_is_skipped_by_workers(farm, odd_frame):
    from farm.app import app

    scene, document, _ = odd_frame
    job = Job.create(farm.redis, Job.describe(scene, 64, "spiral"), document)
    job.finish("cancelled")
    BucketQueue(farm.redis, app).send(job.job_id, range(job.bucket_count))
    run = start_job(farm.redis, app, scene, document, 64, "spiral")  # a later job still runs
    run.collect(stall_timeout=30)
    assert job.deliveries.attempts() == {} and not job.tiles.has(0)


def test_workers_log_their_device_at_start(farm, device):
    for worker in farm.workers:
        log = worker.log_path.read_text()
        assert "ready on OpenCL device" in log and device.name in log


def test_program_built_and_scene_uploaded_once_per_process(farm, make_document):
    document = make_document(width=80, height=40, spp=2, seed=12345)  # a scene no other test uses
    scene = parse_scene(document)
    run = farm.render(scene, document, bucket_size=8)  # 50 buckets
    assert run.total == 50
    for worker in farm.workers:
        log = worker.log_path.read_text()
        assert log.count(f"scene {scene.digest[:12]} uploaded") <= 1
        assert log.count("built pathtrace.cl for") == 1  # one pool child, one build (of the variant it needs)
    assert sum(w.log_path.read_text().count(f"scene {scene.digest[:12]} uploaded") for w in farm.workers) == len(
        run.workers()
    )


def test_malformed_events_are_ignored_not_fatal(farm, odd_frame):
    scene, document, reference = odd_frame
    job = Job.create(farm.redis, Job.describe(scene, 64, "spiral"), document)
    events = job.events.key
    from farm.protocol.tiles import encode_tile

    # an event carrying a tile (small tiles come so) is held to a stored tile's checks: forged here
    forged = encode_tile(TileHeader(job.job_id, 0, 64, 61, "w1@forger"), np.zeros((61, 64, 3), np.float32), b"x")
    farm.redis.rpush(events, b"not json", b'{"bucket": 0, "surprise": 1}', b'{"bucket": 999, "worker": "x"}', forged,
                     forged[:20])
    from farm.app import app
    from farm.client.film import Film
    from farm.client.run import JobRun

    queue = BucketQueue(farm.redis, app)
    queue.send(job.job_id, range(job.bucket_count))
    run = JobRun(job, Film(97, 61), queue)
    run.collect(stall_timeout=30)
    assert np.array_equal(run.film.pixels, reference) and len(run.records) == 2
    assert run.invalid_tiles == 1 and any("w1@forger" in notice for notice in run.notices)


@pytest.mark.parametrize("refusal", ["unknown command 'blmpop', with args beginning with: '1' '1'",
                                     "NOPERM User farm has no permissions to run the 'blmpop' command"])
def test_events_are_read_without_blmpop_where_the_server_refuses_it(redis_server, monkeypatch, refusal):
    """A Redis 6 answers BLMPOP with an unknown command, an ACL written before farm used it
    with NOPERM: events are then popped (LPOP) and waited for (BLPOP) as before, from then
    on, whether one list is read first or several (a shot's frames, a manager's jobs)."""
    import redis as redis_py

    from farm.protocol import events

    class Refusing(redis_py.Redis):
        def blmpop(self, *args, **kwargs):
            raise (redis_py.exceptions.NoPermissionError if "NOPERM" in refusal else redis_py.ResponseError)(refusal)

    url = redis_server.url.rsplit("/", 1)[0] + "/7"
    redis = Refusing.from_url(url)
    for first in (["e1", "e2"], ["e1"]):
        redis.delete("e1", "e2")
        monkeypatch.setattr(events, "_blmpop", True)
        assert events.pop(redis, first, 0.05, 10) == [] and events._blmpop is False
        redis.rpush("e2", b"a", b"b")
        assert events.pop(redis, ["e1", "e2"], 0.05, 10) == [("e2", [b"a", b"b"])]
        redis.rpush("e1", b"c")
        assert events.pop(redis, ["e1"], 0.05, 10) == [("e1", [b"c"])]
    monkeypatch.setattr(events, "_blmpop", True)  # a server with it: one list, or the first of several
    plain = redis_py.Redis.from_url(url)
    plain.rpush("e2", b"d", b"e")
    assert events.pop(plain, ["e1", "e2"], 0.05, 10) == [("e2", [b"d", b"e"])]
    assert events.pop(plain, ["e1", "e2"], 0.05, 10) == [] and events._blmpop is True


def test_invalid_tiles_are_counted_and_rendered_again(farm, odd_frame):
    """Tiles of another job, of another bucket, of the wrong size, with NaN, or not tiles at
    all are rejected by the client, deleted, and their buckets rendered again."""
    from farm.app import app
    from farm.client.film import Film
    from farm.client.run import JobRun
    from farm.protocol import secret
    from farm.protocol.tiles import decode_tile, encode_tile

    scene, document, reference = odd_frame
    job = Job.create(farm.redis, Job.describe(scene, 32, "spiral"), document)  # 8 buckets of 32px (edges cut short)
    good, nan = np.zeros((32, 32, 3), np.float32), np.full((32, 32, 3), np.nan, np.float32)
    key = secret.key()
    assert key, "the embedded farm made its own secret"
    bogus = {
        0: encode_tile(TileHeader("f" * 32, 0, 32, 32), good, key),  # another job's
        1: encode_tile(TileHeader(job.job_id, 2, 32, 32), good, key),  # another bucket's
        2: encode_tile(TileHeader(job.job_id, 2, 16, 16), good[:16, :16], key),  # the wrong size
        3: b"garbage",  # not a tile
        4: encode_tile(TileHeader(job.job_id, 4, 32, 29, "w1@forger"), good[:29], b"not the farm's secret"),  # forged
        5: encode_tile(TileHeader(job.job_id, 5, 32, 32), nan, key),  # not finite
    }
    tiles = job.tiles.key
    farm.redis.hset(tiles, mapping={str(index): payload for index, payload in bogus.items()})
    queue = BucketQueue(farm.redis, app)
    queue.send(job.job_id, range(job.bucket_count))  # a first delivery renders, and its tile loses to the one there
    run = JobRun(job, Film(97, 61), queue)
    run.collect(stall_timeout=30)
    assert run.invalid_tiles == 6 and job.stats.read()["invalid"] == 6
    assert np.array_equal(run.film.pixels, reference) and (run.film.coverage == 1).all()
    assert sorted(run.resent) == [0, 1, 2, 3, 4, 5]
    assert any(n.startswith("bucket 4: tile rejected (authentication failed: not made with this farm's secret "
                            "(it claims worker 'w1@forger'") for n in run.notices)
    for index in range(job.bucket_count):  # what is stored now is right
        decode_tile(farm.redis.hget(tiles, str(index)), job.job_id, job.bucket(index), key)


def test_every_key_of_a_finished_job_expires(farm, odd_frame):
    scene, document, _ = odd_frame
    run = farm.render(scene, document, bucket_size=32)
    run.job.stats.count("duplicates")  # a late worker's counter after the job finished
    keys = [key for key in run.job.keys() if farm.redis.exists(key)]
    assert len(keys) >= 4  # the job, its tiles, events/stats, attempts
    for key in keys:
        assert 0 < farm.redis.ttl(key) <= 3600, key


def test_a_fresh_bucket_is_taken_in_one_round_trip_and_any_other_takes_the_long_way(redis_server, cornell_document):
    """Job.take starts a bucket only when nothing about it asks for the retry policy: the
    job runs, the index is the job's, and the bucket has no tile, lease, crash or failure."""
    import redis as redis_py

    from farm.protocol.leases import Lease

    redis = redis_py.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/7")
    redis.flushdb()
    document = dict(cornell_document, film={"width": 32, "height": 16, "spp": 1})
    scene = parse_scene(document)
    job = Job.create(redis, Job.describe(scene, 8, "spiral"), document)  # 8 buckets

    def draft(index: int) -> Lease:
        return Lease(index, 0, "w1@h", "h", 4321, "cpu", 0.0, 0.0)

    taken, lease = Job.take(redis, job.job_id, draft(0))
    assert taken.job_id == job.job_id and taken.bucket_count == 8 and not taken.state
    assert (lease.attempt, lease.worker, lease.pid) == (1, "w1@h", 4321) and lease.until > lease.started > 0
    (held,) = taken.deliveries.leases()  # as the script wrote it: cjson keeps 14 digits of the times
    assert (held.name, held.worker, held.device) == (lease.name, "w1@h", "cpu")
    assert held.until == pytest.approx(lease.until, abs=1e-3)
    assert job.deliveries.attempts() == {0: 1}
    assert Job.take(redis, job.job_id, draft(0)) is None  # its lease is there
    tile = np.zeros((8, 8, 3), np.float32)
    for index in (1, 2, 3):  # a delivery of each, which failed, crashed, stored its tile
        _, started = Job.take(redis, job.job_id, draft(index))
        if index == 1:
            job.deliveries.record_failure(1, "w2@h", "boom")
            job.deliveries.drop(started)
        elif index == 2:
            assert job.deliveries.remove_lost(started)
        else:
            job.tiles.store(TileHeader(job.job_id, 3, 8, 8), tile, b"k", lease=started.name)
    assert [held.bucket for held in job.deliveries.leases()] == [0]  # the stored tile ended its lease
    for index in (1, 2, 3, 8, 99):  # failed, crashed, stored, not the job's
        assert Job.take(redis, job.job_id, draft(index)) is None, index
    assert Job.take(redis, "no-such-job", draft(4)) is None
    redis.hset(JobRecord.key_for(job.job_id), "spp", "0")  # a description over the limits: no lease is left behind
    with pytest.raises(JobError):
        Job.take(redis, job.job_id, draft(4))
    assert [held.bucket for held in job.deliveries.leases()] == [0]
    redis.hset(JobRecord.key_for(job.job_id), "spp", "1")
    job.finish(JobState.CANCELLED)
    assert Job.take(redis, job.job_id, draft(5)) is None
    # the refused description counted a delivery, the refused looks none
    assert job.deliveries.attempts() == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}
    redis.flushdb()


def test_a_spare_part_of_a_bucket_already_done_is_not_rendered(redis_server, cornell_document):
    """Queued when its bucket ran late, a spare part finds the bucket's tile stored (the slow
    delivery won): the first look and the long way both see it done."""
    import redis as redis_py

    from farm.protocol.leases import Lease

    redis = redis_py.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/7")
    redis.flushdb()
    document = dict(cornell_document, film={"width": 32, "height": 16, "spp": 4})
    job = Job.create(redis, Job.describe(parse_scene(document), 8, "spiral", spares=2), document)  # 8 buckets

    def draft(index: int) -> Lease:
        return Lease(index, 0, "w1@h", "h", 4321, "cpu", 0.0, 0.0)

    job.tiles.store(TileHeader(job.job_id, 3, 8, 8), np.zeros((8, 8, 3), np.float32), b"k")
    done, fresh = job.units.spares_of(3), job.units.spares_of(5)
    assert all(Job.take(redis, job.job_id, draft(index)) is None and Job.look(redis, job.job_id, index)[1].stored
               for index in done)
    taken, lease = Job.take(redis, job.job_id, draft(fresh[1]))
    assert lease.bucket == fresh[1] and not Job.look(redis, job.job_id, fresh[0])[1].stored
    redis.flushdb()


def test_progressive_rounds_add_up_to_the_same_bits(farm, make_document, device):
    """Rounds of 1, 2, 4 samples, each job's tiles the sums of its own samples, added up by
    the client: the last round's frame is the one-process frame, bit for bit, AOVs
    included; an earlier round is the frame of its samples so far, bit for bit too."""
    from farm.client.rounds import progressive_rounds

    assert progressive_rounds(1) == [(0, 1)] and progressive_rounds(5) == [(0, 1), (1, 2), (2, 4), (4, 5)]
    document = make_document(width=40, height=24, spp=4)
    scene = parse_scene(document)
    film, shown = None, []
    for first, end in progressive_rounds(4):
        film = farm.render(scene, document, bucket_size=16, aovs=("albedo",), plan=Plan.uniform(40, 24, first, end),
                           film=film).film
        shown.append(film.pixels.copy())
    direct = frames.reference(device, scene, aovs=True)
    assert np.array_equal(film.pixels, direct[..., :3])
    assert np.array_equal(film.aov_channels, direct[..., 3:])
    two = frames.reference(device, document, spp=2)
    assert np.array_equal(shown[1], two)  # round 2 shows 2 spp


def test_a_time_limit_cuts_a_round_to_the_samples_that_fit_and_cancels_one_past_it(farm, make_document, tmp_path):
    """--time-limit: the next round is kept, cut or dropped by the rate of the rounds
    before; one still rendering at the limit is cancelled on the farm, and nothing is
    written (the output holds the round before)."""
    from farm.client.film import Film
    from farm.client.render import FrameRender, RenderOptions
    from farm.client.timelimit import RoundClock, TimeUp

    clock = RoundClock(10, 20, 10)
    clock.done(Plan.uniform(20, 10, 0, 4), 2.0)  # 800 pixel samples in 2 s: 400 a second
    whole = Plan.uniform(20, 10, 4, 8)
    assert clock.fit(whole, left=2.5) is whole
    assert clock.fit(whole, left=1.0).bounds == (4, 5)  # 0.9 s of 400 a second: 1 sample for each of 200 pixels
    assert clock.fit(whole, left=0.4) is None
    ends = np.full((2, 3), 4, np.int32)
    ends[0, 0] = 20  # one 8-px cell gets 16 more: 64 x 16 = 1024 pixel samples
    cells = Plan.for_frame(20, 10, 8, np.full((2, 3), 4, np.int32), ends)
    assert clock.fit(cells, left=2.6) is cells
    cut = clock.fit(cells, left=2.5)  # 900 of the 1024 fit: 16 x 900 / 1024 = 14.06 more samples
    assert np.array_equal(cut.ranges[..., 0], cells.ranges[..., 0]) and cut.bounds == (4, 18)
    assert cut.ranges[..., 1].sum() == 18 + 5 * 4 and clock.fit(cells, left=0.05) is None

    document = make_document(width=40, height=24, spp=64)
    scene = parse_scene(document)
    run = start_job(farm.redis, farm.app, scene, document, 16, "spiral", plan=Plan.uniform(40, 24, 0, 64),
                    film=Film(40, 24, (), 64))
    with pytest.raises(TimeUp):
        FrameRender(farm.redis, farm.app, scene, document, None, RenderOptions(), tmp_path / "frame.exr").collect(
            run, deadline=0.0)
    assert run.job.refresh() == JobState.CANCELLED and list(tmp_path.iterdir()) == []


def test_split_tail_buckets_add_up_to_the_unsplit_bits(farm, make_document, device):
    """The last three buckets sent as three sample ranges each, on two workers: the parts'
    sums, added in whatever order they arrive, give the one-process frame bit for bit."""
    document = make_document(width=40, height=24, spp=6)
    scene = parse_scene(document)
    run = farm.render(scene, document, bucket_size=16, aovs=("depth",), split=(3, 3))
    assert run.job.unit_count == 6 + 9 and len(run.records) == 3 + 9
    assert {run.job.part(index)[1] for index in range(6, 15)} == {(0, 2), (2, 4), (4, 6)}
    direct = frames.reference(device, scene, aovs=True)
    assert np.array_equal(run.film.pixels, direct[..., :3]) and np.array_equal(run.film.aov_channels, direct[..., 3:])
    assert run.film.complete
    with pytest.raises(JobError, match="is not a split of this frame"):
        Job.describe(scene, 16, "spiral", split=(3, 7))  # more parts than samples


def test_spare_parts_are_numbered_after_the_tail_and_sent_only_on_demand(make_document):
    from farm.buckets import Bucket
    from farm.protocol.units import Units

    scene = parse_scene(make_document(width=40, height=24, spp=6))
    units = Units(Job.describe(scene, 16, "spiral", split=(3, 3), spares=2))  # 6 buckets, the last 3 in 3 parts
    assert (units.bucket_count, units.spare_base, units.unit_count) == (6, 15, 27)
    assert len(units.in_order()) == 3 + 9 and not any(units.spare(index) for index in units.in_order())
    assert units.spares_of(4) == [23, 24] and [units.part(index) for index in (23, 24)] == [(4, (0, 3)), (4, (3, 6))]
    assert units.bucket(24) == Bucket(24, 16, 16, 16, 8) and not units.spare(27)
    with pytest.raises(JobError, match="spare parts of 6 samples is not a split"):
        Job.describe(scene, 16, "spiral", spares=7)  # more parts than samples
    with pytest.raises(JobError, match="spare parts"):
        Job.describe(scene, 16, "spiral", plan=Plan.uniform(40, 24, 0, 6), spares=2)  # a round's sums


def test_a_job_whose_sample_plan_is_gone_or_malformed_says_so(redis_server, make_document):
    """A noise-target round's plan lives beside its record; a worker that finds it missing
    or not fitting the frame fails the job's data in one line, and reads nothing out of
    bounds."""
    import redis as redis_py

    redis = redis_py.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/8")
    scene = parse_scene(make_document(width=20, height=12, spp=4))
    plan = Plan.for_frame(20, 12, 8, np.zeros((2, 3), np.int32), np.array([[4, 0, 2], [1, 1, 3]], np.int32))
    meta = Job.describe(scene, 16, "spiral", plan=plan)
    assert (meta.sums, meta.cell, meta.samples) == (True, 8, (0, 4))
    job = Job.create(redis, meta, {}, plan)
    assert np.array_equal(job.plan().ranges, plan.ranges)
    redis.delete(job.plans.key)
    with pytest.raises(JobDataError, match="has no sample plan in Redis"):
        job.plan()
    redis.set(job.plans.key, plan.to_bytes()[:-4])
    with pytest.raises(JobDataError, match="sample plan is malformed"):
        job.plan()
    wider = Plan.for_frame(30, 12, 8, np.zeros((2, 4), np.int32), np.ones((2, 4), np.int32))
    redis.set(job.plans.key, wider.to_bytes())
    with pytest.raises(JobDataError, match="does not fit its 20x12 frame"):
        job.plan()
    redis.set(job.plans.key, Plan(8, -plan.ranges).to_bytes())
    with pytest.raises(JobDataError, match="ranges outside"):
        job.plan()
    redis.flushdb()
