"""docker/kubernetes, checked without a cluster: both farms (CPU workers, the default, and
gpu/'s GPU workers) built by a real `kubectl kustomize` from a checkout without any secrets
file, against Kubernetes' own schemas and against each other (selectors, ports, the Secret's
keys, KEDA's targets, one image named once), and against the project (the bucket queue's
name, compose.yaml's commands, the docs' ACL line and secret keys); the CPU worker's PoCL
device opened with the pod's environment; the manifest's Redis command on a real
redis-server, where KEDA's query counts the buckets farm sends. The systemd unit is
tests/test_deploy_systemd.py's, compose.yaml and the Dockerfile tests/test_deploy_compose.py's."""

from __future__ import annotations

import json
import math
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

from farm import celeryconfig, defaults
from farm.client.local import redis_server_binary
from farm.protocol.pools import pool_queue
from farm.protocol.queue import BucketQueue, queue_lists
from tests.commands import wait_for
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "docker" / "kubernetes"
BASE = KUBE / "base"
# the oldest Kubernetes still widely run, and the newest the schemas know
VERSIONS = ("1.29", kubernetes_validate.latest_version())
KEDA = "keda.sh/v1alpha1"
WORKER = "worker"  # the Deployment of the render workers, of either kind
FARMS = {".": "cpu", "gpu": "gpu"}  # a kustomization in docker/kubernetes -> its workers' FARM_DEVICE
SECRET = "farm"  # the Secret the operator creates, which every pod and KEDA read
# What KEDA's redis scaler asks (PING, then this script's commands on the list), written
# anew here: the ACL must allow exactly these.
KEDA_QUERY = "local kind = redis.call('type', KEYS[1]).ok; if kind == 'list' or kind == 'none' then return redis.call('llen', KEYS[1]) end"


def read_yaml_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def read_kustomization(folder: Path) -> dict:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def kustomization() -> dict:
    return read_kustomization(BASE)


@pytest.fixture(scope="module")
def manifests(kustomization) -> list[dict]:
    """The farm's documents as base/ writes them: the CPU workers' farm, before kustomize."""
    return [doc for name in kustomization["resources"] for doc in read_yaml_all(BASE / name)]


@pytest.fixture(scope="module")
def kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        pytest.skip("kubectl is not installed (it builds the farms and the Secret offline)")
    return found


@pytest.fixture(scope="module")
def built(kubectl, tmp_path_factory) -> dict[str, list[dict]]:
    """Each farm as `kubectl kustomize` builds it from a copy of docker/kubernetes that has
    no secrets.env, as a fresh checkout has none (an operator's own is left out)."""
    copy = tmp_path_factory.mktemp("kubernetes") / "kubernetes"
    shutil.copytree(KUBE, copy, ignore=shutil.ignore_patterns("secrets.env"))
    farms = {}
    for folder in FARMS:
        result = subprocess.run([kubectl, "kustomize", str(copy / folder)], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, f"kubectl kustomize docker/kubernetes/{folder}: {result.stderr}"
        farms[folder] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return farms


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


def user_docs() -> str:
    """What a user reads: the README and docs/*.md, where the deployment steps are."""
    return "\n".join(path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def secret_keys_the_docs_write() -> set[str]:
    """The keys of secrets.env as the docs' Kubernetes steps write it (the file itself is
    the operator's and never in git): the doc and the manifests cannot drift apart."""
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", user_docs(), re.S) if "> secrets.env" in b]
    keys = set()
    for listed in re.findall(r"for key in ([\w -]+); do", block):
        keys |= set(listed.split())
    keys |= set(re.findall(r'echo "([\w-]+)=', block))
    return keys


def cpu_cores(quantity) -> float:
    """A Kubernetes CPU quantity in cores: 4, "4", "3500m"."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


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


# -- the folders and the schemas ---------------------------------------------------------


def test_each_folder_holds_what_its_kustomization_uses_and_no_secret(kustomization):
    """base/ is the farm (CPU workers), the folder itself builds it as it is, gpu/ patches its
    workers; no kustomization reads a file of secrets, which a checkout does not have."""
    files = {path.name for path in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert {path.name for path in BASE.iterdir()} == files | {"kustomization.yaml"}
    assert read_kustomization(KUBE)["resources"] == ["base"]
    gpu = read_kustomization(KUBE / "gpu")
    assert gpu["resources"] == ["../base"] and gpu["patches"] == [{"path": "worker.yaml"}]
    assert {path.name for path in (KUBE / "gpu").iterdir()} == {"kustomization.yaml", "worker.yaml"}
    assert {path.name for path in KUBE.iterdir()} - {"secrets.env"} == {"kustomization.yaml", ".gitignore", "base", "gpu"}
    for folder in (KUBE, BASE, KUBE / "gpu"):
        assert not {"secretGenerator", "configMapGenerator"} & set(read_kustomization(folder)), folder
    assert "secrets.env" in (KUBE / ".gitignore").read_text().split(), "where the docs write it"


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


@pytest.mark.parametrize("folder", FARMS)
def test_each_farm_builds_without_a_secrets_file_into_valid_documents(built, folder, kustomization):
    for doc in built[folder]:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == kustomization["namespace"], doc["metadata"]
        if doc["apiVersion"] != KEDA:
            for version in VERSIONS:
                kubernetes_validate.validate(doc, version, strict=True)
    for name, _, container in pod_containers(built[folder]):  # gpu/'s patch merges into the env
        defined = []
        for entry in container.get("env", []):
            assert set(re.findall(r"\$\((\w+)\)", entry.get("value", ""))) <= set(defined), (name, entry["name"])
            defined.append(entry["name"])


@pytest.mark.parametrize("folder", FARMS)
def test_each_farm_runs_one_kind_of_worker(built, folder):
    """A frame rendered by CPU and GPU workers together would be identical only within each
    kind: each farm has one worker Deployment, of one kind, and KEDA scales that one."""
    documents, kind = built[folder], FARMS[folder]
    workers = {name: doc for name, doc in named(documents, "Deployment").items()
               if only_container(documents, name)["command"] == image_command()}
    assert list(workers) == [WORKER]
    container = only_container(documents, WORKER)
    assert env_of(container)["FARM_DEVICE"]["value"] == kind
    assert [doc["spec"]["scaleTargetRef"]["name"] for doc in named(documents, "ScaledObject").values()] == [WORKER]
    pod = workers[WORKER]["spec"]["template"]["spec"]
    if kind == "gpu":
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    else:
        assert "nvidia.com/gpu" not in str(container["resources"]) and "tolerations" not in pod


def test_the_image_is_named_once_and_its_placeholder_cannot_be_pulled(built, kustomization):
    """farm is in no public registry: the name every farm pod runs is base/'s `images`, and
    until the operator names theirs it is one that no registry answers to (.invalid)."""
    (image,) = [entry for entry in kustomization["images"] if entry["name"] == "farm"]
    reference = f"{image['newName']}:{image['newTag']}"
    assert image["newName"].split("/")[0].endswith(".invalid"), f"{reference} looks pullable"
    for folder in FARMS:
        assert "images" not in read_kustomization(KUBE / folder), "the image is set in base/ alone"
        images = {container["image"] for name, _, container in pod_containers(built[folder]) if name != "redis"}
        assert images == {reference}, folder


def test_cpu_workers_get_whole_cores_and_pocl_runs_one_thread_per_core(manifests, tmp_path):
    """Requests equal to limits, in whole cores; one render process (Celery's concurrency,
    from celeryconfig); and PoCL told the limit by the Downward API, checked by opening farm's
    CPU device with the environment the kubelet gives the container."""
    container = only_container(manifests, WORKER)
    resources = container["resources"]
    assert resources["requests"] == resources["limits"] and {"cpu", "memory"} <= set(resources["limits"])
    cores = cpu_cores(resources["limits"]["cpu"])
    assert cores == int(cores) >= 1, "PoCL counts whole threads: a fraction of a core would be throttled"
    assert celeryconfig.worker_concurrency == 1
    assert not {"-c", "--concurrency", "--autoscale"} & set(container["command"]), "one render process a pod"
    environment = env_of(container)
    for name in ("POCL_CPU_MAX_CU_COUNT", "POCL_MAX_PTHREAD_COUNT"):  # PoCL 4 and newer, PoCL 3
        assert environment[name]["valueFrom"]["resourceFieldRef"] == \
            {"containerName": container["name"], "resource": "limits.cpu", "divisor": "1"}, name
    pocl = {name: str(math.ceil(cores)) for name in ("POCL_CPU_MAX_CU_COUNT", "POCL_MAX_PTHREAD_COUNT")}
    probe = ("from farm.worker.device import open_device\n"
             "print(open_device('cpu').device.max_compute_units)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={**os.environ, "FARM_DEVICE": "cpu", **pocl})
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) == int(cores), "PoCL's CPU device, in the pod"


def test_every_secret_reference_names_a_key_the_docs_write(manifests):
    keys = secret_keys_the_docs_write()
    used = set()
    for name, _, container in pod_containers(manifests):
        defined = set()
        for entry in container.get("env", []):
            reference = entry.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                assert reference["name"] == SECRET and reference["key"] in keys, (name, reference)
                used.add(reference["key"])
            for variable in re.findall(r"\$\((\w+)\)", entry.get("value", "")):
                assert variable in defined, f"{name}: {entry['name']} uses $({variable}) before it is set"
            defined.add(entry["name"])
    for auth in named(manifests, "TriggerAuthentication").values():
        for reference in auth["spec"]["secretTargetRef"]:
            assert reference["name"] == SECRET and reference["key"] in keys, reference
            used.add(reference["key"])
    assert used == keys, f"written but never read: {keys - used}"


def test_the_documented_command_creates_the_secret_the_farm_reads(kubectl, kustomization, tmp_path):
    """The `kubectl create secret` line of docker/kubernetes/kustomization.yaml, run (client
    side) on a secrets.env with the docs' keys: the Secret every pod and KEDA name."""
    (line,) = [line.lstrip("# ").strip() for line in (KUBE / "kustomization.yaml").read_text().splitlines()
               if "create secret generic" in line]
    argv = shlex.split(line)
    assert argv[0] == "kubectl" and "--from-env-file=secrets.env" in argv, line
    keys = secret_keys_the_docs_write()
    (tmp_path / "secrets.env").write_text("".join(f"{key}={os.urandom(8).hex()}\n" for key in sorted(keys)))
    result = subprocess.run([kubectl, *argv[1:], "--dry-run=client", "-o", "yaml"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    secret = yaml.safe_load(result.stdout)
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == (SECRET, kustomization["namespace"])
    assert set(secret["data"]) == keys


# -- the same farm as compose.yaml --------------------------------------------------------


def test_containers_run_what_compose_runs_with_its_settings(manifests):
    services = compose()["services"]
    redis_service = named(manifests, "Service")["redis"]
    for deployment, service in {"flower": services["flower"], WORKER: services["worker"]}.items():
        container = only_container(manifests, deployment)
        assert container["image"] == "farm", "the image docker/Dockerfile builds, named in kustomization.yaml"
        assert container["command"] == service.get("command", image_command()), deployment
        assert set(service["environment"]) <= set(env_of(container)), deployment
        url, compose_url = urlsplit(broker_url(container)), urlsplit(compose_broker_url(service))
        assert (url.username, url.password) == ("farm", "FARM_REDIS_PASSWORD"), "the docs' least-privilege user"
        assert url.hostname == redis_service["metadata"]["name"] == compose_url.hostname
        assert url.port == redis_service["spec"]["ports"][0]["port"] == compose_url.port
        assert url.path == compose_url.path
    assert "--queues" in image_command() and image_command()[image_command().index("--queues") + 1] == defaults.QUEUE


def test_redis_users_are_the_docs_and_keda_may_only_read_the_queue(manifests):
    documented = [line.strip() for line in user_docs().splitlines()
              if line.strip().startswith("ACL SETUSER farm ")]
    assert len(documented) == 1
    rules = ["$FARM_PASSWORD" if word == ">FARM_PASSWORD" else word for word in documented[0].split()[3:]]
    users = redis_users(manifests)
    assert set(users) == {"farm", "keda"}
    assert ["$FARM_PASSWORD" if word == ">$FARM_REDIS_PASSWORD" else word for word in users["farm"]] == rules
    counted = queue_lists() + queue_lists(pool_queue(("cpu",))) + queue_lists(pool_queue(("gpu",)))
    assert users["keda"] == ["reset", "on", ">$KEDA_REDIS_PASSWORD", *(f"~{name}" for name in counted),
                             "resetchannels", "-@all", "+ping", "+eval", "+type", "+llen"]


# -- KEDA ---------------------------------------------------------------------------------


def test_scaled_objects_sum_the_bucket_queues_lists(manifests, kustomization):
    """One trigger per list of the queue (kombu keeps one per priority step), added up by
    the formula: an HPA given several metrics follows the largest alone."""
    scaled = named(manifests, "ScaledObject")
    auths = named(manifests, "TriggerAuthentication")
    service = named(manifests, "Service")["redis"]
    assert [doc["spec"]["scaleTargetRef"]["name"] for doc in scaled.values()] == [WORKER], \
        "one ScaledObject, for the workers' Deployment"
    assert len({json.dumps(doc["spec"]["triggers"], sort_keys=True) for doc in scaled.values()}) == 1, "the same queue"
    for doc in scaled.values():
        target = doc["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment" and target["name"] in named(manifests, "Deployment")
        assert 0 <= doc["spec"]["minReplicaCount"] <= doc["spec"]["maxReplicaCount"]
        triggers = doc["spec"]["triggers"]
        # the queue every worker empties, and the pool of the workers' device kind (farm.protocol.pools)
        assert [trigger["metadata"]["listName"] for trigger in triggers] == queue_lists() + queue_lists("farm.cpu")
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


def test_each_kind_of_worker_scales_on_its_own_pool(built):
    """The CPU workers' ScaledObject counts `farm` and `farm.cpu`, the GPU workers' `farm` and
    `farm.gpu`: a job that requires gpu calls up GPU workers only."""
    for folder, kind in FARMS.items():
        (scaled,) = named(built[folder], "ScaledObject").values()
        lists = [trigger["metadata"]["listName"] for trigger in scaled["spec"]["triggers"]]
        assert lists == queue_lists() + queue_lists(pool_queue((kind,))), folder
        formula = scaled["spec"]["advanced"]["scalingModifiers"]["formula"]
        assert sorted(term.strip() for term in formula.split("+")) == sorted(t["name"] for t in scaled["spec"]["triggers"])


def test_keda_counts_the_buckets_farm_sends_and_may_do_nothing_else(manifests, manifest_redis):
    port = manifest_redis.port
    url = f"redis://farm:{manifest_redis.farm_redis_password}@127.0.0.1:{port}/0"
    app = Celery("deploy-test", set_as_current=False)
    app.config_from_object("farm.celeryconfig")
    app.conf.broker_url = url
    queue, sent = BucketQueue(redis.Redis.from_url(url), app), []
    for pool in (None, pool_queue(("cpu",))):  # the queue every worker empties, and the CPU workers' pool
        for count, step in enumerate(defaults.PRIORITY_STEPS, start=1):  # 1 bucket at the first step, 2 at the next...
            queue.send("a" * 32, range(sum(sent), sum(sent) + count), priority=step, pool=pool)
            sent.append(count)
    triggers = named(manifests, "ScaledObject")[WORKER]["spec"]["triggers"]
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
