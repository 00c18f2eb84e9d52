"""Motion blur (farm.scene.motion, FARM_MOTION): a moving shape and the camera are placed at
each sample's time in an open shutter; the blurred frame is the mean of the frame over the
shutter, a closed shutter is the still frame to the bit, and a blurred shot through a farm
is each frame blurred alone."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from farm.client.film import read_exr
from farm.scene import parse_scene
from farm.scene.motion import decompose, frame_scenes, motion_entry, placement_at
from farm.scene.pack import pack
from tests import commands, frames


def crossing(spp: int = 64, width: int = 64) -> dict:
    """A red ball crossing the frame in one second (3 units), before a white wall."""
    return {
        "version": 1,
        "camera": {"position": [0, 0, 4], "look_at": [0, 0, 0], "fov": 40},
        "film": {"width": width, "height": width * 3 // 4, "spp": spp},
        "materials": {"white": {"reflectance": 0.8}, "red": {"reflectance": [0.8, 0.05, 0.05]}},
        "lights": [{"type": "sun", "direction": [0, -0.2, -1], "irradiance": [3, 3, 3]},
                   {"type": "environment", "radiance": [0.2, 0.2, 0.2]}],
        "shapes": [
            {"type": "rectangle", "material": "white", "transform": {"scale": 4, "translate": [0, 0, -1]}},
            {"type": "sphere", "material": "red", "radius": 0.3, "keyframes": [
                {"time": 0, "translate": [-1.5, 0, 0], "rotate": {"axis": [0, 0, 1], "angle": 0}},
                {"time": 1, "translate": [1.5, 0, 0], "rotate": {"axis": [0, 0, 1], "angle": 120}}]},
        ],
    }


def blurred(device, document: dict, seconds: float, shutter: tuple[float, float]) -> np.ndarray:
    scene, ends = frame_scenes(copy.deepcopy(document), seconds, shutter)
    return frames.renderer(device, pack(scene, None, None, ends)).render_frame()


def test_a_placement_comes_apart_and_back():
    """T R K at the shutter's ends gives back the transforms, mirrors and stretches included."""
    theta = np.radians(40)
    turn = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    for linear in (turn, turn @ np.diag([2.0, 0.5, 1.0]), np.diag([-1.0, 1.0, 1.0]) @ turn, 0.3 * np.eye(3)):
        m0 = np.eye(4)
        m0[:3, :3], m0[:3, 3] = linear, [1, 2, 3]
        m1 = np.eye(4)
        m1[:3, :3], m1[:3, 3] = turn @ linear, [-1, 0, 2]
        entry = motion_entry(m0.tolist(), m1.tolist())
        assert np.allclose(placement_at(entry, 0.0), m0, atol=1e-6)
        assert np.allclose(placement_at(entry, 1.0), m1, atol=1e-6)
        _, q, _ = decompose(m0.tolist())
        assert np.isclose(np.linalg.norm(q), 1.0)


def test_a_closed_shutter_renders_the_still_frame(device):
    document = crossing(spp=8, width=32)
    still = frames.reference(device, document, time=0.5)
    assert np.array_equal(blurred(device, document, 0.5, (0.0, 0.0)), still)


def test_a_moving_ball_blurs_to_the_mean_of_its_moments(device):
    """The ball crossing with the shutter open a quarter second either side: the mean of 16
    renders at moments spread over the shutter, within noise; the sharp frame is not."""
    document = crossing()
    blur = blurred(device, document, 0.5, (-0.25, 0.25))
    moments = [0.25 + 0.5 * (k + 0.5) / 16 for k in range(16)]
    mean = np.mean([frames.reference(device, document, time=t) for t in moments], axis=0)
    sharp = frames.reference(device, document, time=0.5)
    green = lambda image: image[..., 1]  # noqa: E731  the ball's colour has (almost) none: its streak
    error, sharp_error = np.abs(green(blur) - green(mean)).mean(), np.abs(green(sharp) - green(mean)).mean()
    assert error < 0.25 * sharp_error, (error, sharp_error)
    wall = np.median(green(sharp)[24])
    streak, ball = (int((green(image)[24] < 0.9 * wall).sum()) for image in (blur, sharp))
    assert streak > 2 * ball, f"a streak of {streak} px where the ball is {ball}"


def test_a_moving_camera_blurs_too(device):
    """Only the camera moves: the two-level walk is not needed, the samples' times are."""
    document = crossing(spp=64, width=48)
    document["shapes"][1] = {"type": "sphere", "material": "red", "radius": 0.3}
    document["camera"]["keyframes"] = [{"time": 0, "position": [-4, 0, 4]}, {"time": 1, "position": [4, 0, 4]}]
    scene, ends = frame_scenes(copy.deepcopy(document), 0.5, (-0.25, 0.25))
    packed = pack(scene, None, None, ends)
    assert len(packed.instances) == 0 and packed.frame["origin1"][0][3] == 1.0
    blur = frames.renderer(device, packed).render_frame()
    mean = np.mean([frames.reference(device, document, time=0.25 + 0.5 * (k + 0.5) / 12) for k in range(12)], axis=0)
    sharp = frames.reference(device, document, time=0.5)
    blocks = lambda image: image.reshape(12, 3, 16, 3, 3).mean(axis=(1, 3))  # noqa: E731  noise down, edges kept
    error, sharp_error = (np.abs(blocks(image) - blocks(mean)).mean() for image in (blur, sharp))
    assert error < 0.4 * sharp_error, (error, sharp_error)


def test_a_blurred_shot_through_the_farm_is_each_frame_blurred_alone(farm, write_scene, tmp_path, device):
    document = crossing(spp=8, width=32)
    path = write_scene(document)
    result = commands.run("submit", path, "--frames", "6-8", "--fps", "12", "--shutter", "-0.5,0.5",
                          "-o", tmp_path / "blur.exr", "--bucket-size", 16, "--broker", farm.broker_url)
    assert result.returncode == 0, result.stderr
    for number in (6, 7, 8):
        image = read_exr(tmp_path / f"blur.{number:04d}.exr")
        assert np.array_equal(image, blurred(device, document, number / 12, (-0.5 / 12, 0.5 / 12))), number


@pytest.mark.parametrize("value, message", [
    ("0.25,-0.25", "the shutter opens before it closes"),
    ("-2,0", "at most a frame"),
    ("nan,1", "at most a frame"),
    ("0.5", "expected OPEN,CLOSE"),
])
def test_a_bad_shutter_is_one_line(write_scene, tmp_path, value, message):
    result = commands.run("submit", write_scene(crossing(spp=1, width=8)), "--frames", "1", "--shutter", value,
                          "-o", tmp_path / "x.exr", "--broker", "redis://127.0.0.1:1/0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert message in lines[-1] and "--shutter" in lines[-1], result.stderr


def test_the_shutter_travels_with_the_job():
    """JobMeta carries it; a description whose shutter is no shutter is refused from Redis."""
    from farm.exceptions import MalformedJob
    from farm.protocol.description import JobMeta
    from farm.protocol.jobs import Job

    scene, _ = frame_scenes(crossing(spp=1, width=8), 0.5, (-0.1, 0.2))
    meta = Job.describe(scene, 8, "spiral")
    assert meta.shutter == (-0.1, 0.2)
    raw = {k.encode(): v.encode() for k, v in meta.to_redis().items()}
    assert JobMeta.from_redis(raw).shutter == (-0.1, 0.2)
    raw[b"shutter_open"] = b"0.5"
    with pytest.raises(MalformedJob, match="is not a shutter"):
        JobMeta.from_redis(raw)
