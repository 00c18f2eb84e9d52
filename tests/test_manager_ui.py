"""The manager's web UI (farm.manager.web) in headless Chromium, driven by Selenium, against a
real `farm manager` and real workers: the jobs page lists three jobs; pause stops a job's
buckets and the workers take the other jobs'; resume goes on; cancel frees the workers within
2 s; a request without the token is refused; a job's name and a worker's hostname full of
HTML show as text."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests import commands
from tests.test_manager import detach
from tests.test_watch import NO_BROWSER, browser  # noqa: F401 (a fixture)

EVIL = '<img src=x onerror="window.pwned=1"><b>bold</b>'


def _job_tiles(redis, shot_id: str) -> int:
    from farm.protocol.jobs import Job
    from farm.protocol.shots import ShotRecord

    frame_job = ShotRecord(redis, shot_id).jobs().get(0)
    return len(Job.load(redis, frame_job).tiles.stored()) if frame_job else 0


def _leases(redis, shot_id: str) -> list:
    from farm.protocol.jobs import Job
    from farm.protocol.shots import ShotRecord

    frame_job = ShotRecord(redis, shot_id).jobs().get(0)
    return Job.load(redis, frame_job).deliveries.leases() if frame_job else []


def _click(browser, job_id: str, action: str) -> None:
    """Click a job's button (the table is redrawn each second: a button may go stale between
    finding and clicking it)."""
    def click():
        browser.find_element("css selector", f'tr[data-job="{job_id}"] button.{action}').click()
        return True

    commands.wait_for(click, 10, f"the {action} button of {job_id}")


def _manager(farm, tmp_path):
    """A `farm manager` on `farm`, writing under tmp_path/out: the process, its UI's URL, its token."""
    (tmp_path / "out").mkdir()
    manager = commands.start("manager", "--output-dir", tmp_path / "out", "--broker", farm.url, "--address",
                             "127.0.0.1:0")
    said = commands.read_until(manager.stderr, lambda text: "/?token=" in text, 60, "the manager's URL")
    base, token = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", said).groups()
    return manager, base, token


def _get(url: str, data: bytes | None = None, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


@NO_BROWSER
def test_the_manager_s_pages_in_a_browser(make_farm, make_document, write_scene, tmp_path, browser):  # noqa: F811
    from farm.protocol import registry

    farm = make_farm([{}, {}], name="ui")
    manager, base, token = _manager(farm, tmp_path)
    try:
        big = detach(write_scene(make_document(width=128, height=64, spp=4096), "big.json"), "big.exr", farm.url,
                     "--bucket-size", "16", "--name", "big")
        small = [detach(write_scene(make_document(width=32, height=32, spp=256), f"s{i}.json"), f"s{i}.exr",
                        farm.url, "--bucket-size", "16", "--name", name) for i, name in enumerate((EVIL, "plain"))]

        # no token, no page, no action, no API
        assert _get(f"{base}/") == 401 and _get(f"{base}/api/jobs") == 401
        assert _get(f"{base}/jobs/{big}/pause", data=b"") in (401, 403)  # 403: the XSRF check comes first
        assert _get(f"{base}/jobs/{big}/pause", data=b"", headers={"Authorization": "Bearer wrong"}) == 403
        assert _get(f"{base}/api/jobs", headers={"Authorization": "Bearer wrong"}) == 401
        assert _get(f"{base}/api/jobs", headers={"Authorization": f"Bearer {token}"}) == 200

        browser.set_window_size(1280, 800)  # every column of the tables in the screenshots
        browser.get(f"{base}/?token={token}")
        assert browser.current_url == f"{base}/"  # the token went into a cookie, out of the address bar
        rows = commands.wait_for(lambda: len(browser.find_elements("css selector", "tr.job")) == 3, 10,
                                 "the three jobs listed")
        assert rows
        name = browser.find_element("css selector", f'tr[data-job="{small[0]}"] a.name')
        assert name.text == EVIL and not name.find_elements("css selector", "b, img")
        assert browser.execute_script("return window.pwned === undefined")

        commands.wait_for(lambda: _job_tiles(farm.redis, big) >= 2, 60, "the big job's first tiles")
        _click(browser, big, "pause")
        commands.wait_for(lambda: "(paused)" in browser.find_element(
            "css selector", f'tr[data-job="{big}"] .state').text, 10, "the page to say paused")
        time.sleep(2.0)  # the buckets rendering at the pause finish
        held = _job_tiles(farm.redis, big)
        for job in small:  # the workers take the other jobs' buckets
            result = commands.run("wait", job, "--broker", farm.url, timeout=120)
            assert result.returncode == 0, result.stderr
        assert _job_tiles(farm.redis, big) == held, "the paused job's buckets went on"
        browser.save_screenshot(str(tmp_path / "jobs.png"))

        _click(browser, big, "resume")
        commands.wait_for(lambda: _job_tiles(farm.redis, big) > held, 30, "the big job to go on")
        commands.wait_for(lambda: _leases(farm.redis, big), 30, "a bucket of the big job rendering")

        browser.get(f"{base}/jobs/{big}")
        commands.wait_for(lambda: browser.find_elements("css selector", "img[alt='the frame in flight']"), 10,
                          "the frame in flight on the job's page")
        browser.save_screenshot(str(tmp_path / "job.png"))
        browser.get(f"{base}/")
        commands.wait_for(lambda: browser.find_elements("css selector", f'tr[data-job="{big}"] button.cancel'), 10,
                          "the cancel button")
        _click(browser, big, "cancel")
        clicked = time.monotonic()
        commands.wait_for(lambda: not [lease for lease in _leases(farm.redis, big)], 5, "the workers to be freed")
        freed = time.monotonic() - clicked
        assert freed < 2.0, freed
        print(f"cancel freed the workers {freed:.2f} s after the click")
        result = commands.run("wait", big, "--broker", farm.url, timeout=30)
        assert result.returncode == 1 and "cancelled" in result.stderr, result.stderr

        hostname = f"{EVIL}@evil"  # anyone with broker access can write a worker's record
        farm.redis.set(registry.key_for(hostname), json.dumps({"hostname": hostname, "host": EVIL, "pid": 1,
                                                               "busy": False}), ex=60)
        farm.redis.set(registry.key_for(hostname, "bad"), EVIL, ex=60)
        browser.get(f"{base}/workers")
        rows = commands.wait_for(lambda: browser.find_elements("css selector", "tr.worker"), 10, "the workers")
        texts = [row.text for row in rows]
        assert any(EVIL in text and "bad: " + EVIL in text for text in texts), texts
        assert sum(worker.hostname in " ".join(texts) for worker in farm.workers) == 2, texts
        assert not browser.find_elements("css selector", "#workers img, #workers b")
        assert browser.execute_script("return window.pwned === undefined")
        browser.save_screenshot(str(tmp_path / "workers.png"))
        if os.environ.get("FARM_TEST_SCREENSHOTS"):  # the pages as docs/manager.md shows them
            import shutil

            for page in ("jobs", "job", "workers"):
                shutil.copy(tmp_path / f"{page}.png", os.path.join(os.environ["FARM_TEST_SCREENSHOTS"],
                                                                   f"manager-{page}.png"))
    finally:
        manager.send_signal(signal.SIGTERM)
        commands.finish(manager, timeout=30)


def test_a_cross_site_post_is_refused(make_farm, tmp_path):
    """A signed-in page's cookie without the form's XSRF field (what another site's form
    sends) is refused."""
    farm = make_farm([{}], name="xsrf")
    manager, base, token = _manager(farm, tmp_path)
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(f"{base}/?token={token}", timeout=10) as reply:
            assert reply.status == 200 and b'id="fragment"' in reply.read()
        with pytest.raises(urllib.error.HTTPError, match="403"):
            opener.open(urllib.request.Request(f"{base}/jobs/{'0' * 32}/pause", data=b"back=/"), timeout=10)
    finally:
        manager.send_signal(signal.SIGTERM)
        commands.finish(manager, timeout=30)
