"""The registry on s3:// for real: tensorflow-io's S3 filesystem against moto's S3 server.

The same protocol as `test_registry.py`'s in-place mode (claims, files,
`saved_model.pb` last, the manifest last of all), here through the S3 API:
push, concurrent pushes, a push killed midway, verify, damage, rollback,
labels and retention, and the CLI's exit status after using S3 (which
tensorflow-io 0.37.1 would turn into 134, tensorflow/io#2039). Every S3
operation runs in a subprocess (see tests/s3_server.py); the test process
reads the bucket with boto3 only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3_server import S3Server, s3_server

REPO = Path(__file__).resolve().parent.parent
MODEL = "taxi"
SAVED_MODEL_FILE = "saved_model.pb"
MANIFEST_FILE = "manifest.json"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small real SavedModel, written in a subprocess (no TensorFlow in the test process)."""
    path = tmp_path_factory.mktemp("model") / "saved"
    script = textwrap.dedent(
        """
        import os, sys
        import tensorflow as tf

        class Scale(tf.Module):
            def __init__(self):
                super().__init__()
                self.w = tf.Variable(tf.random.uniform([256, 256], seed=1))

            @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
            def __call__(self, x):
                return x * tf.reduce_sum(self.w)

        tf.saved_model.save(Scale(), sys.argv[1])
        os.makedirs(os.path.join(sys.argv[1], "assets"), exist_ok=True)
        with open(os.path.join(sys.argv[1], "assets", "vocab.txt"), "w") as f:
            f.write("a\\nb\\n")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return str(path)


def _env(s3: S3Server | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return {**env, **(s3.env if s3 else {})}


def _uri(s3: S3Server, name: str) -> str:
    return f"s3://{s3.bucket}/{name}"


# Runs a Registry call in a subprocess that ends as our entry points do.
_REGISTRY = textwrap.dedent(
    """
    import json, os, sys, time
    from components.process import run_and_exit
    from components.registry.store import Registry

    def main():
        uri, action, arg = sys.argv[1], sys.argv[2], sys.argv[3]
        registry = Registry(uri, "taxi")
        if action == "publish":
            start = os.environ.get("START_FILE")
            while start and not os.path.exists(start):
                time.sleep(0.005)
            print(json.dumps(registry.publish(arg, {"pusher": os.getpid()}).number))
        elif action == "publish-killed":
            from components import storage
            copy = storage.copy_file
            done = [0]
            def copy_then_die(source, target, *rest):
                if done[0] == int(os.environ["KILL_AFTER"]):
                    os.kill(os.getpid(), 9)
                copy(source, target, *rest)
                done[0] += 1
            storage.copy_file = copy_then_die
            registry.publish(arg, {})
        elif action == "prune":
            print(json.dumps(registry.prune(int(arg))))
        return 0

    run_and_exit(main)
    """
)


def _registry(s3: S3Server, uri: str, action: str, arg: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _REGISTRY, uri, action, arg],
        env={**_env(s3), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _cli(s3: S3Server, uri: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *argv, "--set", f"registry.uri={uri}"],
        cwd=REPO,
        env=_env(s3),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_push_lands_as_a_complete_verified_version_without_folder_objects(s3, saved_model):
    uri = _uri(s3, "push")
    assert _registry(s3, uri, "publish", saved_model) == "1"
    keys = s3.keys("push/taxi/1/")
    assert f"push/taxi/1/{SAVED_MODEL_FILE}" in keys and f"push/taxi/1/{MANIFEST_FILE}" in keys
    assert "push/taxi/1/assets/vocab.txt" in keys
    # No `dir/` placeholder objects: they would list a version before its files.
    assert not [k for k in s3.keys("push/") if k.endswith("/")]
    listed = _cli(s3, uri, "registry", "list", "-o", "json")
    # Exit 0, not tensorflow-io's 134 at teardown.
    assert listed.returncode == 0, listed.stderr
    [version] = json.loads(listed.stdout)["versions"]
    assert (version["version"], version["status"], version["problems"]) == (1, "ok", [])
    verified = _cli(s3, uri, "registry", "verify", "1")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("version 1: ok (")


def test_concurrent_pushes_get_distinct_complete_versions(s3, saved_model, tmp_path):
    uri = _uri(s3, "concurrent")
    start = tmp_path / "go"
    pushers = [
        subprocess.Popen(
            [sys.executable, "-c", _REGISTRY, uri, "publish", saved_model],
            env={**_env(s3), "START_FILE": str(start)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    start.touch()
    numbers = []
    for pusher in pushers:
        out, err = pusher.communicate(timeout=300)
        assert pusher.returncode == 0, err
        numbers.append(int(out.strip()))
    # Distinct numbers; on a tie the losers' claims stay and push the next
    # number past theirs, so the numbers need not be 1, 2, 3.
    assert len(set(numbers)) == 3
    listed = json.loads(_cli(s3, uri, "registry", "list", "-o", "json").stdout)
    ok = [v["version"] for v in listed["versions"] if v["status"] == "ok"]
    assert ok == sorted(numbers)
    assert _cli(s3, uri, "registry", "verify", "--all").returncode == 0


def test_a_push_killed_midway_leaves_nothing_tf_serving_would_load(s3, saved_model):
    uri = _uri(s3, "killed")
    assert _registry(s3, uri, "publish", saved_model) == "1"
    killed = subprocess.run(
        [sys.executable, "-c", _REGISTRY, uri, "publish-killed", saved_model],
        env={**_env(s3), "KILL_AFTER": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL
    partial = s3.keys("killed/taxi/2/")
    assert partial, "the killed push copied two files first"
    # saved_model.pb goes last: without it TF Serving does not load the folder.
    assert f"killed/taxi/2/{SAVED_MODEL_FILE}" not in partial
    assert f"killed/taxi/2/{MANIFEST_FILE}" not in partial
    listed = json.loads(_cli(s3, uri, "registry", "list", "-o", "json").stdout)["versions"]
    assert [(v["version"], v["status"]) for v in listed] == [(1, "ok"), (2, "incomplete")]
    # The killed push's claim keeps 2 from being handed out again.
    assert _registry(s3, uri, "publish", saved_model) == "3"
    assert _cli(s3, uri, "registry", "verify", "3").returncode == 0


def test_damage_is_named_rollback_skips_it_and_retention_keeps_labelled(s3, saved_model):
    uri = _uri(s3, "ops")
    for expected in ("1", "2", "3"):
        assert _registry(s3, uri, "publish", saved_model) == expected
    s3.client().delete_object(Bucket=s3.bucket, Key="ops/taxi/2/assets/vocab.txt")
    verified = _cli(s3, uri, "registry", "verify", "2")
    assert verified.returncode == 1
    assert "assets/vocab.txt" in verified.stdout and "FAILED" in verified.stdout
    # Rollback from 3: version 2 fails verify and is skipped by name; 1 is
    # republished as the newest version, 4.
    rolled = _cli(s3, uri, "registry", "rollback", "--reason", "test")
    assert rolled.returncode == 0, rolled.stderr
    assert "skipping version 2" in rolled.stdout
    assert "rolled back: version 1 republished as version 4" in rolled.stdout
    assert _cli(s3, uri, "registry", "label", "stable", "1").returncode == 0
    labels = s3.client().get_object(Bucket=s3.bucket, Key="ops/taxi/labels.json")
    assert json.loads(labels["Body"].read()) == {"stable": 1}
    # Keep the newest 2 (3 and 4) and the labelled 1: only 2 goes.
    assert json.loads(_registry(s3, uri, "prune", "2")) == [2]
    listed = json.loads(_cli(s3, uri, "registry", "list", "-o", "json").stdout)["versions"]
    assert [(v["version"], v["labels"]) for v in listed] == [(1, ["stable"]), (3, []), (4, [])]
    assert not s3.keys("ops/taxi/2/")
    shown = json.loads(_cli(s3, uri, "registry", "show", "4", "-o", "json").stdout)
    assert shown["manifest"]["republished_from"] == 1
