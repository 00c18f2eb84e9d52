"""The broker and the scene are input from outside: limits that stop a hostile or
mistaken input before it allocates much, JSON-only messages, and a fuzzed scene loader
that ends every input in a scene or one clear error."""

from __future__ import annotations

import io
import json
import os
import pickle
import time
import uuid
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm import defaults
from farm.exceptions import FarmError, SceneError
from farm.scene import parse_scene
from farm.scene.images import decode
from farm.scene.load import load_scene
from farm.scene.mesh import load_obj

from tests.files import CORNELL
from tests import commands


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming `width` x `height` with almost no pixel data: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def test_an_image_with_too_many_pixels_is_refused_before_decoding():
    with pytest.raises(SceneError, match="100000x100000 is over the limit of .* pixels per texture"):
        decode("huge.png", png_header_only(100_000, 100_000))


def test_a_decompression_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(defaults, "MAX_TEXTURE_PIXELS", 1 << 40)
    with pytest.raises(SceneError, match="more than 256 times its size .* decompression bomb"):
        decode("bomb.png", png_header_only(8000, 8000))


def test_a_flat_image_that_compresses_well_is_still_fine():
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (2048, 2048), (10, 20, 30)).save(out, format="PNG")  # ~1000:1, but only 12 MiB raw
    pixels, _ = decode("flat.png", out.getvalue())
    assert pixels.shape == (2048, 2048, 3)


def test_an_hdr_claiming_a_huge_size_is_refused():
    data = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n" + b"\0" * 64
    with pytest.raises(SceneError, match="30000x30000 is over the limit"):
        decode("sky.hdr", data)


def test_too_many_triangles_are_refused_before_parsing(monkeypatch, make_document):
    monkeypatch.setattr(defaults, "MAX_TRIANGLES", 10)
    obj = b"v 0 0 0\nv 1 0 0\nv 0 1 0\n" + b"f 1 2 3\n" * 11
    with pytest.raises(SceneError, match="11 faces, over the limit of 10 triangles"):
        load_obj("many.obj", obj)
    document = make_document()
    document["shapes"].append({"type": "mesh", "material": "white", "vertices": [[0, 0, 0], [1, 0, 0], [0, 1, 0]],
                               "triangles": [[0, 1, 2]] * 11})
    with pytest.raises(SceneError, match="over the limit of 10 triangles"):
        parse_scene(document)


def test_a_frame_too_large_or_in_too_many_buckets_is_refused(make_document, write_scene, tmp_path):
    path = write_scene(make_document(width=16384, height=16384))
    result = commands.run("submit", path, "-o", tmp_path / "o.png", "--bucket-size", 8, "--broker", "redis://127.0.0.1:1/0",
                          timeout=60)
    assert result.returncode == 2 and not (tmp_path / "o.png").exists()
    assert result.stderr.strip().splitlines() == [
        "submit: error: 16384x16384 in 8 px buckets is 4194304 buckets, over the limit of 200000 "
        "(FARM_MAX_BUCKETS): use larger buckets"]


def test_a_worker_rechecks_the_job_it_reads_from_redis(redis_server):
    import redis as redis_py

    from farm.exceptions import JobError
    from farm.protocol.jobs import Job
    from farm.protocol.record import JobRecord

    client = redis_py.Redis.from_url(redis_server.url)
    job_id = uuid.uuid4().hex
    client.hset(JobRecord.key_for(job_id), mapping={"job_id": job_id, "digest": "0" * 64, "width": 1_000_000, "height": 10,
                                               "spp": 1, "bucket_size": 64, "order": "spiral", "created": 0})
    client.expire(JobRecord.key_for(job_id), 60)
    with pytest.raises(JobError, match="1000000x10 is over the limit of 16384 pixels a side"):
        Job.load(client, job_id)
    client.hset(JobRecord.key_for(job_id), "width", "ten")
    with pytest.raises(JobError, match="malformed description"):
        Job.load(client, job_id)


class _Payload:
    """Unpickling this runs a command: what a hostile message on the broker would carry."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_message_runs_nothing(farm, tmp_path, make_document):
    """A task message in pickle on the bucket queue: the workers refuse to deserialize it,
    nothing in it runs, and they go on rendering."""
    from kombu import Connection, Exchange, Producer

    from farm.scene.parse import parse_scene as parse

    marker = tmp_path / "pwned"
    body = ((_Payload(str(marker)), 0), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None})
    assert pickle.loads(pickle.dumps(_Payload(str(tmp_path / "self-check")))) == 0  # the payload does run if unpickled
    assert (tmp_path / "self-check").exists()
    with Connection(farm.broker_url, transport_options=farm.app.conf.broker_transport_options) as connection:
        producer = Producer(connection.channel(), exchange=Exchange(defaults.QUEUE, type="direct"))
        producer.publish(
            body, routing_key=defaults.QUEUE, serializer="pickle", declare=[],
            headers={"lang": "py", "task": "farm.render_bucket", "id": f"{uuid.uuid4().hex}.0.pickle",
                     "root_id": None, "parent_id": None, "group": None, "argsrepr": "", "kwargsrepr": "",
                     "origin": "attacker", "retries": 0},
        )
    def logs() -> str:
        return "".join(worker.log_path.read_text(errors="replace") for worker in farm.workers)

    commands.wait_for(lambda: "Refusing to deserialize untrusted content of type pickle" in logs(), 30,
                      "a worker to refuse the pickled message")
    assert farm.redis.llen(defaults.QUEUE) == 0  # taken off the queue...
    assert not marker.exists()  # ...and nothing in it ran
    document = make_document(width=16, height=16, spp=1)
    run = farm.render(parse(document), document, bucket_size=8)  # the workers are still fine
    assert len(run.records) == 4


# -- fuzzing -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
CORNELL_DOCUMENT = json.loads(CORNELL.read_text())
PATHS = [("film",), ("camera",), ("materials",), ("shapes",), ("lights",), ("textures",), ("film", "width"),
         ("camera", "fov"), ("shapes", 0), ("shapes", 0, "transform"), ("materials", "white"), ("version",)]


def _mutate(document, path, value):
    target = document
    for key in path[:-1]:
        if isinstance(target, dict) and key in target or isinstance(target, list) and isinstance(key, int) and key < len(target):
            target = target[key]
        else:
            return document
    if isinstance(target, dict) or (isinstance(target, list) and isinstance(path[-1], int) and path[-1] < len(target)):
        target[path[-1]] = value
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_fuzz_any_json_is_a_scene_or_a_scene_error(value):
    try:
        parse_scene(value)
    except SceneError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=json_values)
def test_fuzz_a_valid_scene_with_one_part_replaced(path, value):
    document = _mutate(json.loads(json.dumps(CORNELL_DOCUMENT)), path, value)
    try:
        parse_scene(document)
    except SceneError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_fuzz_scene_files_of_any_bytes(tmp_path, data):
    """Whatever the file holds (as JSON, glTF or binary glTF), load_scene returns a scene
    or raises one FarmError: never another exception."""
    for name in ("scene.json", "scene.gltf", "scene.glb"):
        path = tmp_path / name
        path.write_bytes(data)
        try:
            load_scene(path)
        except FarmError:
            pass


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), suffix=st.sampled_from(["png", "jpg", "exr", "hdr"]))
def test_fuzz_images_of_any_bytes(data, suffix):
    try:
        pixels, _ = decode(f"x.{suffix}", data)
        assert pixels.ndim == 3
    except SceneError:
        pass


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300) | st.text(alphabet="vf 0123456789./-\n", max_size=300).map(str.encode))
def test_fuzz_obj_of_any_bytes(data):
    try:
        mesh = load_obj("x.obj", data)
        assert np.isfinite(mesh.vertices).all() and mesh.faces.max() < len(mesh.vertices)
    except SceneError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 40), value=json_values)
def test_fuzz_gltf_with_one_field_replaced(tmp_path, index, value):
    """A valid glTF with one field anywhere in it replaced by anything: converted, or one
    SceneError."""
    from tests.files import build_gltf, write_glb

    document, binary = build_gltf()
    holders = [(holder, key) for holder in _walk(document) for key in holder]
    holder, key = holders[index % len(holders)]
    holder[key] = value
    path = tmp_path / "fuzz.glb"
    write_glb(path, document, binary)
    try:
        from farm.protocol.assets import FolderAssets
        from farm.scene.files import check_files

        scene, _ = load_scene(path)
        check_files(scene, FolderAssets(tmp_path, scene.assets))
    except FarmError:
        pass


def _walk(value):
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child)


def _collect_unsent(farm, job):
    """The client's run of `job` (created, nothing sent yet), collected; what ended it."""
    from farm.client.film import Film
    from farm.client.run import JobRun
    from farm.protocol.queue import BucketQueue

    wanted = job.units.in_order()
    run = JobRun(job, Film(job.meta.width, job.meta.height, (), job.meta.spp), BucketQueue(farm.redis, farm.app),
                 unsent=list(wanted), wanted=wanted)
    deadline = time.monotonic() + 60

    def bounded() -> None:
        if time.monotonic() > deadline:
            raise AssertionError("the job did not end within 60 s")

    with pytest.raises(FarmError) as ended:
        run.collect(check_alive=bounded, stall_timeout=60)
    return ended.value


def _no_bad_worker_and_nothing_queued(farm, job_id: str) -> None:
    from farm.protocol import registry
    from farm.protocol.queue import BucketQueue

    assert {name: w.bad for name, w in registry.workers(farm.redis).items() if w.bad} == {}
    queue = BucketQueue(farm.redis, farm.app)  # purged by whoever failed the job, right after it told the client
    commands.wait_for(lambda: not queue.scan(job_id).queued, 10, "the failed job's queued messages to go")


@pytest.mark.parametrize("field, damage, named", [("width", "ten", "field width is 'ten', not an integer"),
                                                  ("digest", None, "field digest is missing")])
def test_a_malformed_job_record_fails_the_job_once_naming_the_field(farm, make_document, field, damage, named):
    """Workers that find a job's record damaged fail the job with the field named (the
    job's fault, the same on every worker), instead of skipping its buckets while the
    client sends them again for ever; `farm status` lists it."""
    from farm.client.status import job_lines
    from farm.protocol.jobs import Job
    from farm.protocol.record import JobRecord

    document = make_document(width=32, height=32, spp=2)
    job = Job.create(farm.redis, Job.describe(parse_scene(document), 16, "spiral"), document)
    if damage is None:
        farm.redis.hdel(JobRecord.key_for(job.job_id), field)
    else:
        farm.redis.hset(JobRecord.key_for(job.job_id), field, damage)
    error = _collect_unsent(farm, job)
    assert named in str(error) and "malformed description" in str(error), error
    assert JobRecord(farm.redis, job.job_id).state()[0] == "failed"
    assert [line for line in job_lines(farm.redis) if line.startswith(job.job_id)] == [
        f"{job.job_id}  failed     {JobRecord(farm.redis, job.job_id).state()[1]}"]
    _no_bad_worker_and_nothing_queued(farm, job.job_id)


def test_a_json_bomb_fails_its_job_not_the_workers(make_farm, make_document):
    """A scene document nested deeper than Python recurses: the job's fault on every worker,
    so the job fails once, its messages go, no worker goes bad, and they render on."""
    from farm.protocol.jobs import Job
    from farm.protocol.scenes import SceneStore

    farm = make_farm()
    document = make_document(width=32, height=32, spp=2, description="a bomb, once in Redis")
    job = Job.create(farm.redis, Job.describe(parse_scene(document), 8, "spiral"), document)  # 16 buckets
    depth = 200_000
    farm.redis.set(SceneStore.key_for(job.meta.digest), "[" * depth + "]" * depth)  # 400 kB, under the limit
    error = _collect_unsent(farm, job)
    assert "nested too deeply" in str(error), error
    _no_bad_worker_and_nothing_queued(farm, job.job_id)
    good = make_document(width=16, height=16, spp=1)
    assert farm.render(parse_scene(good), good, bucket_size=8).film.complete
