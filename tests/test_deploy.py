"""The deployment files, checked without a cluster: docker/kubernetes against Kubernetes' own
schemas and against each other (selectors, ports, Secret keys, KEDA's targets), and against
the project (the bucket queue's name, compose.yaml's commands, the README's ACL line); the
manifest's Redis command on a real redis-server, where KEDA's query counts the buckets farm
sends. The systemd unit is tests/test_deploy_systemd.py's."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import redis
import yaml
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from farm import defaults
from farm.client.local import redis_server_binary
from farm.protocol.queue import BucketQueue, queue_lists
from farm.worker import device
from tests.commands import wait_for
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "docker" / "kubernetes"
# the oldest Kubernetes still widely run, and the newest the schemas know
VERSIONS = ("1.29", kubernetes_validate.latest_version())
KEDA = "keda.sh/v1alpha1"
WORKERS = {"worker-cpu": "cpu", "worker-gpu": "gpu"}  # Deployment -> its FARM_DEVICE
# What KEDA's redis scaler asks (PING, then this script's commands on the list), written
# anew here: the ACL must allow exactly these.
KEDA_QUERY = "local kind = redis.call('type', KEYS[1]).ok; if kind == 'list' or kind == 'none' then return redis.call('llen', KEYS[1]) end"


def read_yaml_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def kustomization() -> dict:
    return yaml.safe_load((KUBE / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def manifests(kustomization) -> list[dict]:
    return [doc for name in kustomization["resources"] for doc in read_yaml_all(KUBE / name)]


def named(manifests, kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == kind}


def pod_containers(manifests):
    """(Deployment name, its pod spec, container) for every container of every Deployment."""
    for name, deployment in named(manifests, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            yield name, pod, container


def only_container(manifests, deployment: str) -> dict:
    (container,) = named(manifests, "Deployment")[deployment]["spec"]["template"]["spec"]["containers"]
    return container


def env_of(container) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def secret_keys_the_readme_writes() -> set[str]:
    """The keys of secrets.env as the README's Kubernetes steps write it (the file itself is
    the operator's and never in git): the doc and the manifests cannot drift apart."""
    readme = (ROOT / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "> secrets.env" in b]
    keys = set()
    for listed in re.findall(r"for key in ([\w -]+); do", block):
        keys |= set(listed.split())
    keys |= set(re.findall(r'echo "([\w-]+)=', block))
    return keys


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())


def image_command() -> list[str]:
    """The Dockerfile's CMD: what compose's `worker`, which names no command, runs."""
    (line,) = [line for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    return json.loads(line.removeprefix("CMD "))


def broker_url(container) -> str:
    """The container's FARM_BROKER_URL with each $(VAR) it names replaced by VAR."""
    return re.sub(r"\$\((\w+)\)", r"\1", env_of(container)["FARM_BROKER_URL"]["value"])


def compose_broker_url(service) -> str:
    """A compose service's FARM_BROKER_URL with each ${VAR:?message} replaced by VAR."""
    return re.sub(r"\$\{(\w+)[^}]*\}", r"\1", service["environment"]["FARM_BROKER_URL"])


def redis_script(manifests) -> str:
    redis_container = only_container(manifests, "redis")
    assert redis_container["command"][:2] == ["sh", "-c"]
    return redis_container["command"][2]


def redis_users(manifests) -> dict[str, list[str]]:
    """user -> its ACL rules, as the manifest's redis-server command line creates them."""
    words = shlex.split(redis_script(manifests).replace("\\\n", " "))
    users, current = {}, None
    for word in words[words.index("redis-server") + 1:]:
        if word == "--user":
            current = None
        elif word.startswith("--") or word == "$@":
            current = False
        elif current is None:
            current = word
            users[current] = []
        elif current:
            users[current].append(word)
    return users


# -- the folder and the schemas ---------------------------------------------------------


def test_kustomization_lists_every_manifest_and_keeps_secrets_out_of_git(kustomization):
    manifests = {path.name for path in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)
    (generator,) = kustomization["secretGenerator"]
    assert generator["envs"] == ["secrets.env"]
    assert kustomization["generatorOptions"]["disableNameSuffixHash"], "KEDA's TriggerAuthentication names the Secret"
    assert "secrets.env" in (KUBE / ".gitignore").read_text().split()
    others = {path.name for path in KUBE.iterdir()} - manifests - {"kustomization.yaml", ".gitignore", "secrets.env"}
    assert not others, f"files the kustomization does not use: {others}"


def test_every_document_is_valid_for_kubernetes(manifests):
    seen = set()
    for doc in manifests:
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), doc
        assert "namespace" not in doc["metadata"], "the kustomization sets the namespace"
        assert (doc["kind"], doc["metadata"]["name"]) not in seen
        seen.add((doc["kind"], doc["metadata"]["name"]))
        if doc["apiVersion"] == KEDA:
            assert doc["kind"] in ("ScaledObject", "TriggerAuthentication")
            continue
        for version in VERSIONS:  # strict: an unknown or misspelt field fails too
            kubernetes_validate.validate(doc, version, strict=True)


def test_deployments_select_their_pods_and_services_their_ports(manifests):
    deployments = named(manifests, "Deployment")
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name
    for name, service in named(manifests, "Service").items():
        pods = [d["spec"]["template"] for d in deployments.values()
                if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(pods) == 1, f"Service {name} selects {len(pods)} Deployments"
        ports = [port for container in pods[0]["spec"]["containers"] for port in container.get("ports", [])]
        for service_port in service["spec"]["ports"]:
            target = service_port.get("targetPort", service_port["port"])
            assert any(target in (port.get("name"), port["containerPort"]) for port in ports), (name, target)


def test_every_secret_reference_names_a_key_the_readme_writes(manifests, kustomization):
    keys = secret_keys_the_readme_writes()
    (generator,) = kustomization["secretGenerator"]
    used = set()
    for name, _, container in pod_containers(manifests):
        defined = set()
        for entry in container.get("env", []):
            reference = entry.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                assert reference["name"] == generator["name"] and reference["key"] in keys, (name, reference)
                used.add(reference["key"])
            for variable in re.findall(r"\$\((\w+)\)", entry.get("value", "")):
                assert variable in defined, f"{name}: {entry['name']} uses $({variable}) before it is set"
            defined.add(entry["name"])
    for auth in named(manifests, "TriggerAuthentication").values():
        for reference in auth["spec"]["secretTargetRef"]:
            assert reference["name"] == generator["name"] and reference["key"] in keys, reference
            used.add(reference["key"])
    assert used == keys, f"written but never read: {keys - used}"


# -- the same farm as compose.yaml --------------------------------------------------------


def test_containers_run_what_compose_runs_with_its_settings(manifests):
    services = compose()["services"]
    redis_service = named(manifests, "Service")["redis"]
    wanted = {"flower": services["flower"]}
    wanted.update({name: services["worker"] for name in WORKERS})
    for deployment, service in wanted.items():
        container = only_container(manifests, deployment)
        assert container["image"] == "farm", "the image docker/Dockerfile builds, named in kustomization.yaml"
        assert container["command"] == service.get("command", image_command()), deployment
        assert set(service["environment"]) <= set(env_of(container)), deployment
        url, compose_url = urlsplit(broker_url(container)), urlsplit(compose_broker_url(service))
        assert (url.username, url.password) == ("farm", "FARM_REDIS_PASSWORD"), "the README's least-privilege user"
        assert url.hostname == redis_service["metadata"]["name"] == compose_url.hostname
        assert url.port == redis_service["spec"]["ports"][0]["port"] == compose_url.port
        assert url.path == compose_url.path
    assert "--queues" in image_command() and image_command()[image_command().index("--queues") + 1] == defaults.QUEUE


def test_each_worker_opens_its_kind_of_device_and_the_gpu_worker_asks_for_a_gpu(manifests):
    for deployment, kind in WORKERS.items():
        container = only_container(manifests, deployment)
        assert env_of(container)["FARM_DEVICE"]["value"] == kind in device.CHOICES
    assert only_container(manifests, "worker-gpu")["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in str(only_container(manifests, "worker-cpu")["resources"])


def test_redis_users_are_the_readmes_and_keda_may_only_read_the_queue(manifests):
    readme = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()
              if line.strip().startswith("ACL SETUSER farm ")]
    assert len(readme) == 1
    rules = ["$FARM_PASSWORD" if word == ">FARM_PASSWORD" else word for word in readme[0].split()[3:]]
    users = redis_users(manifests)
    assert set(users) == {"farm", "keda"}
    assert ["$FARM_PASSWORD" if word == ">$FARM_REDIS_PASSWORD" else word for word in users["farm"]] == rules
    assert users["keda"] == ["reset", "on", ">$KEDA_REDIS_PASSWORD", *(f"~{name}" for name in queue_lists()),
                             "resetchannels", "-@all", "+ping", "+eval", "+type", "+llen"]


# -- KEDA ---------------------------------------------------------------------------------


def test_scaled_objects_sum_the_bucket_queues_lists(manifests, kustomization):
    """One trigger per list of the queue (kombu keeps one per priority step), added up by
    the formula: an HPA given several metrics follows the largest alone."""
    scaled = named(manifests, "ScaledObject")
    auths = named(manifests, "TriggerAuthentication")
    service = named(manifests, "Service")["redis"]
    assert sorted(doc["spec"]["scaleTargetRef"]["name"] for doc in scaled.values()) == sorted(WORKERS), \
        "one ScaledObject per worker Deployment"
    assert len({json.dumps(doc["spec"]["triggers"], sort_keys=True) for doc in scaled.values()}) == 1, "the same queue"
    for doc in scaled.values():
        target = doc["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment" and target["name"] in named(manifests, "Deployment")
        assert 0 <= doc["spec"]["minReplicaCount"] <= doc["spec"]["maxReplicaCount"]
        triggers = doc["spec"]["triggers"]
        assert [trigger["metadata"]["listName"] for trigger in triggers] == queue_lists()
        modifiers = doc["spec"]["advanced"]["scalingModifiers"]
        assert sorted(term.strip() for term in modifiers["formula"].split("+")) == sorted(t["name"] for t in triggers)
        assert float(modifiers["target"]) > 0
        worker_db = urlsplit(broker_url(only_container(manifests, target["name"]))).path.strip("/")
        for trigger in triggers:
            meta = trigger["metadata"]
            assert trigger["type"] == "redis" and re.fullmatch(r"[A-Za-z_]\w*", trigger["name"]), "a name the formula can use"
            assert meta["address"] == (f"{service['metadata']['name']}.{kustomization['namespace']}.svc:"
                                       f"{service['spec']['ports'][0]['port']}")
            assert meta.get("databaseIndex", "0") == worker_db
            assert meta["username"] in redis_users(manifests)
            assert int(meta["listLength"]) > 0
            auth = auths[trigger["authenticationRef"]["name"]]
            assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} == {"password"}


@pytest.fixture
def manifest_redis(manifests, tmp_path):
    """redis-server started by the manifest's own command (the redis:7 image's `sh -c`), on a
    free loopback port: its port and the passwords it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "redis-server").symlink_to(redis_server_binary())
    passwords = {variable: os.urandom(16).hex() for variable in
                 ("REDIS_ADMIN_PASSWORD", "FARM_REDIS_PASSWORD", "KEDA_REDIS_PASSWORD")}
    port = free_port()
    process = subprocess.Popen(
        ["sh", "-c", redis_script(manifests), "sh", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        cwd=tmp_path, env={**os.environ, **passwords, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        admin = redis.Redis(port=port, password=passwords["REDIS_ADMIN_PASSWORD"], socket_connect_timeout=0.5)
        wait_for(admin.ping, 10, "the manifest's redis-server")
        yield SimpleNamespace(port=port, admin=admin, **{k.lower(): v for k, v in passwords.items()})
    finally:
        process.kill()
        process.wait()


def test_keda_counts_the_buckets_farm_sends_and_may_do_nothing_else(manifests, manifest_redis):
    port = manifest_redis.port
    url = f"redis://farm:{manifest_redis.farm_redis_password}@127.0.0.1:{port}/0"
    app = Celery("deploy-test", set_as_current=False)
    app.config_from_object("farm.celeryconfig")
    app.conf.broker_url = url
    queue, sent = BucketQueue(redis.Redis.from_url(url), app), []
    for count, step in enumerate(defaults.PRIORITY_STEPS, start=1):  # 1 bucket at the first step, 2 at the next...
        queue.send("a" * 32, range(sum(sent), sum(sent) + count), priority=step)
        sent.append(count)
    triggers = named(manifests, "ScaledObject")["worker-cpu"]["spec"]["triggers"]
    lists = [trigger["metadata"]["listName"] for trigger in triggers]
    keda = redis.Redis(port=port, username=triggers[0]["metadata"]["username"],
                       password=manifest_redis.keda_redis_password)
    assert keda.ping()
    assert [keda.eval(KEDA_QUERY, 1, name) for name in lists] == sent
    admin = manifest_redis.admin
    assert {key.decode() for key in admin.keys() if admin.type(key) == b"list"} == set(lists), "no bucket uncounted"
    from farm.protocol.record import JobRecord

    for forbidden in (lambda: keda.lpush(defaults.QUEUE, b"x"), lambda: keda.lrange(defaults.QUEUE, 0, -1),
                      lambda: keda.get(JobRecord.key_for("x")), lambda: keda.eval(KEDA_QUERY, 1, "other")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()
    denied = [entry for entry in manifest_redis.admin.acl_log(count=100)
              if not str(entry.get("object", "")).startswith("client")]  # redis-py's optional CLIENT SETINFO
    assert {entry["username"] for entry in denied} == {"keda"}, "farm's own sends were all allowed"
    with pytest.raises(redis.exceptions.AuthenticationError):  # at once: a refusal is not retried
        redis.Redis(port=port, retry=Retry(NoBackoff(), 0)).ping()
