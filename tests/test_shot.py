"""Shots (`submit --frames`, issue 27): frame lists and output patterns, keyframes, and on
real farms the promise that every frame of a shot is the same bits as that frame rendered
alone in one process, whatever the workers, and with one of them killed mid-shot."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import signal

import numpy as np
import pytest

from farm.client.film import read_exr
from farm.client.frames import check_animation, check_pattern, frame_path, parse_frames
from farm.exceptions import FarmError, SceneError
from farm.scene import parse_scene
from farm.scene.animation import at_time
from tests import commands, frames


@pytest.mark.parametrize("text, expected", [
    ("7", (7,)), ("1-4", (1, 2, 3, 4)), ("1-10x3", (1, 4, 7, 10)), ("1,5,10-12", (1, 5, 10, 11, 12)),
    ("3,1-3", (3, 1, 2)), (" 0 - 2 ", (0, 1, 2)),
])
def test_frame_lists_read_as_blender_and_deadline_write_them(text, expected):
    assert parse_frames(text) == expected


@pytest.mark.parametrize("text, message", [
    ("10-1", "10-1 is reversed (did you mean 1-10?)"), ("1-5x0", "1-5x0 has a step of 0"), ("", "an empty item"),
    ("a-b", "a-b is not a frame"), ("1,,2", "an empty item"), ("0-1000000", "over 100000 frames"),
])
def test_a_bad_frame_list_is_one_line(text, message):
    with pytest.raises(FarmError, match=re.escape(message)):
        parse_frames(text)


def test_output_patterns():
    assert check_pattern("out/shot.exr", (1, 2)) == "out/shot.####.exr"
    assert check_pattern("out/shot.exr", (1,)) == "out/shot.exr"  # one frame: the name as given
    assert check_pattern("shot.exr", (1, 123456)) == "shot.######.exr"
    assert frame_path("out/shot.####.exr", 12).as_posix() == "out/shot.0012.exr"
    assert frame_path("a#.##.exr", 5).as_posix() == "a#.05.exr"  # the last run of # is the frame
    assert frame_path(check_pattern("s.{frame:03d}.png", (1, 2)), 7).as_posix() == "s.007.png"
    with pytest.raises(FarmError, match=r"the only field an output pattern has is \{frame\}"):
        check_pattern("{shot}.{frame}.exr", (1, 2))


def test_frames_outside_the_animation_name_its_range():
    with pytest.raises(FarmError, match=re.escape("--frames 1-2,300: frame 300 is outside the animation of s.json, "
                                                  "which runs from 0s to 10s: frames 0-240 at 24 fps")):
        check_animation((1, 2, 300), 24.0, (0.0, 10.0), "s.json")
    check_animation((1, 2, 300), 24.0, None, "still.json")  # a still scene: any frame is the same moment


def animated(document: dict) -> dict:
    """`document` with a dolly of its camera and a sphere that moves, turns and grows over 3 s."""
    shot = copy.deepcopy(document)
    camera = shot["camera"]
    camera["keyframes"] = [{"time": 0.0, "position": camera.pop("position")},
                           {"time": 3.0, "position": [0.3, 0.1, 3.4]}]
    shot["materials"]["ball"] = {"reflectance": [0.2, 0.3, 0.8]}
    shot["shapes"].append({"type": "sphere", "material": "ball", "radius": 0.2, "keyframes": [
        {"time": 0.0, "translate": [-0.6, -0.7, 0.3], "rotate": {"axis": [0, 0, 1], "angle": 0}, "scale": 1.0},
        {"time": 3.0, "translate": [0.6, -0.5, 0.3], "rotate": {"axis": [0, 0, 1], "angle": 90}, "scale": 1.5},
    ]})
    return shot


def test_keyframes_lerp_slerp_and_hold(cornell_document):
    shot = animated(cornell_document)
    middle = at_time(shot, 1.5)
    assert middle["camera"]["position"] == [0.15, 0.05, (3.94 + 3.4) / 2]
    transform = middle["shapes"][-1]["transform"]
    assert transform["translate"] == [0.0, -0.6, 0.3] and transform["scale"] == 1.25
    assert np.allclose(transform["rotate"]["axis"], [0, 0, 1]) and transform["rotate"]["angle"] == pytest.approx(45.0)
    assert at_time(shot, -1.0)["camera"]["position"] == [0, 0, 3.94]  # before the first key: the first
    assert at_time(shot, 9.0)["shapes"][-1]["transform"]["scale"] == 1.5  # after the last: the last
    shot["shapes"][-1]["interpolation"] = "step"
    assert at_time(shot, 2.9)["shapes"][-1]["transform"]["translate"] == [-0.6, -0.7, 0.3]
    scene = parse_scene(shot, time=1.5)
    assert scene.animation == (0.0, 3.0) and scene.time == 1.5
    assert scene.digest == parse_scene(shot, time=0.5).digest, "a shot's frames share the document's digest"
    assert parse_scene(cornell_document).animation is None


@pytest.mark.parametrize("change, message", [
    (lambda s: s["camera"]["keyframes"][1].update(time=0.0), "scene.camera.keyframes[1].time: keyframe times must increase"),
    (lambda s: s["camera"]["keyframes"][1].update(fov=30), "every keyframe of an object gives the same fields"),
    (lambda s: s["camera"]["keyframes"][1].update(position=[1, 2]), "scene.camera.keyframes[1].position"),
    (lambda s: s["shapes"][-1].update(transform={"translate": [0, 0, 0]}), "takes its transform from them"),
    (lambda s: s["shapes"][-1].update(interpolation="cubic"), "scene.shapes[8].interpolation"),
    (lambda s: s["camera"]["keyframes"][1].update(position=[0, 0, 0]), "position and look_at are the same point"),
])
def test_a_bad_keyframe_is_one_line_naming_it(cornell_document, change, message):
    shot = animated(cornell_document)
    change(shot)
    with pytest.raises(SceneError, match=re.escape(message)):
        parse_scene(shot, time=3.0)


def shot_files(folder, numbers) -> list:
    return [folder / f"shot.{number:04d}.exr" for number in numbers]


def test_every_frame_of_a_shot_is_that_frame_rendered_alone(farm, make_document, write_scene, tmp_path, device):
    """Four frames at 1 fps through two workers, each equal to its moment's still document
    rendered in this process; a frame submitted alone is the same file again."""
    shot = animated(make_document(width=40, height=32, spp=4))
    scene_path = write_scene(shot)
    result = commands.run("submit", scene_path, "--frames", "0-3", "--fps", "1", "-o", tmp_path / "shot.exr",
                          "--bucket-size", 16, "--broker", farm.broker_url, "--report", tmp_path / "report.json")
    assert result.returncode == 0, result.stderr
    assert "4 frames in" in result.stdout and "[4/4 frames, 0 in flight]" in result.stdout, result.stdout
    rendered = [read_exr(path) for path in shot_files(tmp_path, range(4))]
    for moment, image in enumerate(rendered):
        assert np.array_equal(image, frames.reference(device, shot, time=float(moment))), f"frame {moment}"
    assert not np.array_equal(rendered[0], rendered[3]), "the animation moved nothing"
    report = json.loads((tmp_path / "report.json").read_text())
    assert [row["frame"] for row in report["frames"]] == [0, 1, 2, 3]
    assert len({row["scene_digest"] for row in report["frames"]}) == 1, "one scene for the whole shot"
    uploaded = [row["assets"]["uploaded_files"] for row in report["frames"]]
    assert uploaded == [0, 0, 0, 0]
    alone = commands.run("submit", scene_path, "--frames", "2", "--fps", "1", "-o", tmp_path / "alone.exr",
                         "--bucket-size", 8, "--broker", farm.broker_url)
    assert alone.returncode == 0, alone.stderr
    assert np.array_equal(read_exr(tmp_path / "alone.exr"), rendered[2])


def test_skip_existing_renders_only_the_missing_frames(farm, make_document, write_scene, tmp_path):
    shot = animated(make_document(width=24, height=24, spp=2))
    scene_path = write_scene(shot)
    args = ("submit", scene_path, "--frames", "0-3", "--fps", "1", "-o", tmp_path / "shot.####.exr",
            "--broker", farm.broker_url, "--skip-existing")
    assert commands.run(*args).returncode == 0
    missing = shot_files(tmp_path, [2])[0]
    missing.unlink()
    result = commands.run(*args)
    assert result.returncode == 0, result.stderr
    assert "1 frame in" in result.stdout and str(missing) in result.stdout, result.stdout
    done = commands.run(*args)
    assert done.returncode == 0 and "is written already" in done.stderr, done.stderr


@pytest.mark.parametrize("args, message", [
    (("--frames", "0-100", "--fps", "1"), "frames 4-100 are outside the animation of"),
    (("--frames", "5-1"), "5-1 is reversed"),
    (("--frames", "0-2", "--fps", "0"), "--fps must be positive"),
    (("--skip-existing",), "--skip-existing leaves out frames of a shot: add --frames"),
])
def test_a_shot_that_cannot_be_rendered_is_one_line(cornell_document, write_scene, tmp_path, args, message):
    scene_path = write_scene(animated(cornell_document))
    result = commands.run("submit", scene_path, "-o", tmp_path / "shot.exr", *args, "--broker", "redis://127.0.0.1:1/0")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("submit: error: ") and message in result.stderr, result.stderr


def test_a_shot_with_a_render_process_killed_mid_way_is_exact(make_farm, make_document, write_scene, tmp_path,
                                                             device):
    """A render process SIGKILLed while the shot's second frame renders: its bucket goes to
    the other worker, and every frame is still its moment's exact image."""
    # bucket 4 of every frame stalls 3 s as it starts: the kill lands while it renders, never
    # after its tile is stored (a bucket of this frame takes milliseconds)
    farm = make_farm([{"FARM_FAULTS": "stall=3@4"}, {"FARM_FAULTS": "stall=3@4"}], name="shot")
    shot = animated(make_document(width=48, height=48, spp=16))
    scene_path = write_scene(shot)
    # no straggler copies: a copy finishing first on a loaded machine would leave no delivery lost
    client = farm.farm("submit", scene_path, "--frames", "0-2", "--fps", "1.5", "-o", tmp_path / "shot.exr",
                       "--bucket-size", 16, "--report", tmp_path / "report.json", env={"FARM_SPECULATE": "0"})
    from farm.protocol.jobs import Job
    from farm.protocol.record import JobRecord

    def a_later_lease():
        for job_id in JobRecord.ids(farm.redis):
            job = Job.load(farm.redis, job_id)
            if job.meta.time > 0:
                return next((lease for lease in job.deliveries.leases() if lease.bucket == 4), None)
        return None

    lease = farm.wait_for(a_later_lease, 120, "a bucket of a later frame to be running")
    os.kill(lease.pid, signal.SIGKILL)
    returncode, stdout, stderr = commands.finish(client, timeout=300)
    assert returncode == 0, stderr
    for number, path in enumerate(shot_files(tmp_path, range(3))):
        assert np.array_equal(read_exr(path), frames.reference(device, shot, time=number / 1.5)), f"frame {number}"
    report = json.loads((tmp_path / "report.json").read_text())
    assert sum(row["lost_deliveries"] for row in report["frames"]) >= 1, stderr


def test_a_shot_whose_client_is_killed_is_finished_by_farm_collect(make_farm, make_document, write_scene, tmp_path,
                                                                   device):
    """The client SIGKILLed once its first frame is written; `farm collect SHOT` collects the
    frames whose jobs exist and starts the others from the scene on the farm, with the
    shot's options (its AOV): every frame exact."""
    farm = make_farm([{"FARM_FAULTS": "slow=3"}, {"FARM_FAULTS": "slow=3"}], name="shotc")
    shot = animated(make_document(width=32, height=32, spp=8))
    scene_path = write_scene(shot)
    client = farm.farm("submit", scene_path, "--frames", "0-4", "--fps", "1.5", "-o", tmp_path / "shot.exr",
                       "--bucket-size", 16, "--aov", "albedo")
    announced = commands.read_until(client.stderr, lambda text: "farm collect" in text or client.poll() is not None,
                                    60, "the shot's id")
    assert "farm collect" in announced, announced + client.communicate()[1]
    shot_id = re.search(r"shot ([0-9a-f]{32}):", announced).group(1)
    commands.read_until(client.stdout, lambda text: "shot.0000.exr: frame 0" in text, 120, "the first frame")
    client.kill()
    client.communicate(timeout=30)
    (tmp_path / "shot.0000.exr").unlink()  # collected again from its tiles, still on the farm
    result = commands.run("collect", shot_id, "-o", tmp_path / "shot.####.exr", "--broker", farm.url, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"shot {shot_id}: 5 frames" in result.stderr and "5 frames in" in result.stdout, result.stdout
    import OpenEXR

    for number, path in enumerate(shot_files(tmp_path, range(5))):
        assert np.array_equal(read_exr(path), frames.reference(device, shot, time=number / 1.5)), f"frame {number}"
        assert "albedo" in OpenEXR.File(str(path)).parts[0].channels, "the shot's options, kept in its record"


@pytest.mark.parametrize("round_gone", [False, True])
def test_a_shot_in_rounds_picked_up_goes_on_from_its_last_round(make_farm, make_document, write_scene, tmp_path,
                                                                device, round_gone):
    """The client of a progressive shot SIGKILLed while frame 0 renders its third round of
    five; `farm collect SHOT` goes on from there (the film of rounds 1-2 kept in the shot's
    record, round 3 collected where it stands), not from round 1: every frame exact. With
    `round_gone`, the job the record names for frame 0 is gone (as where the client died
    between forgetting round 2 and starting round 3): round 3 starts anew, still not round 1."""
    farm = make_farm([{"FARM_FAULTS": "stall=1@0"}, {"FARM_FAULTS": "stall=1@0"}], name="shotr")
    shot = animated(make_document(width=32, height=32, spp=16))
    scene_path = write_scene(shot)
    client = farm.farm("submit", scene_path, "--frames", "0-1", "--fps", "1.5", "-o", tmp_path / "shot.exr",
                       "--bucket-size", 16, "--progressive")
    announced = commands.read_until(client.stderr, lambda text: "frame 0: round 3/5" in text or client.poll() is not None,
                                    120, "frame 0's third round")
    assert "frame 0: round 3/5" in announced, announced + client.communicate()[1]
    shot_id = re.search(r"shot ([0-9a-f]{32}):", announced).group(1)
    client.kill()
    client.communicate(timeout=30)
    from farm.protocol.jobs import Job
    from farm.protocol.shots import ShotRecord

    if round_gone:  # (where the kill came before round 3's job, the job named is round 2's, gone already)
        from farm.exceptions import JobVanished

        with contextlib.suppress(JobVanished):
            Job.load(farm.redis, ShotRecord(farm.redis, shot_id).jobs()[0]).forget()
    result = commands.run("collect", shot_id, "-o", tmp_path / "shot.####.exr", "--broker", farm.url, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "frame 0: round 1/5" not in result.stderr and "frame 0: round 4/5" in result.stderr, result.stderr
    for number, path in enumerate(shot_files(tmp_path, range(2))):
        assert np.array_equal(read_exr(path), frames.reference(device, shot, time=number / 1.5)), f"frame {number}"
    assert not farm.redis.exists(ShotRecord(farm.redis, shot_id).rounds_key), "a finished shot keeps no rounds"


def test_a_shot_of_many_small_frames_renders_a_frame_a_bucket(farm, make_document, write_scene, tmp_path, device):
    """No bucket size chosen: 16 frames for 2 workers, each frame one bucket (80 px a side);
    the frames are still the exact images of their moments. With --bucket-size, as asked."""
    from farm.client.shot import ShotFrame, shot_bucket_size

    shot = animated(make_document(width=80, height=72, spp=2))
    scene_path = write_scene(shot)
    result = commands.run("submit", scene_path, "--frames", "0-15", "--fps", "5", "-o", tmp_path / "shot.exr",
                          "--broker", farm.broker_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("80x72, 2 spp, 1 buckets in") == 16, result.stdout
    assert np.array_equal(read_exr(tmp_path / "shot.0010.exr"), frames.reference(device, shot, time=2.0))
    scene = parse_scene(shot)
    many = [ShotFrame(number, scene, tmp_path / f"{number}.exr") for number in range(16)]
    assert shot_bucket_size(None, many, 64, workers=2) == 80
    assert shot_bucket_size(None, many, 64, workers=3) == 64, "fewer than 8 frames a worker: split them"
    assert shot_bucket_size(None, many, 128, workers=2) == 128, "a frame that fits a bucket anyway"


def test_a_shot_in_rounds_with_aovs_ends_each_frame_on_its_exact_image(farm, make_document, write_scene, tmp_path,
                                                                         device):
    """--progressive and --aov work per frame: each frame rewritten round by round, ending on
    the same bits as its moment rendered alone, with its AOV layers."""
    import OpenEXR

    shot = animated(make_document(width=24, height=24, spp=4))
    scene_path = write_scene(shot)
    result = commands.run("submit", scene_path, "--frames", "0,3", "--fps", "1", "--progressive", "--aov", "albedo",
                          "-o", tmp_path / "shot.exr", "--broker", farm.broker_url)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("round 3/3") == 2, result.stderr  # 1, 2 and 1 samples: three rounds a frame
    for number in (0, 3):
        path = tmp_path / f"shot.{number:04d}.exr"
        assert np.array_equal(read_exr(path), frames.reference(device, shot, time=float(number))), number
        assert "albedo" in OpenEXR.File(str(path)).parts[0].channels  # the layer albedo.R, G, B


def test_farm_status_lists_a_shot_and_farm_cancel_stops_it(make_farm, make_document, write_scene, tmp_path):
    farm = make_farm([{"FARM_FAULTS": "slow=20"}], name="shotx")
    shot = animated(make_document(width=32, height=32, spp=64))  # seconds a frame: the cancel comes mid-shot
    client = farm.farm("submit", write_scene(shot), "--frames", "0-3", "--fps", "1", "-o", tmp_path / "shot.exr",
                       "--bucket-size", 16)
    announced = commands.read_until(client.stderr, lambda text: "farm collect" in text or client.poll() is not None,
                                    60, "the shot's id")
    shot_id = re.search(r"shot ([0-9a-f]{32}):", announced).group(1)
    status = commands.run("status", "--broker", farm.url)
    assert status.returncode == 0 and "1 shot(s)" in status.stdout, status.stdout
    (line,) = [line for line in status.stdout.splitlines() if shot_id in line]
    assert re.search(r"rendering  frames 0-3: [0-3] done, [01] rendering, [0-3] not started  1 fps", line), line
    cancel = commands.run("cancel", shot_id, "--broker", farm.url)
    assert cancel.returncode == 0 and f"shot {shot_id} cancelled:" in cancel.stdout, cancel.stdout + cancel.stderr
    returncode, _, stderr = commands.finish(client, timeout=60)
    assert returncode == 2 and "cancelled" in stderr.strip().splitlines()[-1], stderr
    again = commands.run("collect", shot_id, "-o", tmp_path / "again.exr", "--broker", farm.url)
    assert again.returncode == 2 and f"shot {shot_id} was cancelled" in again.stderr, again.stderr
    assert f"{shot_id}  cancelled" in commands.run("status", "--broker", farm.url).stdout


def test_a_noise_target_per_frame_is_the_same_bits_as_the_frame_alone(farm, make_document, write_scene, tmp_path):
    """--noise works per frame: each frame's rounds follow its own noise, and the frame is
    the same file as that frame submitted alone with the same target."""
    shot = animated(make_document(width=24, height=24, spp=64))
    scene_path = write_scene(shot)
    common = ("--fps", "1", "--noise", "0.2", "--min-spp", "4", "--broker", farm.broker_url)
    result = commands.run("submit", scene_path, "--frames", "1-2", "-o", tmp_path / "shot.exr", *common)
    assert result.returncode == 0, result.stderr
    alone = commands.run("submit", scene_path, "--frames", "2", "-o", tmp_path / "alone.exr", *common)
    assert alone.returncode == 0, alone.stderr
    assert np.array_equal(read_exr(tmp_path / "alone.exr"), read_exr(tmp_path / "shot.0002.exr"))
    assert not np.array_equal(read_exr(tmp_path / "shot.0001.exr"), read_exr(tmp_path / "shot.0002.exr"))


@pytest.mark.parametrize("kept, message", [
    ({"bogus": 1}, "options this farm does not know: bogus"),
    ({"progressive": True, "noise": 0.1}, "--noise renders in rounds of its own"),
    ({"min_spp": "many"}, "are not a render's"),
])
def test_a_shot_record_s_bad_options_are_one_line(kept, message):
    from farm.client.render import RenderOptions

    with pytest.raises(FarmError, match=re.escape(message)):
        RenderOptions.restored(16, "spiral", kept)


def test_denoise_per_frame_of_a_shot_keeps_each_frame_s_raw_image(farm, make_document, write_scene, tmp_path,
                                                                  device):
    """--denoise works per frame: each frame's EXR holds its denoised beauty and, as its raw
    layer, the exact image of its moment."""
    pytest.importorskip("pyoidn", reason="Intel Open Image Denoise (pyoidn, the `denoise` extra) is not installed")
    import OpenEXR

    shot = animated(make_document(width=32, height=32, spp=4))
    result = commands.run("submit", write_scene(shot), "--frames", "0,2", "--fps", "1", "--denoise",
                          "-o", tmp_path / "shot.exr", "--broker", farm.broker_url)
    assert result.returncode == 0, result.stderr
    for number in (0, 2):
        with OpenEXR.File(str(tmp_path / f"shot.{number:04d}.exr"), separate_channels=True) as exr:
            channels = exr.channels()
            raw = np.stack([channels[f"raw.{c}"].pixels for c in "RGB"], axis=-1)
            denoised = np.stack([channels[c].pixels for c in "RGB"], axis=-1)
        assert np.array_equal(raw, frames.reference(device, shot, time=float(number))), number
        assert not np.array_equal(denoised, raw), number


def test_a_shots_kept_rounds_are_checked_as_input(redis_server):
    """What a shot's record keeps of a frame in rounds comes back only where it fits the frame:
    another size, a damaged blob or one that would unpack to more than the frame's sums is none."""
    import io
    import zipfile

    import redis as redis_module

    from farm.protocol.plans import Plan
    from farm.protocol.shots import ShotRecord

    client = redis_module.Redis.from_url(redis_server.url)
    record = ShotRecord(client, "f" * 32)
    sums = np.arange(8 * 8 * 3, dtype=np.int64).reshape(8, 8, 3)
    assert record.save_rounds(3, 2, Plan.uniform(8, 8, 0, 4), sums)
    done, plan, kept = record.rounds(3, 8, 8, 3)
    assert done == 2 and plan.to_bytes() == Plan.uniform(8, 8, 0, 4).to_bytes() and np.array_equal(kept, sums)
    assert record.rounds(3, 16, 8, 3) is None and record.rounds(4, 8, 8, 3) is None
    client.hset(record.rounds_key, "3", b"not a zip")
    assert record.rounds(3, 8, 8, 3) is None
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("sums.npy", b"\0" * (64 * 2**20))
    client.hset(record.rounds_key, "3", bomb.getvalue())
    assert record.rounds(3, 8, 8, 3) is None
    record.forget_rounds(3)
    assert not client.hexists(record.rounds_key, "3")
