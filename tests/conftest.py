"""Shared fixtures: the example scene, and real parts (a redis-server, celery workers)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from tests.files import CORNELL

# Every process the tests start shares one farm secret, as a real farm's do (the embedded
# farm would make one with the first farm, which made the warning of a farm without one
# depend on the order of the tests); the tests of a farm without one remove it.
os.environ.setdefault("FARM_SECRET", __import__("secrets").token_hex(32))
# ...and no settings file: a developer's ~/.config/farm/farm.toml must not change a test;
# the tests of the settings file name theirs.
os.environ["FARM_SETTINGS"] = "none"
# Each session's asset cache (and so numba's) is new: a warm-up would compile the BVH
# builder in every worker the tests start. tests/test_bvh.py turns it on where it tests it.
os.environ["FARM_BVH_WARMUP"] = "0"


@pytest.fixture(scope="session")
def cornell_document() -> dict:
    return json.loads(CORNELL.read_text())


@pytest.fixture
def make_document(cornell_document):
    """A copy of the Cornell box with the film (and anything else) changed."""

    def make(width=64, height=48, spp=4, **top_level):
        document = copy.deepcopy(cornell_document)
        document["film"] = {"width": width, "height": height, "spp": spp}
        document.update(top_level)
        return document

    return make


@pytest.fixture
def write_scene(tmp_path):
    """Write a scene document (or raw text) to a file and return its path."""

    def write(content, name="scene.json") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    return write


@pytest.fixture(scope="session")
def device():
    from farm.worker.device import current

    return current()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port, for the whole session."""
    from farm.client.local import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def farm(tmp_path_factory):
    """Two real `celery -A farm worker` processes on a Redis of their own, for the session.
    farm.app's broker points there too, for tests that use the product's app."""
    from farm.app import app
    from tests.farms import PrivateFarm

    private = PrivateFarm(tmp_path_factory.mktemp("farm"), name="test")
    app.conf.broker_url = private.url
    yield private
    private.discard()


@pytest.fixture
def make_farm(tmp_path):
    """A test's own farms: `make_farm(worker_envs, **options)` starts a PrivateFarm (one
    worker per environment; faults by FARM_FAULTS in them; PrivateFarm's options) in the
    test's folder, unless `folder` says another; each is closed after the test."""
    from tests.farms import PrivateFarm

    farms = []

    def make(worker_envs=({}, {}), folder=None, **options) -> PrivateFarm:
        farms.append(PrivateFarm(folder or tmp_path, worker_envs, **options))
        return farms[-1]

    yield make
    for private in farms:
        private.discard()


@pytest.fixture(autouse=True, scope="session")
def _asset_cache_in_a_temporary_folder(tmp_path_factory):
    """Workers started by tests (and their children) cache assets under the session's
    temporary folder, never in the user's own cache."""
    os.environ["FARM_CACHE_DIR"] = str(tmp_path_factory.mktemp("asset-cache"))
    from farm import defaults

    defaults.CACHE_DIR = os.environ["FARM_CACHE_DIR"]


@pytest.fixture(autouse=True)
def _no_broker_from_environment(monkeypatch):
    """Tests choose their broker explicitly; a developer's FARM_BROKER_URL must not leak in."""
    if "FARM_BROKER_URL" in os.environ:
        monkeypatch.delenv("FARM_BROKER_URL")


# The inner loop's subset (`pytest -m quick`, under two minutes on CI's two cores): the
# scene, the kernel, the protocol, the client's loop and one farm of two workers, without
# the fault, scale, deployment and security runs that start farms of their own.
QUICK = {"test_adaptive", "test_buckets", "test_bvh", "test_compiled", "test_device", "test_docs", "test_film", "test_gltf_animation", "test_heap",
         "test_gltf_models_animated", "test_images", "test_instances", "test_job", "test_layout", "test_loop", "test_manager_jobs", "test_manager_lease", "test_motion", "test_obj_reader", "test_queue", "test_recovery",
         "test_registry", "test_render", "test_scene", "test_shot", "test_untrusted", "test_usd"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in QUICK:
            item.add_marker(pytest.mark.quick)
