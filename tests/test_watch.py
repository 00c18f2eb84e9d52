"""The live view (`submit --watch`) in a real browser: headless Chromium, driven by
Selenium, against a real render on a real farm whose render process is killed mid-frame."""

import os
import shutil
import signal
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests import commands
from tests.ports import free_port

CHROMIUM = os.environ.get("FARM_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = os.environ.get("FARM_TEST_CHROMEDRIVER") or shutil.which("chromedriver")


def test_off_the_loopback_the_view_asks_for_its_token():
    from farm.client.watch import LiveView

    view = LiveView("0.0.0.0", 0)
    url = view.start()
    try:
        port, token = view.port, view.token
        assert token and url == f"http://0.0.0.0:{port}/?token={token}"
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/events?token=wrong", timeout=5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={token}", timeout=5) as response:
            assert b"<canvas" in response.read()
    finally:
        view.close()


def test_the_view_says_which_round_it_shows(farm, make_document):
    """A page that connects is first told the job, its frame's size and the round the
    frame has reached (`submit --progressive` and `--noise` refine it round by round)."""
    import json

    from farm.client.watch import PAGE, LiveView
    from farm.protocol.plans import Plan
    from farm.scene import parse_scene

    document = make_document(width=16, height=8, spp=2)
    run = farm.render(parse_scene(document), document, 16, plan=Plan.uniform(16, 8, 1, 2))
    view = LiveView()
    url = view.start()
    try:
        view.show(run, "round 2/2: samples 1 to 2 of 2")
        with urllib.request.urlopen(url + "events", timeout=10) as stream:
            event = json.loads(stream.readline().removeprefix(b"data: "))
        assert event == {"type": "job", "job": run.job.job_id, "width": 16, "height": 8,
                         "round": "round 2/2: samples 1 to 2 of 2", "frame": True}
        assert '<div id="round">' in PAGE and 'getElementById("round").textContent = event.round' in PAGE
    finally:
        view.close()


NO_BROWSER = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason=(
    "no browser: Debian's chromium and chromium-driver are not installed (.ci/run installs them; or name them in "
    "FARM_TEST_CHROMIUM, FARM_TEST_CHROMEDRIVER)"))


@pytest.fixture
def browser():
    """A headless Chromium, driven by selenium."""
    pytest.importorskip("selenium", reason="selenium (a test extra) is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--force-color-profile=srgb", "--window-size=800,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@NO_BROWSER
def test_the_live_view_in_a_browser_fills_in_outlines_and_tells_of_a_lost_worker(make_farm, tmp_path, make_document,
                                                                                   write_scene, browser):
    farm = make_farm([{}, {}], name="watched")
    port = free_port()
    document = make_document(width=96, height=64, spp=2048)  # 24 buckets of about a third of a second
    client = farm.farm("submit", write_scene(document), "-o", tmp_path / "out.png", "--bucket-size", 16,
                       "--watch", f"127.0.0.1:{port}")
    commands.wait_for(lambda: _answers(port), 60, "the live view to serve")
    browser.get(f"http://127.0.0.1:{port}/")
    outlines = commands.wait_for(lambda: browser.execute_script(
        "return Array.from(document.querySelectorAll('.bucket')).map(d => [d.dataset.worker, d.textContent]);"),
        30, "a bucket outlined while it renders")
    workers = {worker.hostname for worker in farm.workers}
    assert all(worker in workers and label == worker for worker, label in outlines), outlines
    job = farm.job()
    lease = farm.lease(job)
    os.kill(lease.pid, signal.SIGKILL)
    notice = commands.wait_for(
        lambda: [li.text for li in browser.find_elements("css selector", "#notices li") if "died" in li.text],
        60, "the lost worker's notice on the page")
    assert f"render process {lease.pid} of worker {lease.worker} died" in notice[0]
    returncode, _, stderr = commands.finish(client)
    assert returncode == 0, stderr
    written = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))

    def canvas_is_the_frame():  # the page draws the last tiles as their images decode
        shown = np.array(browser.execute_script(
            "const c = document.getElementById('frame');"
            "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);"), np.uint8)
        return shown.size == 64 * 96 * 4 and np.array_equal(shown.reshape(64, 96, 4)[..., :3], written)

    commands.wait_for(canvas_is_the_frame, 10, "the canvas to hold the rendered pixels of every bucket")
    commands.wait_for(lambda: "24 of 24 buckets" in browser.find_element("id", "progress").text, 10,
                      "the progress to reach 24 of 24")
    browser.save_screenshot(str(tmp_path / "live-view.png"))
    assert (tmp_path / "live-view.png").stat().st_size > 1000
    assert job.job_id in browser.find_element("id", "jobs").text


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
            return True
    except OSError:
        return False


def test_farm_watch_shows_a_job_another_client_collects(make_farm, make_document, write_scene, tmp_path):
    """`farm watch JOB` beside the job's own `submit`: the tiles reach the page's event
    stream as they are stored, a killed render process is told, the submit still collects
    every one, and the watch ends with the job."""
    import http.client
    import json

    farm = make_farm([{}, {}], name="watchers")  # its render processes are killed
    document = make_document(width=64, height=32, spp=8192)  # 8 buckets, 4 s or so on two workers
    client = farm.farm("submit", write_scene(document), "-o", tmp_path / "out.png", "--bucket-size", 16)
    job = farm.job()
    os.kill(farm.lease(job).pid, signal.SIGKILL)
    port = free_port()
    watcher = farm.farm("watch", job.job_id, "--watch", f"127.0.0.1:{port}")
    commands.wait_for(lambda: _answers(port), 60, "the live view to serve")
    tiles, notices = [], []
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=60) as stream:
            for line in stream:  # until the watch ends with the job
                event = json.loads(line[6:]) if line.startswith(b"data: ") else {}
                if event.get("type") == "tile":
                    tiles.append(event)
                elif event.get("type") == "notice":
                    notices.append(event["message"])
    except (OSError, http.client.HTTPException):
        pass
    returncode, _, stderr = commands.finish(client)
    assert returncode == 0, stderr
    returncode, out, stderr = commands.finish(watcher)
    assert returncode == 0 and f"job {job.job_id}: " in out and "8/8 buckets" in out, stderr
    assert tiles and all(tile["width"] == tile["height"] == 16 for tile in tiles)
    assert any("a delivery lost with its worker or render process (1 so far)" in notice for notice in notices), notices


def test_a_shot_s_frames_join_the_strip_as_they_are_written(farm, make_document, write_scene, tmp_path):
    """`submit --frames ... --watch`: each written frame is sent to the page as a thumbnail
    of at most 96 px a side (a page that connects late gets them all), which the page puts
    in its strip in frame order."""
    import base64
    import io
    import json

    from farm.client.watch import PAGE

    document = make_document(width=200, height=100, spp=2)
    document["camera"]["keyframes"] = [{"time": 0.0, "fov": 40.0}, {"time": 2.0, "fov": 50.0}]
    port = free_port()
    client = commands.start("submit", write_scene(document), "--frames", "0-2", "--fps", "1", "-o",
                            tmp_path / "shot.png", "--watch", f"127.0.0.1:{port}", "--broker", farm.broker_url)
    returncode, _, stderr = commands.finish(client)
    assert returncode == 0, stderr
    assert "shot_frame" in PAGE and 'getElementById("strip")' in PAGE
    from farm.client.film import Film
    from farm.client.watch import LiveView

    view = LiveView()
    url = view.start()
    try:
        film = Film(200, 100, (), 2)
        for number in (2, 0):
            view.frame_done(number, film)
        events = []
        with urllib.request.urlopen(url + "events", timeout=10) as stream:
            while len(events) < 2:
                line = stream.readline()
                if line.startswith(b"data: "):
                    events.append(json.loads(line.removeprefix(b"data: ")))
        assert [event["frame"] for event in events] == [2, 0] and {event["type"] for event in events} == {"shot_frame"}
        thumbnail = Image.open(io.BytesIO(base64.b64decode(events[0]["png"])))
        assert thumbnail.size == (67, 34)  # every third pixel of 200 x 100: at most 96 a side
    finally:
        view.close()


@NO_BROWSER
def test_the_live_view_in_a_browser_shows_a_shot_s_frames_in_its_strip(farm, make_document, write_scene, tmp_path,
                                                                        browser):
    document = make_document(width=64, height=48, spp=256)
    document["camera"]["keyframes"] = [{"time": 0.0, "fov": 40.0}, {"time": 3.0, "fov": 55.0}]
    port = free_port()
    client = commands.start("submit", write_scene(document), "--frames", "3,0-2", "--fps", "1", "-o",
                            tmp_path / "shot.png", "--watch", f"127.0.0.1:{port}", "--broker", farm.broker_url)
    commands.wait_for(lambda: _answers(port), 60, "the live view to serve")
    browser.get(f"http://127.0.0.1:{port}/")
    strip = commands.wait_for(lambda: [f.text for f in browser.find_elements("css selector", "#strip figure")]
                              if len(browser.find_elements("css selector", "#strip figure")) == 4 else None,
                              120, "four frames in the strip")
    assert strip == ["frame 0", "frame 1", "frame 2", "frame 3"], strip  # in frame order, whatever the finish order
    returncode, _, stderr = commands.finish(client)
    assert returncode == 0, stderr
