"""A farm many people share (issue 29), on real workers with real clients: priorities that
order the jobs and can change mid-render, and fair share among jobs of one priority."""

from __future__ import annotations

import time

import numpy as np

from farm.protocol.jobs import Job
from farm.protocol.record import JobRecord
from tests import commands


def _started(farm, before: set[str]) -> str:
    """The id of the job that appears on `farm` besides `before`."""
    found = commands.wait_for(lambda: set(JobRecord.ids(farm.redis)) - before, 60, "a new job")
    (job_id,) = found
    return job_id


def _ended(processes: dict, timeout: float = 300) -> list:
    """The names of `processes` (name -> Popen) in the order they exit, each with status 0."""
    order, deadline = [], time.monotonic() + timeout
    while len(order) < len(processes) and time.monotonic() < deadline:
        for name, process in processes.items():
            if name not in order and process.poll() is not None:
                returncode, _, stderr = commands.finish(process)
                assert returncode == 0, f"{name}: {stderr}"
                order.append(name)
        time.sleep(0.05)
    assert len(order) == len(processes), f"only {order} ended"
    return order


def test_the_highest_priority_goes_first_and_a_raised_one_goes_next(make_farm, make_document, write_scene, tmp_path):
    """Three jobs at priorities 10, 50 and 90, submitted in that order to 2 busy workers: the
    90 ends first; the 10 raised to 100 once the 90 renders ends before the 50."""
    farm = make_farm([{"FARM_FAULTS": "slow=3"}, {"FARM_FAULTS": "slow=3"}], name="prio")
    scene = write_scene(make_document(width=64, height=64, spp=512))
    clients, ids = {}, {}
    for priority in (10, 50, 90):
        before = set(JobRecord.ids(farm.redis))
        clients[priority] = farm.farm("submit", scene, "-o", tmp_path / f"p{priority}.png", "--bucket-size", "16",
                                      "--priority", str(priority))
        ids[priority] = _started(farm, before)
    commands.wait_for(lambda: Job.load(farm.redis, ids[90]).tiles.stored(), 60, "the 90's first tile")
    assert Job.load(farm.redis, ids[10]).tiles.stored(), "the 10's buckets went first, having come first"
    result = commands.run("priority", ids[10], "100", "--broker", farm.url)
    assert result.returncode == 0, result.stderr
    assert JobRecord(farm.redis, ids[10]).state()[2] == 100
    assert _ended(clients) == [90, 10, 50]


def test_a_small_job_behind_a_huge_one_of_its_priority_takes_about_its_own_time(make_farm, make_document,
                                                                                write_scene, tmp_path):
    """A 16-bucket job alone, then behind a 4,096-bucket job at the same priority: it ends
    long before the huge one, within 3x its time alone (measured: the note quotes it)."""
    farm = make_farm([{}, {}], name="fair")
    small = write_scene(make_document(width=64, height=64, spp=256), "small.json")
    huge = write_scene(make_document(width=512, height=512, spp=16), "huge.json")
    started = time.monotonic()
    result = commands.run("submit", small, "-o", tmp_path / "alone.png", "--bucket-size", "16", "--broker", farm.url)
    alone = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    before = set(JobRecord.ids(farm.redis))
    big = farm.farm("submit", huge, "-o", tmp_path / "huge.png", "--bucket-size", "8")
    big_id = _started(farm, before)
    big_job = Job.load(farm.redis, big_id)
    assert big_job.bucket_count == 4096
    commands.wait_for(lambda: len(big_job.tiles.stored()) >= 64, 120, "the huge job under way")
    started = time.monotonic()
    result = commands.run("submit", small, "-o", tmp_path / "behind.png", "--bucket-size", "16", "--broker", farm.url)
    behind = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    left = big_job.bucket_count - len(big_job.tiles.stored())
    commands.run("cancel", big_id, "--broker", farm.url)
    commands.finish(big, timeout=60)
    started = time.monotonic()  # alone again, after: the machine's load may have changed meanwhile
    result = commands.run("submit", small, "-o", tmp_path / "after.png", "--bucket-size", "16", "--broker", farm.url)
    alone = max(alone, time.monotonic() - started)
    assert result.returncode == 0, result.stderr
    print(f"16 buckets alone {alone:.2f} s (the slower of two), behind 4096 {behind:.2f} s ({behind / alone:.2f}x); "
          f"the huge job had {left} buckets left")
    assert left > 1024, "the small job waited for the huge one"
    assert behind < 3 * alone, (alone, behind)


def test_a_worker_failing_one_job_is_blocklisted_for_it_alone(make_farm, make_document, write_scene, tmp_path,
                                                              device):
    """w2 fails every bucket of 40x24 frames: after FARM_BLOCK_AFTER (2) it takes no more of
    that job's buckets, is not bad farm-wide, and renders another job's; both frames exact."""
    import json

    from farm.client.film import read_exr
    from farm.protocol import registry
    from tests import frames

    farm = make_farm([{}, {"FARM_FAULTS": "failsize=40x24"}], name="block")
    broken = make_document(width=40, height=24, spp=64)
    other = make_document(width=64, height=64, spp=256)
    before = set(JobRecord.ids(farm.redis))
    first = farm.farm("submit", write_scene(broken, "broken.json"), "-o", tmp_path / "broken.exr", "--bucket-size", "8",
                      "--report", tmp_path / "broken.json")
    job = Job.load(farm.redis, _started(farm, before))
    commands.wait_for(lambda: job.blocklist.blocked(), 60, "the job to blocklist w2")
    status = commands.run("status", "--broker", farm.url).stdout
    second = farm.farm("submit", write_scene(other, "other.json"), "-o", tmp_path / "other.exr", "--bucket-size", "8",
                       "--report", tmp_path / "other.json")
    for client in (first, second):
        returncode, _, stderr = commands.finish(client, timeout=300)
        assert returncode == 0, stderr
    (blocked, why), = job.blocklist.blocked().items()
    assert blocked.startswith("block2@") and "injected failure" in why
    assert f"blocklisted: {blocked} (injected failure" in status, status
    assert not registry.workers(farm.redis)[blocked].bad, "blocklisted for one job, not bad for the farm"
    workers = {row["worker"].split("@")[0] for row in json.loads((tmp_path / "broken.json").read_text())["buckets"]}
    assert workers == {"block1"}
    workers = {row["worker"].split("@")[0] for row in json.loads((tmp_path / "other.json").read_text())["buckets"]}
    assert "block2" in workers, "the blocklisted worker went on with the other job"
    assert np.array_equal(read_exr(tmp_path / "broken.exr"), frames.reference(device, broken))
    assert np.array_equal(read_exr(tmp_path / "other.exr"), frames.reference(device, other))


def test_max_workers_keeps_a_job_on_that_many_workers_at_once(make_farm, make_document, write_scene, tmp_path):
    farm = make_farm([{}, {}], name="limit")
    before = set(JobRecord.ids(farm.redis))
    client = farm.farm("submit", write_scene(make_document(width=64, height=32, spp=1024)), "-o", tmp_path / "o.png",
                       "--bucket-size", "16", "--max-workers", "1")
    job = Job.load(farm.redis, _started(farm, before))
    most = 0
    while client.poll() is None:
        most = max(most, len({lease.bucket for lease in job.deliveries.leases()}))
        time.sleep(0.02)
    returncode, _, stderr = commands.finish(client)
    assert returncode == 0, stderr
    assert most == 1, most
    result = commands.run("submit", write_scene(make_document(), "again.json"), "-o", "x.png", "--max-workers", "0",
                          "--broker", farm.url)
    assert result.returncode == 2 and "--max-workers must be at least 1, got 0" in result.stderr, result.stderr


def _other_version(folder):
    """A copy of this checkout's farm whose kernel sources differ by a comment: another
    version of the renderer, as a worker installed from another release would run."""
    import shutil
    from pathlib import Path

    import farm

    source = Path(farm.__file__).resolve().parent
    shutil.copytree(source, folder / "farm", ignore=shutil.ignore_patterns("__pycache__", "kernels", "scenes"),
                    symlinks=False)
    from farm.protocol.identity import kernel_dir

    shutil.copytree(kernel_dir(), folder / "farm" / "kernels")
    with open(folder / "farm" / "kernels" / "pathtrace.cl", "a") as kernel:
        kernel.write("\n// another version of the kernel\n")
    return folder


def test_a_worker_of_another_kernel_renders_none_of_a_job_and_farm_check_names_it(make_farm, make_document,
                                                                                  write_scene, tmp_path):
    import json

    from farm.protocol.identity import sources_digest

    other = _other_version(tmp_path / "other")
    farm = make_farm([{}, {"PYTHONPATH": str(other)}], name="pinned")
    scene = write_scene(make_document(width=48, height=48, spp=64))
    result = commands.run("submit", scene, "-o", tmp_path / "out.png", "--bucket-size", "8", "--report",
                          tmp_path / "report.json", "--broker", farm.url, timeout=300)
    assert result.returncode == 0, result.stderr
    workers = {row["worker"].split("@")[0] for row in json.loads((tmp_path / "report.json").read_text())["buckets"]}
    assert workers == {"pinned1"}, workers
    job_id = json.loads((tmp_path / "report.json").read_text())["job_id"]
    checked = commands.run("check", job_id, "--broker", farm.url).stdout
    line = next(line for line in checked.splitlines() if "excluded pinned2@" in line)
    assert f"the job's {sources_digest()} (another farm version)" in line, checked
    assert "1 of 2 worker(s) may render it" in checked, checked

    (tmp_path / "alone").mkdir()
    alone = make_farm([{"PYTHONPATH": str(other)}], name="alone", folder=tmp_path / "alone")
    result = commands.run("submit", scene, "-o", tmp_path / "never.png", "--broker", alone.url,
                          env={"FARM_NO_HEALTHY_WORKER_TIMEOUT": "3"}, timeout=120)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "no worker can render this job" in line and "(another farm version)" in line, result.stderr


def test_a_job_requiring_a_tag_no_worker_has_ends_in_one_line_and_a_tagged_worker_renders_alone(
        make_farm, make_document, write_scene, tmp_path, device):
    import json

    from farm.client.film import read_exr
    from tests import frames

    farm = make_farm([{"FARM_TAGS": "lookdev"}, {}], name="tags")
    document = make_document(width=48, height=32, spp=64)
    scene = write_scene(document)
    client = farm.farm("submit", scene, "-o", tmp_path / "never.png", "--require", "gpu",
                       env={"FARM_NO_HEALTHY_WORKER_TIMEOUT": "3"})
    status = commands.wait_for(lambda: "no live worker has every one of these tags" in (
        out := commands.run("status", "--broker", farm.url).stdout) and out, 30, "farm status to say so")
    assert "requires gpu" in status
    returncode, _, stderr = commands.finish(client, timeout=60)
    line = stderr.strip().splitlines()[-1]
    assert returncode == 2 and "no worker can render this job" in line and "it lacks the tag gpu" in line, stderr

    result = commands.run("submit", scene, "-o", tmp_path / "look.exr", "--require", "lookdev,cpu", "--bucket-size",
                          "8", "--report", tmp_path / "look.json", "--broker", farm.url, timeout=300)
    assert result.returncode == 0, result.stderr
    workers = {row["worker"].split("@")[0] for row in json.loads((tmp_path / "look.json").read_text())["buckets"]}
    assert workers == {"tags1"}, workers
    assert np.array_equal(read_exr(tmp_path / "look.exr"), frames.reference(device, document))
    result = commands.run("submit", scene, "-o", "x.png", "--require", "GPU!", "--broker", farm.url)
    assert result.returncode == 2 and "--require: 'gpu!' is not a tag" in result.stderr, result.stderr
