"""`submit` as a user runs it: a real subprocess, real exit codes, real output files."""

from __future__ import annotations

import contextlib
import json
import re
import resource
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from farm.buckets import count
from farm.client.film import Film, read_exr
from tests import commands, frames


def submit(*args, env=None, timeout=120):
    return commands.run("submit", *args, env=env, timeout=timeout)


def assert_one_line_error(result, expected: str):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("submit: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert result.seconds < 15, f"took {result.seconds:.1f}s"


BAD_SCENES = [
    ("invalid json", '{"version": 1,', "invalid JSON at line 1"),
    ("missing field", lambda d: d.pop("camera"), "missing field 'camera'"),
    ("unknown material", lambda d: d["shapes"][0].update(material="gold"), "unknown material 'gold'"),
    ("zero resolution", lambda d: d["film"].update(width=0), "width (pixels) 0 is out of range"),
    ("million wide", lambda d: d["film"].update(width=1_000_000), "width (pixels) 1000000 is out of range"),
]


@pytest.mark.parametrize("name,change,message", BAD_SCENES, ids=[c[0] for c in BAD_SCENES])
def test_bad_scene_is_one_line_and_exit_2(cornell_document, write_scene, tmp_path, name, change, message):
    if isinstance(change, str):
        path = write_scene(change)
    else:
        document = json.loads(json.dumps(cornell_document))
        change(document)
        path = write_scene(document)
    result = submit(path, "-o", tmp_path / "out.png", "--broker", "redis://127.0.0.1:1/0")
    assert_one_line_error(result, message)
    assert not (tmp_path / "out.png").exists()


def test_unreachable_broker_is_one_line_and_exit_2(tmp_path):
    from tests.files import CORNELL

    result = submit(CORNELL, "-o", tmp_path / "out.png", "--broker", "redis://127.0.0.1:1/0")
    assert_one_line_error(result, "cannot reach broker redis://127.0.0.1:1/0")


@pytest.mark.parametrize("args,message", [
    (["-o", "out.tiff"], "unsupported output format .tiff"),
    (["-o", "no/such/folder/out.png"], "does not exist"),
    (["-o", "out.png", "--bucket-size", "0"], "--bucket-size must be between 4 and 1024"),
    (["-o", "out.png", "--spp", "0"], "--spp must be between 1"),
    (["-o", "out.png", "--resolution", "0x0"], "--resolution: width and height must be between 1 and"),
    (["-o", "out.png", "--aov", "albedo"], "--aov writes layers of an EXR image; out.png is not one"),
    (["-o", "out.exr", "--aov", "albedo,colour"], "--aov: unknown AOV colour (known: albedo, normal, depth, variance, material)"),
    (["-o", "out.png", "--broker", "amqp:/nonsense"], "invalid broker URL"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path, monkeypatch, args, message):
    from tests.files import CORNELL

    monkeypatch.chdir(tmp_path)
    assert_one_line_error(submit(CORNELL, *args), message)


@pytest.mark.parametrize("output, message", [
    ("folder.png", "folder.png: is a folder, not an image file"),
    ("/proc/out.png", "/proc/out.png: cannot write in folder /proc"),  # a folder not even root can write in
])
def test_an_output_that_cannot_be_written_is_refused_before_rendering(tmp_path, monkeypatch, output, message):
    """Found before any worker starts or the broker is tried (an unreachable one here)."""
    from tests.files import CORNELL

    if output.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.png").mkdir()
    assert_one_line_error(submit(CORNELL, "-o", output, "--broker", "redis://127.0.0.1:1/0"), message)


def test_submit_to_a_running_farm_writes_the_exact_frame(farm, make_document, write_scene, tmp_path, device):
    document = make_document(width=70, height=50, spp=8)
    scene_path = write_scene(document)
    result = submit(scene_path, "-o", tmp_path / "frame.exr", "--bucket-size", "24", "--broker", farm.broker_url,
                    "--report", tmp_path / "report.json")
    assert result.returncode == 0, result.stderr
    reference = frames.reference(device, document)
    assert np.array_equal(read_exr(tmp_path / "frame.exr"), reference)
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["buckets"]) == 3 * 3 and report["bucket_size"] == 24
    assert "70x50, 8 spp, 9 buckets of 24px" in result.stdout
    assert "render: 100%" in result.stderr and "9/9" in result.stderr  # the progress bar



def test_without_a_bucket_size_buckets_are_sized_by_the_workers_speed_and_the_tail_is_split(
        farm, make_document, write_scene, tmp_path, device):
    """The workers note their samples/s on a first frame; the next frame's buckets take about
    FARM_BUCKET_SECONDS on the median worker, its last buckets split across the workers, and
    the image is the same bits."""
    document = make_document(width=96, height=64, spp=16)
    scene_path = write_scene(document)
    first = submit(scene_path, "-o", tmp_path / "first.exr", "--bucket-size", "16", "--broker", farm.broker_url)
    assert first.returncode == 0, first.stderr
    result = submit(scene_path, "-o", tmp_path / "frame.exr", "--broker", farm.broker_url, "--report",
                    tmp_path / "report.json", env={"FARM_BUCKET_SECONDS": "0.02"})
    assert result.returncode == 0, result.stderr
    said = re.search(r"^submit: (\d+) px buckets: about 0.02s each on the median of \d worker\(s\) \([\d.]+ M "
                     r"samples/s on (this scene|their last scenes, 1 of them this one); --bucket-size sets one\)$",
                     result.stderr, re.M)
    assert said, result.stderr
    side = int(said[1])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["bucket_size"] == side and side % 8 == 0
    buckets = count(96, 64, side)
    tail = min(2, buckets)  # the last bucket per worker, in a part per worker
    assert len(report["buckets"]) == buckets - tail + 2 * tail
    assert np.array_equal(read_exr(tmp_path / "frame.exr"), frames.reference(device, document))


def _file_size_limit(limit: int):
    """For preexec_fn: the command's writes past `limit` bytes fail with EFBIG, as on a full
    disk (SIGXFSZ ignored, else the write kills it); no root needed, unlike a small tmpfs."""

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("suffix", [".exr", ".png"])
def test_a_full_disk_is_one_line_naming_farm_collect_and_leaves_no_file(farm, make_document, write_scene, tmp_path,
                                                                         device, suffix):
    """The image cannot be written (no room): one line naming the file, the cause and the
    command that recovers the frame; nothing, truncated or temporary, in the output's folder;
    and `farm collect JOB -o OTHER` then writes the exact frame from the tiles kept on the farm."""
    document = make_document(width=40, height=32, spp=4)
    scene_path = write_scene(document)
    folder = tmp_path / "out"
    folder.mkdir()
    started = time.monotonic()
    result = subprocess.run([*commands.CLI, "submit", str(scene_path), "-o", str(folder / f"frame{suffix}"), "-q",
                             "--bucket-size", "16", "--broker", farm.broker_url],
                            capture_output=True, text=True, timeout=120, preexec_fn=_file_size_limit(256))
    result.seconds = time.monotonic() - started
    assert_one_line_error(result, f"cannot write {folder / f'frame{suffix}'}: File too large")
    found = re.search(r"farm collect (\S+) -o ", result.stderr)
    assert found, result.stderr
    assert list(folder.iterdir()) == []  # no truncated frame, no temporary file
    other = folder / f"other{suffix}"
    collected = commands.run("collect", found[1], "-o", other, "-q", "--broker", farm.broker_url)
    assert collected.returncode == 0, collected.stderr
    assert other.stat().st_size > 256  # the limit was what failed the first write
    reference = frames.reference(device, document)
    if suffix == ".exr":
        assert np.array_equal(read_exr(other), reference)
    else:
        from PIL import Image

        film = Film(40, 32)
        film.pixels = reference
        assert np.array_equal(np.asarray(Image.open(other)), film.srgb8())


def test_status_names_a_job_no_client_looks_after(farm, make_document):
    """A job whose client died stays `rendering` until it expires (a day); status says that
    nobody collects it, and how to."""
    from farm.defaults import JOB_TTL
    from farm.protocol.jobs import Job
    from farm.protocol.record import JobRecord
    from farm.scene import parse_scene

    document = make_document(width=16, height=16, spp=1)
    job = Job.create(farm.redis, Job.describe(parse_scene(document), 16, "spiral"), document)
    farm.redis.expire(JobRecord.key_for(job.job_id), JOB_TTL - 200)  # its client's last refresh, 200 s ago
    result = commands.run("status", "--broker", farm.broker_url)
    line = next(line for line in result.stdout.splitlines() if job.job_id in line)
    assert "rendering" in line and line.endswith(f"no client for 3 min: `farm collect {job.job_id} -o OUT` picks it up")
    job.finish("cancelled")
    # the workers, each with what it does and, once it has rendered, its samples/s
    assert re.search(r"^  test1@\S+  (busy|idle)(  [\d.]+ M samples/s on its last scene)?$", result.stdout, re.M), \
        result.stdout


def _buckets_done(progress: str) -> int:
    """The most buckets the progress bar has shown done (it may skip counts)."""
    return max((int(n) for n in re.findall(r" (\d+)/\d+ ", progress)), default=0)


def _marked() -> dict:
    """An environment that marks the processes of one submit: its workers inherit it."""
    return {"TEST_SUBMIT_MARK": uuid.uuid4().hex}


def _marked_processes(mark: dict) -> list[int]:
    """The processes still alive that carry `mark` (any other farm on this machine, another
    suite's or a user's, does not count)."""
    needle = f"TEST_SUBMIT_MARK={mark['TEST_SUBMIT_MARK']}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return found


def test_embedded_farm_renders_and_leaves_nothing_behind(make_document, write_scene, tmp_path):
    # buckets of some tens of milliseconds: at 4 spp (a millisecond each) the worker that
    # took the first one could finish all 16 before the other's first poll of the queue
    scene_path = write_scene(make_document(width=64, height=64, spp=256))
    mark = _marked()
    result = submit(scene_path, "-o", tmp_path / "out.png", "--workers", "2", "--bucket-size", "16",
                    "--report", tmp_path / "report.json", env=mark, timeout=300)
    assert result.returncode == 0, result.stderr
    from PIL import Image

    image = np.asarray(Image.open(tmp_path / "out.png"))
    assert image.shape == (64, 64, 3) and image.mean() > 10
    report = json.loads((tmp_path / "report.json").read_text())
    workers = {b["worker"].split("@")[0] for b in report["buckets"]}
    assert workers == {"local1", "local2"}
    assert "local1@" in result.stdout and "local2@" in result.stdout
    commands.wait_for(lambda: _marked_processes(mark) == [], 10, "the local workers to end")


def test_ctrl_c_stops_everything_and_keeps_what_was_rendered(make_document, write_scene, tmp_path):
    scene_path = write_scene(make_document(width=128, height=128, spp=512))
    mark = _marked()
    process = commands.start("submit", scene_path, "-o", tmp_path / "out.png", "--workers", 1, "--bucket-size", 16,
                             env=mark)
    progress = commands.read_until(process.stderr, lambda text: _buckets_done(text) >= 2, 120, "two buckets done")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, progress + stderr
    assert "submit: interrupted" in stderr and "Traceback" not in stderr
    assert (tmp_path / "out.partial.png").exists() and not (tmp_path / "out.png").exists()
    commands.wait_for(lambda: _marked_processes(mark) == [], 10, "the local workers to end")


def test_broker_gone_for_good_is_one_line_and_keeps_the_partial_frame(make_farm, make_document, write_scene,
                                                                         tmp_path):
    """A private Redis and worker; the Redis is stopped for good once some buckets are in."""
    farm = make_farm([{}], name="doomed")
    scene_path = write_scene(make_document(width=128, height=128, spp=256))
    process = farm.farm("submit", scene_path, "-o", tmp_path / "out.png", "--bucket-size", 16,
                        env={"FARM_BROKER_RETRY": "3"})  # give up 3s after the broker went away
    progress = commands.read_until(process.stderr, lambda text: _buckets_done(text) >= 2, 120, "two buckets done")
    farm.redis_server.stop()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, progress + stderr
    last = stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr and last.startswith("submit: error: lost the connection to the broker")
    assert (tmp_path / "out.partial.png").exists()
    farm.close(grace=1.0)  # its Redis is gone: no warm shutdown to wait for


@pytest.mark.parametrize("damage,message", [
    (lambda folder: (folder / "assets" / "tiles.png").unlink(), "missing file: assets/tiles.png"),
    (lambda folder: (folder / "assets" / "tiles.png").write_bytes(b"garbage"), "assets/tiles.png: cannot decode image"),
    (lambda folder: (folder / "assets" / "vase.obj").write_text("v 0 0 0\n"), "assets/vase.obj: the OBJ file has no triangles"),
    (lambda folder: (folder / "assets" / "sky.hdr").write_bytes(b"#?RADIANCE\n"), "assets/sky.hdr: cannot decode image"),
], ids=["missing texture", "broken texture", "broken mesh", "broken sky"])
def test_bad_scene_files_are_one_line_before_any_worker_starts(tmp_path, damage, message):
    """Files are checked by the client: the unreachable broker is never even tried."""
    import shutil

    from tests.files import ROOT

    shutil.copytree(ROOT / "scenes" / "assets", tmp_path / "assets")
    shutil.copy(ROOT / "scenes" / "textured-mesh.json", tmp_path / "scene.json")
    damage(tmp_path)
    result = submit(tmp_path / "scene.json", "-o", tmp_path / "out.png", "--broker", "redis://127.0.0.1:1/0")
    assert_one_line_error(result, message)


def test_denoise_without_its_library_says_so_in_one_line_and_writes_the_raw_frame(
    farm, make_document, write_scene, tmp_path, device
):
    broken = tmp_path / "no-oidn" / "pyoidn"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libOpenImageDenoise.so.2: cannot open shared object file')\n")
    document = make_document(width=32, height=24, spp=2)
    result = submit(write_scene(document), "-o", tmp_path / "frame.exr", "--denoise-prefilter", "--bucket-size", "16",
                    "--broker", farm.broker_url, env={"PYTHONPATH": str(broken.parent)})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "denoise" in line]
    assert warnings == ["submit: warning: cannot denoise: Intel Open Image Denoise (pyoidn) does not load: "
                        "libOpenImageDenoise.so.2: cannot open shared object file; install it with `pip install "
                        "pyoidn`; the raw image is written"]
    assert np.array_equal(read_exr(tmp_path / "frame.exr"), frames.reference(device, document))
    import OpenEXR

    with OpenEXR.File(str(tmp_path / "frame.exr"), separate_channels=True) as exr:  # the guides were rendered
        assert {"albedo.R", "normal.B"} <= set(exr.channels()) and "raw.R" not in exr.channels()


def test_progressive_submit_rewrites_the_output_each_round_and_ends_on_the_exact_frame(
    farm, make_document, write_scene, tmp_path, device
):
    document = make_document(width=32, height=24, spp=4)
    result = submit(write_scene(document), "-o", tmp_path / "frame.exr", "--progressive", "--bucket-size", "16",
                    "--broker", farm.broker_url)
    assert result.returncode == 0, result.stderr
    rounds = [line for line in result.stderr.splitlines() if line.startswith("round ")]
    assert rounds == ["round 1/3: samples 0 to 1 of 4", "round 2/3: samples 1 to 2 of 4",
                      "round 3/3: samples 2 to 4 of 4"]
    assert result.stdout.count("frame.exr: 32x24") == 3  # written after every round
    from farm.protocol.record import JobRecord

    jobs = re.findall(r"\(job ([0-9a-f]{32})\)", result.stdout)
    assert len(jobs) == 3
    assert [bool(farm.redis.exists(JobRecord.key_for(job))) for job in jobs] == [False, False, True]  # rounds done with
    assert np.array_equal(read_exr(tmp_path / "frame.exr"), frames.reference(device, document))


@pytest.mark.parametrize("stop", ["ctrl-c", "cancel"])
def test_a_stopped_progressive_render_keeps_its_last_complete_round(farm, make_document, write_scene, tmp_path,
                                                                    device, stop):
    """Ctrl-C, or a cancel from elsewhere, in the middle of the rounds: the output holds the
    last round that finished, the exact frame of its samples."""
    from farm.exceptions import JobError
    from farm.protocol.jobs import Job
    from farm.protocol.queue import BucketQueue
    from farm.protocol.record import JobRecord

    document = make_document(width=32, height=16, spp=1 << 16)
    client = commands.start("submit", write_scene(document), "-o", tmp_path / "frame.exr", "--progressive",
                            "--bucket-size", "16", "-q", "--on-interrupt", "cancel", "--broker", farm.broker_url)
    written = commands.read_until(client.stdout, lambda text: text.count("frame.exr: ") >= 3, 60,
                                  "three rounds written")
    if stop == "ctrl-c":
        client.send_signal(signal.SIGINT)
    else:  # the round under way, cancelled as `farm cancel` does (again if it had just finished)
        def cancelled() -> bool:
            for job_id in JobRecord.ids(farm.redis):
                with contextlib.suppress(JobError):  # a round done with is deleted any time
                    job = Job.load(farm.redis, job_id)
                    if not job.state:
                        job.cancel(BucketQueue(farm.redis, farm.app))
            return client.poll() is not None

        commands.wait_for(cancelled, 60, "the client to end on the cancel", interval=0.2)
    out, stderr = client.communicate(timeout=60)
    written += out
    assert client.returncode == (130 if stop == "ctrl-c" else 2), stderr
    assert "Traceback" not in stderr and ("interrupted" if stop == "ctrl-c" else "was cancelled") in stderr
    spp = int(re.findall(r"frame\.exr: 32x16, samples \d+ to (\d+) this round", written)[-1])
    assert spp >= 4 and np.array_equal(read_exr(tmp_path / "frame.exr"), frames.reference(device, document, spp=spp))


def test_a_time_limit_ends_the_rounds_on_a_complete_frame(farm, make_document, write_scene, tmp_path, device):
    """`submit --progressive --time-limit`: rounds until the time is spent, the output the
    exact frame of the samples its last complete round reached, said on the last line."""
    document = make_document(width=16, height=8, spp=1 << 16)
    began = time.monotonic()
    result = submit(write_scene(document), "-o", tmp_path / "frame.exr", "--progressive", "--time-limit", "3",
                    "--bucket-size", "16", "--broker", farm.broker_url)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began < 30
    last = result.stderr.splitlines()[-1]
    found = re.fullmatch(r"time limit: .*frame\.exr holds round (\d+)/17, (\d+) samples per pixel, after ([\d.]+)s", last)
    assert found, result.stderr
    rounds, spp = int(found[1]), int(found[2])
    assert rounds >= 2 and spp >= 2 and float(found[3]) < 3 + 5  # + a reconcile and the cancel
    assert np.array_equal(read_exr(tmp_path / "frame.exr"), frames.reference(device, document, spp=spp))
    refused = submit(write_scene(document), "-o", tmp_path / "other.exr", "--time-limit", "3")
    assert (refused.returncode, refused.stderr.strip()) == (
        2, "submit: error: --time-limit ends rounds: add --progressive or --noise")


def test_a_noise_target_on_the_farm_is_the_same_bits_as_in_one_process(farm, make_document, write_scene, tmp_path,
                                                                        device):
    """`submit --noise` on two workers in 16-px buckets, and the same rounds in this process
    in 24-px buckets: the same plans, the same bits, the variance layer written."""
    from farm.client import adaptive

    document = make_document(width=40, height=32, spp=64)
    result = submit(write_scene(document), "-o", tmp_path / "frame.exr", "--noise", "0.08", "--min-spp", "4",
                    "--max-spp", "64", "--bucket-size", "16", "--broker", farm.broker_url)
    assert result.returncode == 0, result.stderr
    here, plans = adaptive.render_here(frames.renderer(device, document, aovs=True), 0.08, 4, 64, 24)
    rounds = [line for line in result.stderr.splitlines() if line.startswith("round ")]
    assert len(rounds) == len(plans) >= 3 and rounds[0] == (
        "round 1: 20 of 20 cells to 4-4 samples per pixel (target 0.08, at most 64)")
    # the cells --max-spp stopped above the target, in one line (none: no line)
    above, _ = adaptive.unmet(plans[-1], here.sums, here.counts, 0.08)
    warned = [line for line in result.stderr.splitlines() if "not reached" in line]
    assert warned == ([f"submit: warning: noise target 0.08 not reached in {above} of 20 cells ({above / 20:.1%}): "
                       "they stopped at 64 samples per pixel (--max-spp); a higher --max-spp gives them more"]
                      if above else []), result.stderr
    assert np.array_equal(read_exr(tmp_path / "frame.exr"), here.pixels)
    import OpenEXR

    with OpenEXR.File(str(tmp_path / "frame.exr"), separate_channels=True) as exr:
        assert np.array_equal(exr.channels()["variance.Y"].pixels, here.layers()["variance"])
    assert 4 < here.counts.mean() < 64


@pytest.mark.parametrize("content,message", [
    ("not json", "not a JSON report"),
    ("[1, 2]", "not a farm job report (a JSON object is expected)"),
    ('{"job_id": "x"}', "not a farm job report (missing width, height, wall_seconds, buckets)"),
    ('{"job_id": "x", "width": -4, "height": 4, "wall_seconds": 1, "buckets": []}', "width is not a number"),
    ('{"job_id": "x", "width": 4, "height": 4, "wall_seconds": 1, "buckets": [{"index": 0}]}',
     "bucket entry 0 lacks a valid x, y, width, height, worker, attempts, seconds, arrived"),
], ids=["not json", "a list", "missing keys", "negative width", "a bucket without fields"])
def test_a_bad_report_is_one_line(tmp_path, capfd, content, message):
    (tmp_path / "report.json").write_text(content)
    assert commands.run_here("report", tmp_path / "report.json", "-o", tmp_path / "report.html") == 2
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("farm report: error: ") and message in lines[0], lines
    assert not (tmp_path / "report.html").exists()


def _peak_memory(*args, env=None) -> tuple[subprocess.CompletedProcess, int]:
    """Run `submit ARGS...` under a fresh Python that reports its only child's peak RSS
    (bytes): the command's own, whatever earlier tests' children used."""
    import os
    import sys

    probe = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, file=sys.stderr); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", probe, *commands.CLI, "submit", *map(str, args)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})
    *lines, peak = result.stderr.strip().splitlines()
    result.stderr = "\n".join(lines)
    return result, int(peak)


TINY_GLTF = {  # one triangle whose positions lie in big.bin
    "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
    "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
    "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                   "min": [0, 0, 0], "max": [1, 1, 0]}],
    "bufferViews": [{"buffer": 0, "byteLength": 36}], "buffers": [{"uri": "big.bin", "byteLength": 36}],
}


@pytest.mark.parametrize("case", ["scene.json", "included.glb", "buffer.bin"])
def test_a_huge_file_is_refused_by_its_size_before_it_is_read(cornell_document, tmp_path, case):
    """Issue 26 item 3: sparse files (no disk used) just under 2 GiB as the scene, and just
    over FARM_MAX_ASSET_BYTES as an included .glb or a glTF's .bin: one line, and the client
    never holds them (before: a 2 GiB scene file took 6 GB to be told it was too large)."""
    big = 2 * 2**30 - 1 if case == "scene.json" else 2 * 2**30 + 1
    scene = tmp_path / "scene.json"
    if case == "scene.json":
        big_file, message = scene, "2.0 GiB is over the limit of 16.0 MiB for a scene document (FARM_MAX_SCENE_BYTES)"
    else:
        big_file = tmp_path / ("model.glb" if case == "included.glb" else "big.bin")
        included = "model.glb" if case == "included.glb" else "model.gltf"
        if case == "buffer.bin":
            (tmp_path / "model.gltf").write_text(json.dumps(TINY_GLTF))
        scene.write_text(json.dumps({**cornell_document, "include": [{"file": included}]}))
        message = f"{big_file.name}: 2.0 GiB is over the limit of 2.0 GiB per file (FARM_MAX_ASSET_BYTES)"
    with open(big_file, "wb") as sparse:
        sparse.truncate(big)
    result, peak = _peak_memory(scene, "-o", tmp_path / "out.png", "--broker", "redis://127.0.0.1:1/0")
    result.seconds = 0
    assert_one_line_error(result, message)
    assert peak < 512 << 20, f"the client's peak memory was {peak >> 20} MiB"


def test_a_closed_stdout_ends_quietly(tmp_path):
    """Issue 26 item 6a: a reader that stops early (`| head -1`) gets no BrokenPipeError
    traceback; exit 1, as Python's note on SIGPIPE recommends."""
    import os
    import sys

    for args in (["farm", "secret"], ["submit", "--help"]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first line
        try:
            result = subprocess.run([*commands.CLI, *args[1:]] if args[0] == "farm" else
                                    [sys.executable, "-c", "import sys; from farm.client.cli import submit_main; "
                                                           "sys.exit(submit_main())", *args[1:]],
                                    stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
        finally:
            os.close(write_end)
        # argparse itself drops a help text it cannot write (exit 0); a command's output exits 1
        assert result.returncode == (0 if "--help" in args else 1), (args, result.returncode, result.stderr)
        assert result.stderr == "", (args, result.stderr)


@pytest.mark.parametrize("variable, value, message", [
    ("FARM_BUCKET_SIZE", "abc", "FARM_BUCKET_SIZE='abc' is not a whole number"),
    ("FARM_LEASE_TIMEOUT", "soon", "FARM_LEASE_TIMEOUT='soon' is not a number"),
    ("FARM_MAX_SCENE_BYTES", "12Q", "FARM_MAX_SCENE_BYTES='12Q' is not a size in bytes"),
])
def test_a_bad_setting_is_one_line_for_the_client_and_the_worker(tmp_path, variable, value, message):
    """Issue 26 item 6c: named with its value, before anything starts; a worker started with
    it stops in one line too (before: a traceback from the import of farm.defaults)."""
    import os
    import sys

    from tests.files import CORNELL

    assert_one_line_error(submit(CORNELL, "-o", tmp_path / "out.png", env={variable: value}), message)
    worker = subprocess.run([sys.executable, "-m", "celery", "-A", "farm", "worker", "--pool", "solo",
                             "--without-gossip", "--without-mingle"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, variable: value, "FARM_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert worker.returncode == 2 and "Traceback" not in worker.stderr, worker.stderr
    assert f"worker: error: {message}" in worker.stderr


@pytest.mark.parametrize("name", ["vase.obj", "model.ply", "shot.abc"])
def test_a_scene_file_of_another_format_names_the_formats_submit_reads(tmp_path, name):
    """Issue 26 item 6d: not "invalid JSON at line 1"."""
    (tmp_path / name).write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert_one_line_error(submit(tmp_path / name, "-o", tmp_path / "out.png", "--broker", "redis://127.0.0.1:1/0"),
                          f"{name}: not a scene file; submit reads .json, .gltf, .glb, .usd, .usda, .usdc, .usdz")


def test_a_usd_file_that_is_no_stage_is_refused_in_one_line(tmp_path):
    pytest.importorskip("pxr", reason="usd-core is not installed (pip install 'farm[usd]')")
    (tmp_path / "shot.usd").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert_one_line_error(submit(tmp_path / "shot.usd", "-o", tmp_path / "out.png", "--broker", "redis://127.0.0.1:1/0"),
                          "shot.usd: cannot read the USD stage")


@pytest.mark.parametrize("url, shown", [
    ("redis://SECRET@127.0.0.1:1/0", "redis://***@127.0.0.1:1/0"),
    ("redis://admin:SECRET@127.0.0.1:1/0", "redis://admin:***@127.0.0.1:1/0"),
])
def test_a_broker_password_is_never_echoed(url, shown, tmp_path):
    """Issue 26 item 6e: a password written without a user name (no colon) is hidden too."""
    from tests.files import CORNELL

    result = submit(CORNELL, "-o", tmp_path / "out.png", "--broker", url)
    assert_one_line_error(result, f"cannot reach broker {shown}")
    assert "SECRET" not in result.stderr + result.stdout


def test_output_for_logs_and_pipes(farm, make_document, write_scene, tmp_path):
    """Issue 26 item 8: stderr that is not a terminal gets plain progress lines, not a bar
    redrawn with carriage returns; a render in rounds ends with a total; --version."""
    document = make_document(width=32, height=24, spp=4)
    result = submit(write_scene(document), "-o", tmp_path / "frame.exr", "--progressive", "--bucket-size", "8",
                    "--broker", farm.broker_url)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "█" not in result.stderr
    progress = re.findall(r"^render: (\d+)% (\d+)/12 buckets$", result.stderr, re.M)
    assert progress and progress[-1] == ("100", "12") and len(progress) <= 3 * 10, result.stderr
    assert re.fullmatch(r".*frame\.exr: 3 rounds in all, 4 spp, \d+\.\d\ds", result.stdout.splitlines()[-1])
    farm_version = commands.run("--version")
    assert farm_version.returncode == 0 and re.fullmatch(r"farm \d+\.\d+\.\d+\S*\n", farm_version.stdout)


def test_submit_says_its_version(capsys):
    from farm.client.cli import submit_parser

    with pytest.raises(SystemExit) as ended:
        submit_parser().parse_args(["--version"])
    assert ended.value.code == 0 and re.fullmatch(r"farm \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


OFF_LOOPBACK = "redis://10.255.255.1:6379/0"  # never reached: the refusal comes before any connection


def test_no_secret_for_a_broker_off_the_loopback_is_refused_unless_allowed(farm, tmp_path):
    """Issue 26 item 5, Redis's protected mode for the farm's secret: without FARM_SECRET a
    client and a worker refuse a broker off the loopback in one line, before connecting;
    FARM_ALLOW_NO_SECRET lets them go on with a warning; on the loopback, a warning."""
    import os
    import sys

    no_secret = {"FARM_SECRET": "", "FARM_SECRET_FILE": ""}
    refused = commands.run("status", "--broker", OFF_LOOPBACK, env=no_secret, timeout=30)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith("farm status: error: no farm secret (FARM_SECRET or FARM_SECRET_FILE) for the "
                                     f"broker {OFF_LOOPBACK}, which is not on this machine's loopback")
    assert refused.seconds < 10
    worker = subprocess.run([sys.executable, "-m", "celery", "-A", "farm", "worker", "--pool", "solo",
                             "--without-gossip", "--without-mingle"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **no_secret, "FARM_BROKER_URL": OFF_LOOPBACK})
    assert worker.returncode == 2 and "Traceback" not in worker.stderr, worker.stderr
    assert "worker: error: no farm secret" in worker.stderr
    allowed = commands.run("status", "--broker", "redis://127.0.0.1:1/0", env=no_secret, timeout=30)
    assert allowed.returncode == 2 and allowed.stderr.splitlines()[0].startswith("farm: warning: no farm secret")
    status = commands.run("status", "--broker", farm.broker_url, env=no_secret, timeout=30)
    assert status.returncode == 0 and status.stderr.splitlines() == [
        "farm: warning: no farm secret (FARM_SECRET or FARM_SECRET_FILE): tiles are checked for damage, not for who "
        "made them"]
    off = commands.run("status", "--broker", OFF_LOOPBACK, env={**no_secret, "FARM_ALLOW_NO_SECRET": "1",
                                                                 "FARM_CONNECT_TIMEOUT": "1"}, timeout=60)
    assert off.returncode == 2 and "(FARM_ALLOW_NO_SECRET is set)" in off.stderr.splitlines()[0]
    assert "cannot reach broker" in off.stderr
