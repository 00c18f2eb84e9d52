"""Redis Sentinel with real processes: a master and its replica (redis-servers), a Sentinel
that asks for a password, one `celery worker` and `submit`, all given one sentinel:// URL
whose first sentinel is down. A frame renders through it bit for bit as the README's ACL
user; a wrong master name or sentinel password is one clear line; the master killed
mid-frame fails over to the replica and the frame still comes out exact."""

from __future__ import annotations

import json
import secrets
from types import SimpleNamespace

import numpy as np
import pytest
import redis

from farm import defaults
from farm.client.film import read_exr
from farm.client.local import RedisServer
from farm.exceptions import BrokerError, FarmSetupError
from farm.protocol.broker import client, connect, redacted, server_time
from farm.protocol.jobs import Job
from farm.protocol.record import JobRecord
from tests import commands
from tests import frames as one_process  # `frames` is a fixture here
from tests.farms import PrivateFarm, SentinelServer
from tests.ports import free_port
from tests.test_security import readme_acl

MASTER = "render"  # not Sentinel's usual mymaster: FARM_SENTINEL_MASTER must reach every process
FARM_PASSWORD, ADMIN_PASSWORD, SENTINEL_PASSWORD = (secrets.token_hex(16) for _ in range(3))
PASSWORDS = (FARM_PASSWORD, ADMIN_PASSWORD, SENTINEL_PASSWORD)
BUCKETS = 9  # the failover frame: 48x48 in 16 px buckets
# Short leases and passes, and buckets slowed to about a quarter of a second, so that the
# master dies with most of the failover frame still to render (as in test_faults).
WORKER_ENV = {"FARM_LEASE_TIMEOUT": "4", "FARM_PASS_SECONDS": "0.05", "FARM_FAULTS": "slow=15"}

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def frames(cornell_document, tmp_path_factory, device):
    """Two scene files with their one-process renders: a small frame, and the failover's."""
    folder = tmp_path_factory.mktemp("scenes")
    made = {}
    for name, film in (("small", {"width": 32, "height": 32, "spp": 4}), ("failover", {"width": 48, "height": 48, "spp": 64})):
        document = dict(cornell_document, film=film)
        (folder / f"{name}.json").write_text(json.dumps(document))
        made[name] = (folder / f"{name}.json", one_process.reference(device, document))
    return made


def secure(server: RedisServer) -> redis.Redis:
    """`default` gets a password (Sentinel and replication log in as it), `farm` the README's
    rules (ACLs are not replicated: each server needs its own); its admin client."""
    redis.Redis(port=server.port).execute_command("ACL", "SETUSER", "default", "resetpass", f">{ADMIN_PASSWORD}")
    admin = redis.Redis(port=server.port, password=ADMIN_PASSWORD, socket_timeout=5)
    admin.config_set("masterauth", ADMIN_PASSWORD)
    admin.execute_command(*readme_acl(FARM_PASSWORD))
    return admin


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    """A master, its replica, a Sentinel and one worker; the URL (a dead sentinel first)
    and the environment every farm process gets. The Redis servers are the test's own (the
    failover is what it tests); the worker is a PrivateFarm's, on them."""
    folder = tmp_path_factory.mktemp("sentinel")
    servers = [RedisServer(folder).start(), RedisServer(folder).start()]
    sentinel = farm = None
    try:
        master, replica = (secure(server) for server in servers)
        replica.replicaof("127.0.0.1", servers[0].port)
        commands.wait_for(lambda: master.info("replication").get("slave0", {}).get("state") == "online", 20,
                          "the replica to sync")
        sentinel = SentinelServer(folder, servers[0].port, MASTER, SENTINEL_PASSWORD, ADMIN_PASSWORD)
        try:
            sentinel.start()
        except FarmSetupError as exc:
            if sentinel.ran():
                raise
            pytest.skip(f"this redis-server cannot run Redis Sentinel ({exc})")
        commands.wait_for(lambda: [r for r in sentinel.client().sentinel_slaves(MASTER)
                                   if r["master-link-status"] == "ok" and not r["is_sdown"]], 30,
                          "Sentinel to find the replica")
        url = ";".join(f"sentinel://farm:{FARM_PASSWORD}@127.0.0.1:{port}/0" for port in (free_port(), sentinel.port))
        env = {"FARM_BROKER_URL": url, "FARM_SENTINEL_MASTER": MASTER, "FARM_SENTINEL_PASSWORD": SENTINEL_PASSWORD}
        current = redis.sentinel.Sentinel([("127.0.0.1", sentinel.port)], sentinel_kwargs={"password": SENTINEL_PASSWORD})
        admin = current.master_for(MASTER, password=ADMIN_PASSWORD, socket_timeout=5)  # follows a failover
        farm = PrivateFarm(folder, [WORKER_ENV], env, name="sentinel", broker=(url, admin))
        yield SimpleNamespace(servers=servers, sentinel=sentinel, url=url, env=env, worker=farm.workers[0], admin=admin)
    finally:
        if farm is not None:
            farm.discard()
        if sentinel is not None:
            sentinel.stop()
        for server in servers:
            server.stop()


def denied(admin) -> list[dict]:
    """What the master's ACL refused, but redis-py's optional CLIENT SETINFO."""
    return [entry for entry in admin.acl_log(count=100) if not str(entry.get("object", "")).startswith("client")]


def job_ids(admin) -> set[str]:
    return {key.decode().split(":")[2] for key in admin.scan_iter(match=JobRecord.key_for("*"))}


def assert_no_password(*texts: str):
    for text in texts:
        for password in PASSWORDS:
            assert password not in text


def test_a_frame_renders_through_sentinel_exactly_as_the_readme_acl_user(ha, frames, tmp_path, monkeypatch):
    scene, reference = frames["small"]
    result = commands.run("submit", scene, "-o", tmp_path / "frame.exr", "--bucket-size", "16", env=ha.env,
                          timeout=120)
    assert result.returncode == 0, result.stderr
    assert np.array_equal(read_exr(tmp_path / "frame.exr"), reference)

    monkeypatch.setattr(defaults, "SENTINEL_MASTER", MASTER)  # the farm's client in this process too
    monkeypatch.setenv("FARM_SENTINEL_PASSWORD", SENTINEL_PASSWORD)
    assert abs(server_time(connect(ha.url)) - server_time(ha.admin)) < 1

    assert denied(ha.admin) == [], "Sentinel clients need no rule beyond the README's"
    assert_no_password(result.stdout, result.stderr, ha.worker.log_path.read_text(errors="replace"))


@pytest.mark.parametrize("master,password,answer", [
    ("nosuch", SENTINEL_PASSWORD, "knows no master 'nosuch' (No such master with that name): check FARM_SENTINEL_MASTER"),
    (MASTER, "wrong", "refused FARM_SENTINEL_PASSWORD"),
    (MASTER, "", "wants a password: set FARM_SENTINEL_PASSWORD"),
], ids=["master name", "sentinel password", "no sentinel password"])
def test_a_wrong_master_name_or_sentinel_password_says_which(ha, monkeypatch, master, password, answer):
    monkeypatch.setattr(defaults, "SENTINEL_MASTER", master)
    monkeypatch.setenv("FARM_SENTINEL_PASSWORD", password)
    with pytest.raises(BrokerError) as raised:
        connect(ha.url)
    dead, alive = (address.rsplit("@", 1)[1].split("/")[0] for address in ha.url.split(";"))
    assert str(raised.value) == (f"cannot reach broker {redacted(ha.url)}: no sentinel names the master: "
                                 f"{dead} did not answer (Error 111 connecting to {dead}. Connection refused.); "
                                 f"{alive} {answer}")


def test_a_command_says_it_in_one_line(ha):
    result = commands.run("status", env={**ha.env, "FARM_SENTINEL_MASTER": "nosuch"}, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"farm status: error: cannot reach broker {redacted(ha.url)}: no sentinel names")
    assert "check FARM_SENTINEL_MASTER" in lines[0]
    assert result.seconds < 20, f"took {result.seconds:.1f}s"
    assert_no_password(result.stdout, result.stderr)


def test_sentinel_urls_are_read_as_kombu_reads_them_and_printed_without_passwords():
    from kombu import Connection

    url = "sentinel://farm:s3cret@10.0.0.1:26379/2;sentinel://farm:s3cret@10.0.0.2/2;sentinel://farm:s3cret@[::1]:26380/2"
    assert redacted(url) == "sentinel://farm:***@10.0.0.1:26379/2;sentinel://farm:***@10.0.0.2/2;sentinel://farm:***@[::1]:26380/2"
    kombu = Connection(url)
    assert (kombu.transport_cls, kombu.userid, kombu.password, kombu.virtual_host) == ("sentinel", "farm", "s3cret", "2")
    pool = client(url).connection_pool
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
            for s in pool.sentinel_manager.sentinels] == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)]
    assert {key: pool.connection_kwargs[key] for key in ("username", "password", "db")} == \
        {"username": "farm", "password": "s3cret", "db": 2}
    for wrong, reason in [("sentinel://farm:s3cret@h1/0;sentinel://h2/0", "must repeat the same user, password and database"),
                          ("sentinel://:s3cret@h1/0?ssl_cert_reqs=required", "TLS through Sentinel is not supported"),
                          ("sentinel://:s3cret@h1/0;redis://h2/0", "each address must read sentinel://")]:
        with pytest.raises(BrokerError, match=reason) as raised:
            client(wrong)
        assert "s3cret" not in str(raised.value)


def test_the_master_killed_mid_frame_fails_over_and_the_frame_is_exact(ha, frames, tmp_path):
    """Last in this file: the first master stays dead; Sentinel names the replica after."""
    scene, reference = frames["failover"]
    first = ha.sentinel.master_port()
    earlier = job_ids(ha.admin)
    process = commands.start("submit", scene, "-o", tmp_path / "out.exr", "--bucket-size", "16", "-q",
                             "--report", tmp_path / "out.json",
                             env={**ha.env, "FARM_LEASE_TIMEOUT": "4", "FARM_BROKER_RETRY": "60"})

    job_id = commands.wait_for(lambda: job_ids(ha.admin) - earlier, 60, "the job to be created").pop()
    job = commands.wait_for(lambda: Job.load(ha.admin, job_id), 10, "the job's record")
    commands.wait_for(lambda: len(job.tiles.stored()) >= 2, 60, "two tiles")
    stored = len(job.tiles.stored())
    next(server for server in ha.servers if server.port == first).kill()
    commands.wait_for(lambda: ha.sentinel.master_port() != first, 30, "Sentinel to promote the replica")

    returncode, _, stderr = commands.finish(process, timeout=120)
    assert returncode == 0, stderr
    assert stored < BUCKETS, "the master died mid-frame"
    report = json.loads((tmp_path / "out.json").read_text())
    assert [b["index"] for b in report["buckets"]] == list(range(BUCKETS)), "every bucket exactly once"
    assert np.array_equal(read_exr(tmp_path / "out.exr"), reference)
    assert ha.worker.alive(), "the worker rides out the failover"
    assert denied(ha.admin) == []
    assert_no_password(stderr, ha.worker.log_path.read_text(errors="replace"))
