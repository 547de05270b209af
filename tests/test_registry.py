"""The registry bucket: atomic versioned pushes, manifests, verify, retention, labels, rollback.

Both publish modes run on the local filesystem: `atomic_rename=True` (what
local paths use) and `atomic_rename=False` (the in-place, manifest-last
protocol used for gs:// and s3://; those stores are not reachable here).
Interrupted and concurrent pushes run in real subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import tensorflow as tf

from components import storage
from components.registry import manifest, model_config
from components.registry.store import (
    CLAIMS_DIR,
    SAVED_MODEL_FILE,
    STAGING_PREFIX,
    STALE_AFTER_SECONDS,
    Registry,
    RegistryError,
)
from pipeline.cli import main
from tests.conftest import cli_in_fresh_process

REPO = Path(__file__).resolve().parent.parent
MODES = pytest.mark.parametrize("atomic", [True, False], ids=["rename", "in-place"])


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small real SavedModel, with a few MB of variables so a copy takes a while."""

    class Scale(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.random.uniform([512, 1024], seed=1))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x: tf.Tensor) -> tf.Tensor:
            return x * tf.reduce_sum(self.w)

    path = str(tmp_path_factory.mktemp("model") / "saved")
    tf.saved_model.save(Scale(), path)
    os.makedirs(os.path.join(path, "assets"), exist_ok=True)
    Path(path, "assets", "vocab.txt").write_text("a\nb\n")
    return path


def _numeric_dirs(model_dir: Path) -> list[str]:
    return (
        sorted(p.name for p in model_dir.iterdir() if p.name.isdigit())
        if model_dir.exists()
        else []
    )


@MODES
def test_publish_writes_a_complete_verified_version(saved_model, tmp_path, atomic):
    registry = Registry(str(tmp_path / "registry"), "taxi", atomic_rename=atomic)
    version = registry.publish(saved_model, {"pipeline": {"name": "taxi", "run_id": "r1"}})
    assert version.number == 1 and version.complete
    m = registry.manifest(1)
    assert m["model_name"] == "taxi" and m["version"] == 1 and m["pipeline"]["run_id"] == "r1"
    assert SAVED_MODEL_FILE in m["files"] and "assets/vocab.txt" in m["files"]
    assert any(rel.startswith("variables/") for rel in m["files"])
    assert manifest.MANIFEST_FILE not in m["files"]
    assert registry.verify(1) == []
    assert tf.saved_model.contains_saved_model(version.path)
    assert registry.publish(saved_model, {}).number == 2
    assert [v.number for v in registry.complete_versions()] == [1, 2]
    # Nothing but versions (and, in place, claims) is left beside them.
    leftovers = {p.name for p in (tmp_path / "registry" / "taxi").iterdir()} - {"1", "2"}
    assert leftovers == (set() if atomic else {CLAIMS_DIR})


def test_publish_refuses_a_folder_that_is_not_a_saved_model(tmp_path):
    registry = Registry(str(tmp_path / "registry"), "taxi")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match=r"no saved_model\.pb"):
        registry.publish(str(tmp_path / "empty"), {})
    assert registry.versions() == []


def test_extra_files_cannot_replace_model_files(saved_model, tmp_path):
    registry = Registry(str(tmp_path / "registry"), "taxi")
    extra = tmp_path / "x"
    extra.write_text("x")
    with pytest.raises(RegistryError, match="refusing to replace"):
        registry.publish(saved_model, {}, {"assets/vocab.txt": str(extra)})


@MODES
def test_verify_catches_a_flipped_byte_a_missing_and_an_extra_file(saved_model, tmp_path, atomic):
    registry = Registry(str(tmp_path / "registry"), "taxi", atomic_rename=atomic)
    version = registry.publish(saved_model, {})
    pb = Path(version.path, SAVED_MODEL_FILE)
    data = bytearray(pb.read_bytes())
    data[len(data) // 2] ^= 0x01
    pb.write_bytes(bytes(data))
    problems = registry.verify(1)
    assert len(problems) == 1 and problems[0].startswith("saved_model.pb: sha256")
    Path(version.path, "assets", "vocab.txt").unlink()
    Path(version.path, "stray.txt").write_text("?")
    problems = registry.verify(1)
    assert "assets/vocab.txt: missing" in problems
    assert "stray.txt: not in the manifest" in problems


def test_verify_cli_exits_1_on_a_tampered_version_and_0_on_an_intact_one(
    saved_model, tmp_path, capsys
):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    registry.publish(saved_model, {})
    registry.publish(saved_model, {})
    args = ["--set", f"registry.uri={uri}"]
    assert main(["registry", "verify", "--all", *args]) == 0
    assert "version 2: ok" in capsys.readouterr().out
    variables = sorted(Path(registry.version(1).path, "variables").iterdir())
    data = bytearray(variables[0].read_bytes())
    data[-1] ^= 0xFF
    variables[0].write_bytes(bytes(data))
    assert main(["registry", "verify", "1", *args]) == 1
    out = capsys.readouterr().out
    assert "version 1: FAILED" in out and f"variables/{variables[0].name}: sha256" in out
    assert main(["registry", "verify", *args]) == 0  # latest = 2, intact
    assert main(["registry", "verify", "9", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no version 9" in err and len(err.splitlines()) == 1


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from components import storage
    from components.registry.store import Registry

    uri, model, atomic, kill_after = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
    copy, write = storage.copy_file, storage.write_bytes
    done = 0

    def copy_then_die(source, target, *args):
        global done
        if done == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        copy(source, target, *args)
        done += 1

    def die_at_the_manifest(path, data):
        # kill_after -1: every file is in place, the manifest is next.
        if kill_after == -1 and path.endswith("manifest.json"):
            os.kill(os.getpid(), signal.SIGKILL)
        write(path, data)

    storage.copy_file = copy_then_die
    storage.write_bytes = die_at_the_manifest
    Registry(uri, model, atomic_rename=atomic).publish(sys.argv[5], {})
    """
)


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300
    )


@MODES
@pytest.mark.parametrize("kill_after", [1, 3, -1], ids=["1st-file", "3rd-file", "manifest"])
def test_a_push_killed_midway_leaves_no_loadable_partial_version(
    saved_model, tmp_path, atomic, kill_after
):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi", atomic_rename=atomic)
    registry.publish(saved_model, {})
    result = _run(_KILL_SCRIPT, uri, "taxi", "1" if atomic else "0", str(kill_after), saved_model)
    assert result.returncode == -9, result.stderr
    model_dir = tmp_path / "registry" / "taxi"
    for name in _numeric_dirs(model_dir):
        version = model_dir / name
        if name == "1":
            continue
        # Only the in-place protocol can leave a numeric folder: without a
        # manifest (so the registry calls it incomplete), and without
        # saved_model.pb (so TF Serving cannot load it) unless every model
        # file was already there.
        assert not atomic, f"rename mode left a numeric folder {name}"
        assert (version / SAVED_MODEL_FILE).exists() == (kill_after == -1)
        assert not (version / manifest.MANIFEST_FILE).exists()
    assert [v.number for v in registry.complete_versions()] == [1]
    if atomic:
        assert any(p.name.startswith(STAGING_PREFIX) for p in model_dir.iterdir())
    # In place, the killed push's claim keeps its number from being reused.
    expected = 2 if atomic else 3
    next_version = registry.publish(saved_model, {})
    assert next_version.number == expected and registry.verify(expected) == []
    assert [v.number for v in registry.complete_versions()] == [1, expected]


_PUSH_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from components.registry.store import Registry

    uri, atomic, start, source = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
    registry = Registry(uri, "taxi", atomic_rename=atomic)
    while not os.path.exists(start):
        time.sleep(0.005)
    print(registry.publish(source, {"pusher": os.getpid()}).number)
    """
)


@MODES
def test_concurrent_pushes_get_distinct_complete_versions(saved_model, tmp_path, atomic):
    uri = str(tmp_path / "registry")
    start = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    pushers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _PUSH_SCRIPT,
                uri,
                "1" if atomic else "0",
                str(start),
                saved_model,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    time.sleep(8)  # let every process import TensorFlow and wait at the barrier
    start.write_text("go")
    outputs = [p.communicate(timeout=300) for p in pushers]
    assert all(p.returncode == 0 for p in pushers), [err for _, err in outputs]
    numbers = sorted(int(out.strip().splitlines()[-1]) for out, _ in outputs)
    # Renames take 1, 2, 3. In place, claims that tied are abandoned, so the
    # numbers may skip: distinct and complete is the guarantee.
    if atomic:
        assert numbers == [1, 2, 3]
    assert len(set(numbers)) == 3
    registry = Registry(uri, "taxi", atomic_rename=atomic)
    assert [v.number for v in registry.complete_versions()] == numbers
    assert all(registry.verify(n) == [] for n in numbers)
    assert len({registry.manifest(n)["pusher"] for n in numbers}) == 3


def test_retention_keeps_the_newest_and_labelled_versions(saved_model, tmp_path):
    registry = Registry(str(tmp_path / "registry"), "taxi")
    for _ in range(6):
        registry.publish(saved_model, {})
    registry.set_label("stable", 2)
    assert registry.prune(3) == [1, 3]
    assert [v.number for v in registry.versions()] == [2, 4, 5, 6]
    assert registry.publish(saved_model, {}).number == 7  # numbers never go back
    with pytest.raises(RegistryError, match="at least 1"):
        registry.prune(0)


def test_in_place_retention_drops_claims_of_deleted_versions_but_the_highest(saved_model, tmp_path):
    registry = Registry(str(tmp_path / "registry"), "taxi", atomic_rename=False)
    for _ in range(4):
        registry.publish(saved_model, {})
    assert registry.prune(2) == [1, 2]
    claims = sorted(
        p.name.split(".")[0] for p in (tmp_path / "registry" / "taxi" / CLAIMS_DIR).iterdir()
    )
    assert claims == ["3", "4"]
    assert registry.publish(saved_model, {}).number == 5


def test_retention_removes_abandoned_leftovers_only_once_stale(saved_model, tmp_path):
    registry = Registry(str(tmp_path / "registry"), "taxi")
    registry.publish(saved_model, {})
    model_dir = tmp_path / "registry" / "taxi"
    (model_dir / "2" / "variables").mkdir(parents=True)
    (model_dir / "2" / "variables" / "part").write_text("half")
    (model_dir / f"{STAGING_PREFIX}dead").mkdir()
    (model_dir / f"{STAGING_PREFIX}dead" / "f").write_text("half")
    (model_dir / "3").mkdir()  # an upload that has not written a file yet
    assert registry.prune(1) == []  # fresh: maybe a push still running
    assert (model_dir / "2").exists()
    assert registry.prune(1, now=time.time() + STALE_AFTER_SECONDS + 60) == [2]
    # A folder without files has no age: never taken for abandoned.
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "3"]


def test_labels_and_references(saved_model, tmp_path):
    registry = Registry(str(tmp_path / "registry"), "taxi")
    for _ in range(3):
        registry.publish(saved_model, {})
    assert registry.set_label("stable", 1) == {"stable": 1}
    assert registry.set_label("canary", 3) == {"canary": 3, "stable": 1}
    assert registry.resolve("stable").number == 1
    assert registry.resolve("latest").number == 3
    assert registry.resolve("2").number == 2
    with pytest.raises(RegistryError, match="not a version number, 'latest' or a label"):
        registry.resolve("prod")
    with pytest.raises(RegistryError, match="lowercase"):
        registry.set_label("Stable!", 1)
    with pytest.raises(RegistryError, match=r"no version 9 .*versions: 1, 2, 3"):
        registry.set_label("stable", 9)
    (Path(registry.model_dir) / "4").mkdir()
    with pytest.raises(RegistryError, match="incomplete"):
        registry.set_label("stable", 4)
    assert registry.set_label("canary", None) == {"stable": 1}
    Path(registry.model_dir, "labels.json").write_text("[1]")
    with pytest.raises(RegistryError, match=r"labels\.json: expected an object"):
        registry.labels()


def test_rollback_republishes_an_older_version_as_the_newest(saved_model, tmp_path, capsys):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    registry.publish(saved_model, {"pipeline": {"name": "taxi", "run_id": "first"}})
    registry.publish(saved_model, {"pipeline": {"name": "taxi", "run_id": "second"}})
    assert main(["registry", "rollback", "--set", f"registry.uri={uri}"]) == 0
    assert "version 1 republished as version 3" in capsys.readouterr().out
    copy = registry.manifest(3)
    assert copy["republished_from"] == 1 and copy["pipeline"]["run_id"] == "first"
    assert copy["files"] == registry.manifest(1)["files"]
    assert registry.verify(3) == []
    # A tampered version is never republished.
    Path(registry.version(2).path, SAVED_MODEL_FILE).write_bytes(b"broken")
    assert main(["registry", "rollback", "--to", "2", "--set", f"registry.uri={uri}"]) == 2
    assert "version 2 fails verification" in capsys.readouterr().err
    assert [v.number for v in registry.versions()] == [1, 2, 3]


MODEL_CONFIG = """\
# Why this file looks the way it does.
model_config_list {
  config {
    name: "taxi"
    base_path: "/models/taxi"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 1 }
  }
}
"""


def _served(config_file: Path) -> tuple[list[int], dict[str, int]]:
    (model,) = model_config.parse(config_file.read_text()).model_config_list.config
    assert model.base_path == "/models/taxi"  # everything but the labels is kept
    return list(model.model_version_policy.specific.versions), dict(model.version_labels)


def test_labels_move_in_two_steps_and_roll_back_at_once(saved_model, tmp_path, capsys):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    for _ in range(3):
        registry.publish(saved_model, {})
    config_file = tmp_path / "models.config"
    config_file.write_text(MODEL_CONFIG)
    args = ["--set", f"registry.uri={uri}", "--model-config", str(config_file)]
    assert main(["registry", "label", "stable", "1", *args]) == 0
    assert _served(config_file) == ([1], {"stable": 1})
    capsys.readouterr()
    # Version 3 is not loaded: TF Serving would refuse the move, so the label
    # waits on 1 while 3 is added to the served versions.
    assert main(["registry", "label", "stable", "3", *args]) == 0
    assert "'stable' stays on version 1 for now" in capsys.readouterr().out
    assert _served(config_file) == ([1, 3], {"stable": 1})
    assert registry.labels() == {"stable": 3}
    # Another label's command never moves the pending one as a side effect.
    assert main(["registry", "label", "canary", "1", *args]) == 0
    assert "'stable' stays on version 1" in capsys.readouterr().out
    assert _served(config_file) == ([1, 3], {"canary": 1, "stable": 1})
    # The same move again (version 3 now loaded) takes the label there.
    assert main(["registry", "label", "stable", "3", *args]) == 0
    assert "stays on" not in capsys.readouterr().out
    assert _served(config_file) == ([1, 3], {"canary": 1, "stable": 3})
    # The previous version is still loaded, so the rollback moves the label
    # there (not to 2) and takes effect at once.
    assert main(["registry", "rollback", "--label", "stable", *args]) == 0
    out = capsys.readouterr().out
    assert "label 'stable' -> version 1" in out and "stays on" not in out
    assert _served(config_file) == ([1, 3], {"canary": 1, "stable": 1})
    assert registry.labels() == {"canary": 1, "stable": 1}
    assert main(["registry", "label", "canary", "latest", *args]) == 0
    assert _served(config_file) == ([1, 3], {"canary": 3, "stable": 1})
    assert [v.number for v in registry.versions()] == [1, 2, 3]  # nothing republished
    assert config_file.read_text().startswith("# Why this file looks the way it does.\n")
    # Retention keeps what the config serves, labelled or not.
    assert registry.served() == [1, 3]
    for _ in range(3):
        registry.publish(saved_model, {})
    assert registry.prune(1) == [2, 4, 5]
    assert [v.number for v in registry.versions()] == [1, 3, 6]


def test_a_bad_model_config_changes_nothing(saved_model, tmp_path, capsys):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    registry.publish(saved_model, {})
    config_file = tmp_path / "models.config"
    config_file.write_text(MODEL_CONFIG.replace('"taxi"', '"other"'))
    args = ["--set", f"registry.uri={uri}", "--model-config", str(config_file)]
    assert main(["registry", "label", "stable", "1", *args]) == 2
    assert "no model named 'taxi' (models: other)" in capsys.readouterr().err
    assert registry.labels() == {}


def test_rolling_back_twice_steps_further_back(saved_model, tmp_path, capsys):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    for _ in range(3):
        registry.publish(saved_model, {})
    args = ["--set", f"registry.uri={uri}"]
    assert main(["registry", "rollback", *args]) == 0
    assert "version 2 republished as version 4" in capsys.readouterr().out
    # Version 4 is a copy of 2: the next rollback goes to 1, not back to 3.
    assert main(["registry", "rollback", *args]) == 0
    assert "version 1 republished as version 5" in capsys.readouterr().out
    assert main(["registry", "rollback", *args]) == 2
    assert "no complete version older than 1" in capsys.readouterr().err


def test_model_config_errors_name_the_problem(tmp_path):
    with pytest.raises(model_config.ModelConfigError, match="not a TF Serving ModelServerConfig"):
        model_config.parse("model_config_list { config { nme: 'x' } }", "bad.config")
    path = tmp_path / "models.config"
    path.write_text(MODEL_CONFIG)
    with pytest.raises(
        model_config.ModelConfigError, match=r"no model named 'other' \(models: taxi\)"
    ):
        model_config.update_file(path, "other", {"stable": 1})
    model_config.update_file(path, "taxi", {})
    (model,) = model_config.parse(path.read_text()).model_config_list.config
    assert model.model_version_policy.latest.num_versions == 1 and not model.version_labels


def test_list_and_show(saved_model, tmp_path, capsys):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    registry.publish(
        saved_model,
        {"pipeline": {"name": "taxi", "run_id": "run-7"}, "evaluation": {"metrics": {"auc": 0.8}}},
    )
    registry.set_label("stable", 1)
    (Path(registry.model_dir) / "2").mkdir()
    args = ["--set", f"registry.uri={uri}"]
    assert main(["registry", "list", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    # The gated metric: a manifest without thresholds.metric is read as AUC's.
    assert lines[2].split()[:6] == ["1", "ok", "stable", "auc", "0.8000", lines[2].split()[5]]
    assert lines[2].split()[-1] == "run-7"
    assert lines[3].split() == ["2", "incomplete"]
    assert main(["registry", "show", "stable", *args]) == 0
    shown = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert shown["version"] == 1 and shown["files"].endswith("(--files to list them)")
    assert main(["registry", "show", "2", *args]) == 2
    assert "no manifest, the version is incomplete" in capsys.readouterr().err


def test_list_show_and_verify_as_json(saved_model, tmp_path, capsys):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    registry.publish(
        saved_model,
        {
            "pipeline": {"name": "taxi", "run_id": "run-7"},
            "evaluation": {"metrics": {"accuracy": 0.9}, "thresholds": {"metric": "accuracy"}},
        },
    )
    registry.publish(saved_model, {})
    registry.set_label("stable", 1)
    truncated = _truncate(registry, 2)
    args = ["--set", f"registry.uri={uri}", "-o", "json"]
    assert main(["registry", "list", *args]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["format"] == 1 and listed["model_dir"] == registry.model_dir
    first, second = listed["versions"]
    assert first == {
        "version": 1,
        "status": "ok",
        "labels": ["stable"],
        "metric": {"name": "accuracy", "value": 0.9},
        "created": registry.manifest(1)["created"],
        "run_id": "run-7",
        "republished_from": None,
        "problems": [],
    }
    assert second["status"] == "damaged" and second["problems"] == [truncated]
    assert main(["registry", "show", "stable", *args]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["path"] == registry.version(1).path and shown["manifest"]["version"] == 1
    assert main(["registry", "verify", "1", "2", *args]) == 1
    verified = json.loads(capsys.readouterr().out)["versions"]
    assert [(v["version"], v["ok"]) for v in verified] == [(1, True), (2, False)]
    assert verified[0]["files"] == len(registry.manifest(1)["files"]) and verified[1]["problems"]


def test_reading_a_local_registry_loads_no_tensorflow(saved_model, tmp_path):
    uri = str(tmp_path / "registry")
    Registry(uri, "taxi").publish(saved_model, {})
    for command in (["list"], ["show", "1"], ["verify", "--all"]):
        argv = ["registry", *command, "--set", f"registry.uri={uri}"]
        _, last, err = cli_in_fresh_process(*argv)
        assert last == "LOADED [] EXIT 0", (command, err)


# Damaged versions: truncated, missing or unreadable files in a published version.

VARIABLES_DATA = "variables/variables.data-00000-of-00001"


def _truncate(registry: Registry, number: int, rel: str = VARIABLES_DATA) -> str:
    """Cuts a file of version `number` to half its size; returns what verify will say of it."""
    path = Path(registry.version(number).path, rel)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return f"{rel}: size {len(data) // 2}, manifest says {len(data)}"


def test_list_names_damage_from_sizes_and_presence_without_hashing(
    saved_model, tmp_path, capsys, monkeypatch
):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    for _ in range(3):
        registry.publish(saved_model, {})
    truncated = _truncate(registry, 2)
    Path(registry.version(3).path, "assets", "vocab.txt").unlink()

    def no_hashing(path: str) -> tuple[str, int]:
        raise AssertionError(f"registry list hashed {path}")

    monkeypatch.setattr(storage, "sha256", no_hashing)
    assert main(["registry", "list", "--set", f"registry.uri={uri}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:2] == ["1", "ok"]
    assert lines[3].split()[:4] == ["2", "damaged:", "1", "problem"]
    assert lines[4].split()[:4] == ["3", "damaged:", "1", "problem"]
    assert lines[5].startswith("damage seen from file presence and sizes")
    assert lines[6:] == [f"  version 2: {truncated}", "  version 3: assets/vocab.txt: missing"]


def test_label_refuses_a_damaged_version_and_changes_nothing(saved_model, tmp_path, capsys):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    registry.publish(saved_model, {})
    registry.publish(saved_model, {})
    config_file = tmp_path / "models.config"
    config_file.write_text(MODEL_CONFIG)
    args = ["--set", f"registry.uri={uri}", "--model-config", str(config_file)]
    assert main(["registry", "label", "stable", "1", *args]) == 0
    labels_file = Path(registry.model_dir, "labels.json")
    before = labels_file.read_bytes(), config_file.read_bytes(), registry.served()
    truncated = _truncate(registry, 2)
    capsys.readouterr()
    assert main(["registry", "label", "canary", "2", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: version 2 fails verification, refusing to label it 'canary': {truncated}\n"
    )
    assert (labels_file.read_bytes(), config_file.read_bytes(), registry.served()) == before
    assert main(["registry", "label", "stable", "latest", *args]) == 2
    assert "version 2 fails verification" in capsys.readouterr().err
    assert registry.labels() == {"stable": 1}


def test_rollback_skips_damaged_versions_and_names_them(saved_model, tmp_path, capsys):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    for _ in range(3):
        registry.publish(saved_model, {})
    _truncate(registry, 3)  # the newest, the one being rolled back from
    truncated = _truncate(registry, 2)
    vocab = Path(registry.version(1).path, "assets", "vocab.txt")
    kept = vocab.read_bytes()
    vocab.unlink()
    args = ["--set", f"registry.uri={uri}"]
    assert main(["registry", "rollback", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"skipping version 2: {truncated}",
        "skipping version 1: assets/vocab.txt: missing",
    ]
    assert captured.err == (
        "error: every version to roll back to fails verification (2, 1); nothing was changed\n"
    )
    assert [v.number for v in registry.versions()] == [1, 2, 3]
    vocab.write_bytes(kept)
    assert main(["registry", "rollback", *args]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"skipping version 2: {truncated}",
        "rolled back: version 1 republished as version 4",
    ]
    assert registry.manifest(4)["republished_from"] == 1 and registry.verify(4) == []


def test_rollback_of_a_label_skips_damaged_versions(saved_model, tmp_path, capsys):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    for _ in range(3):
        registry.publish(saved_model, {})
    registry.set_label("stable", 3)
    truncated = _truncate(registry, 2)
    args = ["--set", f"registry.uri={uri}", "--label", "stable"]
    assert main(["registry", "rollback", "--to", "2", *args]) == 2
    assert "version 2 fails verification, refusing to label it 'stable'" in capsys.readouterr().err
    assert registry.labels() == {"stable": 3}
    assert main(["registry", "rollback", *args]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"skipping version 2: {truncated}",
        "rolled back: label 'stable' -> version 1",
    ]
    assert registry.labels() == {"stable": 1}


def test_rollback_skips_a_newest_version_with_a_corrupt_manifest(saved_model, tmp_path, capsys):
    uri = str(tmp_path / "registry")
    registry = Registry(uri, "taxi")
    for _ in range(3):
        registry.publish(saved_model, {})
    newest = Path(registry.version(3).path, manifest.MANIFEST_FILE)
    newest.write_text('{"format": 1, "files": {')
    assert main(["registry", "rollback", "--set", f"registry.uri={uri}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"skipping version 3: {newest}: not valid JSON: ")
    assert out[1:] == ["rolled back: version 2 republished as version 4"]
    assert registry.manifest(4)["republished_from"] == 2 and registry.verify(4) == []


def test_a_manifest_whose_files_are_not_an_object_is_named_not_a_traceback(saved_model, tmp_path):
    registry = Registry(str(tmp_path / "registry"), "taxi")
    version = registry.publish(saved_model, {})
    path = Path(version.path, manifest.MANIFEST_FILE)
    body = json.loads(path.read_text())
    path.write_text(json.dumps(dict(body, files=sorted(body["files"]))))
    (problem,) = registry.verify(1)
    assert problem == f"{path}: 'files' must be an object of path -> {{sha256, size}}"
    assert registry.check_sizes(1) == [problem]
