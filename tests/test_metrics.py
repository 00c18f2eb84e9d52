"""Prometheus metrics of a real worker, scraped during and after a real render."""

import re
import socket
import urllib.request

from farm.protocol.jobs import JobState
from farm.scene import parse_scene
from tests import commands
from tests.farms import PrivateFarm
from tests.files import ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _scrape(port: int) -> dict:
    """{(name, labels as a sorted tuple): value} of every sample the endpoint serves."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_a_worker_exports_its_samples_buckets_and_the_queue(tmp_path, make_document):
    from farm.client.run import start_job

    port = _free_port()
    farm = PrivateFarm(tmp_path, [{"FARM_METRICS_PORT": str(port)}], name="metered")
    try:
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
    finally:
        farm.close()
