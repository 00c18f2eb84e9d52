"""farm.settings on real processes: every FARM_* value checked at the start of `submit`,
`farm` and a worker, a line for each bad one; the settings file (TOML) read by all three,
the environment over it; `farm settings` says where each value comes from. Issue 26 item 9."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import commands
from tests.files import CORNELL

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens: anything that got past the check would say so

BAD = {  # each out of its range, not finite, or not one of its choices
    "FARM_BUCKET_SIZE": ("2", "FARM_BUCKET_SIZE='2' is below the least allowed, 4"),
    "FARM_LEASE_TIMEOUT": ("nan", "FARM_LEASE_TIMEOUT='nan' is not a number"),
    "FARM_BUCKET_ORDER": ("random", "FARM_BUCKET_ORDER='random' is not spiral or top-down"),
    "FARM_ALLOW_NO_SECRET": ("false-ish", "FARM_ALLOW_NO_SECRET='false-ish' is not 1 or 0"),
    "FARM_METRICS_PORT": ("70000", "FARM_METRICS_PORT='70000' is over the most allowed, 65535"),
    "FARM_QUEUE": ("farm queue", "FARM_QUEUE='farm queue' is not a name of letters"),
}


def worker(env: dict) -> subprocess.CompletedProcess:
    """A real `celery worker` started with `env`: it must stop before it connects anywhere."""
    return subprocess.run([sys.executable, "-m", "celery", "-A", "farm", "worker", "--pool", "solo",
                           "--without-gossip", "--without-mingle"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FARM_BROKER_URL": DEAD_BROKER, **env})


def error_lines(stderr: str, program: str) -> list[str]:
    return [line.removeprefix(f"{program}: error: ") for line in stderr.splitlines()
            if line.startswith(f"{program}: error: ")]


def test_every_bad_setting_is_a_line_for_the_client_and_the_worker(tmp_path):
    """Before: ranges and choices were not checked (a bucket size of 2 reached the job's
    description, an unknown order the bucket split, FARM_ALLOW_NO_SECRET='false-ish' meant
    yes), and a NaN lease passed as a number."""
    env = {name: value for name, (value, _) in BAD.items()}
    expected = [message for _, message in BAD.values()]
    result = commands.run("submit", CORNELL, "-o", tmp_path / "out.png", "--broker", DEAD_BROKER, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = error_lines(result.stderr, "submit")
    assert len(lines) == len(BAD) == len(result.stderr.strip().splitlines()), result.stderr
    assert all(line.startswith(message) for line, message in zip(sorted(lines), sorted(expected))), lines
    started = worker(env)
    assert started.returncode == 2 and "Traceback" not in started.stderr, started.stderr
    assert sorted(error_lines(started.stderr, "worker")) == sorted(lines), started.stderr


def test_an_unknown_setting_is_a_warning_naming_the_one_meant(tmp_path):
    """A typo is named, with the setting it is closest to; the command goes on."""
    result = commands.run("settings", env={"FARM_BUCKETSIZE": "32"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ("farm settings: warning: FARM_BUCKETSIZE is not a farm setting "
                                     "(did you mean FARM_BUCKET_SIZE?)")


def write_settings(tmp_path, text: str):
    path = tmp_path / "farm.toml"
    path.write_text(text)
    return {"FARM_SETTINGS": str(path)}


def test_a_settings_file_sets_what_the_environment_does_not(farm, make_document, write_scene, tmp_path):
    """The client renders with the file's bucket size and broker; FARM_BUCKET_SIZE wins over it."""
    scene_path = write_scene(make_document(width=64, height=64, spp=2))
    env = write_settings(tmp_path, f'bucket_size = 16\nbroker_url = "{farm.broker_url}"\nbucket_order = "top-down"\n')
    result = commands.run("submit", scene_path, "-o", tmp_path / "a.png", env=env)
    assert result.returncode == 0, result.stderr
    assert "64x64, 2 spp, 16 buckets of 16px" in result.stdout, result.stdout
    result = commands.run("submit", scene_path, "-o", tmp_path / "b.png", env={**env, "FARM_BUCKET_SIZE": "32"})
    assert result.returncode == 0, result.stderr
    assert "64x64, 2 spp, 4 buckets of 32px" in result.stdout, result.stdout
    shown = commands.run("settings", env={**env, "FARM_BUCKET_SIZE": "32"}).stdout.splitlines()
    assert f"settings file: {tmp_path / 'farm.toml'}" in shown
    assert any(line.startswith("FARM_BUCKET_SIZE=32  [environment]") for line in shown), shown
    assert any(line.startswith(f"FARM_BUCKET_ORDER=top-down  [{tmp_path / 'farm.toml'}]") for line in shown), shown
    assert any(line.startswith("FARM_LEASE_TIMEOUT=10.0  [default]") for line in shown), shown


def test_farm_settings_hides_secrets(tmp_path):
    env = write_settings(tmp_path, 'broker_url = "redis://:hunter2@10.1.2.3:6379/0"\nsecret = "c0ffee"\n')
    result = commands.run("settings", env={**env, "FARM_SECRET": ""})
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and "c0ffee" not in result.stdout
    assert f"FARM_BROKER_URL=redis://:***@10.1.2.3:6379/0  [{tmp_path / 'farm.toml'}]" in result.stdout
    assert f"FARM_SECRET=(set)  [{tmp_path / 'farm.toml'}]" in result.stdout


@pytest.mark.parametrize("text, message", [
    ("bucket_size = \n", "farm.toml: Invalid value (at line 1, column 15)"),
    ("bucketsize = 16\n", "bucketsize in {file} is not a farm setting (did you mean bucket_size?)"),
    ("bucket_size = 16.5\n", "bucket_size = 16.5 in {file} is not a whole number"),
    ("lease_timeout = 1\n", "lease_timeout = 1 in {file} is below the least allowed, 4.0"),
    (None, "farm.toml: No such file or directory"),
], ids=["not TOML", "unknown key", "wrong type", "out of range", "missing"])
def test_a_bad_settings_file_is_one_line_for_the_client_and_the_worker(tmp_path, text, message):
    env = write_settings(tmp_path, text or "")
    if text is None:
        (tmp_path / "farm.toml").unlink()
    message = message.format(file=tmp_path / "farm.toml")
    result = commands.run("submit", CORNELL, "-o", tmp_path / "out.png", env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("submit: error: ") and message in result.stderr, result.stderr
    started = worker(env)
    assert started.returncode == 2 and "Traceback" not in started.stderr, started.stderr
    assert f"worker: error: " in started.stderr and message in started.stderr, started.stderr


def test_a_worker_takes_its_broker_and_secret_from_the_settings_file(redis_server, make_document, write_scene,
                                                                     tmp_path):
    """A worker with no FARM_* variable at all renders for a client that has them: the file
    holds its broker URL and its secret's file."""
    broker_url = redis_server.url
    secret_file = tmp_path / "secret"
    secret_file.write_text(os.environ["FARM_SECRET"])
    env = write_settings(tmp_path, f'broker_url = "{broker_url}"\nsecret_file = "{secret_file}"\n')
    bare = {name: value for name, value in os.environ.items() if not name.startswith("FARM_")}
    process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "farm", "worker", "--pool", "solo", "-Q", "farm",
                                "--hostname", "fromfile@%h", "--without-gossip", "--without-mingle"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**bare, "FARM_CACHE_DIR": os.environ["FARM_CACHE_DIR"], **env})
    try:
        scene_path = write_scene(make_document(width=32, height=32, spp=2))
        result = commands.run("submit", scene_path, "-o", tmp_path / "out.png", "--broker", broker_url,
                              timeout=180)
        assert result.returncode == 0, result.stderr
        assert "fromfile@" in result.stdout, result.stdout
    finally:
        process.terminate()
        process.communicate(timeout=60)
