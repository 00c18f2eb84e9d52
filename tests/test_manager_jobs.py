"""The manager's entries and web UI in this process, on a real Redis (quick): what a Redis
writer cannot make the manager do, and what a request cannot make it crash on."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from farm.manager import jobs


@pytest.fixture
def redis(farm):
    yield farm.redis
    for job_id in list(jobs.entries(farm.redis)):
        jobs.forget(farm.redis, job_id)


def test_an_entry_whose_output_names_a_folder_is_not_a_job(redis):
    for output in ("../../etc/x.png", "/tmp/x.png", "a/b.png", "..", ""):
        redis.hset(jobs.key_for("f" * 32), mapping={"state": '"queued"', "output": json.dumps(output)})
        redis.zadd(jobs.JOBS, {"f" * 32: 1.0})
        assert jobs.entry(redis, "f" * 32) is None and "f" * 32 not in jobs.entries(redis), output
    redis.hset(jobs.key_for("f" * 32), mapping={"output": '"shot.exr"', "eta": "1e300"})
    assert jobs.entry(redis, "f" * 32)["eta"] is None  # `farm jobs` cannot overflow on it


def test_the_ui_answers_a_bad_token_with_a_refusal_not_a_crash(redis, farm, tmp_path):
    from farm.manager.store import OutputStore
    from farm.manager.web import ManagerWeb

    web = ManagerWeb(redis, farm.app, OutputStore(str(tmp_path)), "127.0.0.1:0")
    url = web.start()
    try:
        for headers, path in (({}, "/?token=%C3%A9"), ({"Authorization": "Bearer \u00e9"}, "/api/jobs"),
                              ({"Authorization": "Bearer wrong"}, "/api/jobs")):
            request = urllib.request.Request(url + path, headers={k: v.encode().decode("latin-1")
                                                                  for k, v in headers.items()})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 401, (path, refused.value.code)
        # a wrong bearer token is no way around the XSRF check either
        request = urllib.request.Request(url + f"/jobs/{'0' * 32}/pause", data=b"",
                                         headers={"Authorization": "Bearer wrong"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
    finally:
        web.stop()
