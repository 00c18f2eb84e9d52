"""Prometheus metrics of a real worker, scraped during and after a real render."""

import re
import urllib.request

from farm.protocol.jobs import JobState
from farm.scene import parse_scene
from tests import commands
from tests.files import ROOT
from tests.ports import free_port


def _scrape(port: int) -> dict:
    """{(name, labels as a sorted tuple): value} of every sample the endpoint serves."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_a_worker_exports_its_samples_buckets_failures_files_and_the_queue(make_farm, tmp_path, make_document):
    import json
    import shutil

    import pytest

    from farm.client.start import start_job
    from farm.exceptions import JobError
    from farm.protocol.assets import FolderAssets
    from farm.scene.load import load_scene

    port = free_port()
    worker = {"FARM_METRICS_PORT": str(port), "FARM_FAULTS": "fail=9",  # a job's bucket 9 fails
              "FARM_CACHE_DIR": str(tmp_path / "cache")}  # its own: other tests' workers cached the same files
    farm = make_farm([worker], name="metered")
    document = make_document(width=48, height=32, spp=4096)  # 6 buckets of about half a second
    scene = parse_scene(document)
    run = start_job(farm.redis, farm.app, scene, document, 16, "spiral")
    job_id = run.job.job_id

    served = set()  # every metric name seen

    def waiting():  # during the render: the job's buckets sent and not back yet
        found = _scrape(port)
        served.update(name for name, _ in found)
        value = found.get(("farm_job_buckets_waiting", (("job", job_id),)))
        return value if value and value > 0 else None

    assert commands.wait_for(waiting, 30, "the job's waiting buckets in the metrics") >= 1
    run.collect(stall_timeout=60)
    assert run.job.refresh() == JobState.DONE
    device = run.report()["buckets"][0]["device"]

    def counted():  # the last bucket's figures reach the files as its task returns
        found = _scrape(port)
        return found if found.get(("farm_bucket_seconds_count", (("device", device),))) == 6 else None

    found = commands.wait_for(counted, 10, "six buckets in the metrics")
    assert found[("farm_samples_total", (("device", device),))] == 48 * 32 * 4096
    assert found[("farm_bucket_seconds_sum", (("device", device),))] > 0
    assert ("farm_job_buckets_waiting", (("job", job_id),)) not in found  # done: no longer running
    assert found[("farm_queue_messages", (("queue", "farm"),))] == 0
    # the shipped dashboard draws what a worker serves (failures appear with the first)
    dashboard = (ROOT / "docker" / "grafana-dashboard.json").read_text()
    drawn = set(re.findall(r"farm_[a-z_]+", dashboard)) - {"farm_bucket_failures_total"}
    assert drawn and drawn <= served | {name for name, _ in found}

    # a scene's files: fetched from Redis for one scene, found in the cache for the next
    shutil.copytree(ROOT / "scenes" / "assets", tmp_path / "scene" / "assets")
    textured = json.loads((ROOT / "scenes" / "textured-mesh.json").read_text())
    textured["film"] = {"width": 16, "height": 16, "spp": 1}
    (tmp_path / "scene" / "scene.json").write_text(json.dumps(textured))
    _, loaded = load_scene(tmp_path / "scene" / "scene.json")  # its files' digests recorded
    for seed in (1, 2):  # two scenes (digests), the same three files
        document = dict(loaded, seed=seed)
        scene = parse_scene(document)
        start_job(farm.redis, farm.app, scene, document, 16, "spiral",
                  FolderAssets(tmp_path / "scene", scene.assets)).collect(stall_timeout=60)
    sizes = sum((tmp_path / "scene" / name).stat().st_size for name in scene.assets)
    # a bucket that fails (FARM_FAULTS) as often as the retry policy allows
    failing = make_document(width=64, height=48, spp=1)  # 12 buckets of 16 px: bucket 9 fails
    with pytest.raises(JobError, match="injected failure on bucket 9"):
        start_job(farm.redis, farm.app, parse_scene(failing), failing, 16, "spiral").collect(stall_timeout=60)

    def tallied():
        found = _scrape(port)
        return found if found.get(("farm_bucket_failures_total", (("device", device),))) == 3 else None

    found = commands.wait_for(tallied, 10, "three failures in the metrics")
    assert found[("farm_asset_bytes_fetched_total", ())] == sizes
    assert found[("farm_asset_cache_hits_total", ())] == 3
