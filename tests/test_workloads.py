"""Your data, your model: init, run and compile for workloads other than the taxi default.

For a multiclass table (the Palmer penguins: three species, string and
numeric columns, NA for missing numbers) and a text set (the 100 labelled
IMDB reviews in the tfx wheel), each from its raw CSV:
- `init` writes a config and a curated schema;
- `run --config` blesses and pushes a model, with manifest and warmup;
- both serving signatures agree on raw rows typed as `predict` types them;
- the served graph takes raw strings (text) and class names come out beside
  the probabilities (multiclass);
- the exported graph holds only ops core TensorFlow registers, so the stock
  tensorflow/serving image loads it;
- `compile --config` produces a pipeline the KFP launcher emulation runs to
  a pushed model.
Then the bad inputs: each fails with one line naming the problem, and
nothing is pushed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from components.contracts import (
    CLASSES,
    LABEL_KEY,
    PROBABILITIES,
    PROBABILITY,
    SERVING_DEFAULT,
    SERVING_RAW,
    TRANSFORM_FEATURES,
    UNSEEN_CLASS,
)
from components.registry.store import Registry
from pipeline import definition
from pipeline.__main__ import main
from pipeline.config import PipelineConfig, load_config
from pipeline.serving.columns import columns_for
from pipeline.serving.rows import read_rows, to_example, to_instance
from tests.conftest import IMDB_TXT, PENGUINS_CSV, store_args

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRAIN_STEPS = "300"


def _call(argv: list[str]) -> tuple[int, str, str]:
    """Runs the CLI in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _init(root: Path, data: Path, label: str, name: str) -> Path:
    output = root / "config" / "pipeline.yaml"
    argv = ["init", "--data", str(data), "--label", label, "--output", str(output), "--name", name]
    code, out, err = _call(argv)
    assert code == 0, err
    assert str(output) in out and f"--config {output}" in out
    return output


def _run(config_file: Path, root: Path, *extra: str) -> str:
    argv = ["run", "--config", str(config_file), *store_args(root)]
    code, out, err = _call([*argv, "--set", f"trainer.train_steps={TRAIN_STEPS}", *extra])
    assert code == 0, err
    return out


def _config(config_file: Path, root: Path) -> PipelineConfig:
    return load_config(config_file, [a for a in store_args(root) if a != "--set"])


def _only_version(config: PipelineConfig) -> str:
    registry = Registry(config.registry.uri, config.registry.model_name)
    (version,) = registry.complete_versions()
    assert registry.verify(version.number) == []
    return version.path


def _unseen_rows_csv(source: Path, target: Path, rows: int) -> Path:
    """A CSV of `rows` rows of `source`, as a client would send them."""
    with open(source, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        kept = [r for _, r in zip(range(rows), reader, strict=False)]
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(kept)
    return target


def _both_signatures(model, config: PipelineConfig, csv_file: Path):  # type: ignore[no-untyped-def]
    """Raw CSV rows through serving_default (tf.Examples) and serving_raw (tensors)."""
    columns = columns_for(config)
    rows = read_rows(csv_file, columns)
    examples = tf.constant([to_example(r, columns) for r in rows])
    from_examples = model.signatures[SERVING_DEFAULT](examples=examples)
    instances = [to_instance(r, columns) for r in rows]
    dtypes = {"float": tf.float32, "int": tf.int64, "string": tf.string}
    raw = {c.name: tf.constant([i[c.name] for i in instances], dtypes[c.dtype]) for c in columns}
    from_raw = model.signatures[SERVING_RAW](**raw)
    return from_examples, from_raw


def _core_ops_only(saved_model_dir: str) -> None:
    """Every op in the graph is one a bare TensorFlow (no tensorflow-text, no TFX) registers."""
    script = (
        "import sys, tensorflow as tf\n"
        "from tensorflow.core.protobuf import saved_model_pb2\n"
        "from tensorflow.python.framework import op_def_registry\n"
        "sm = saved_model_pb2.SavedModel()\n"
        "sm.ParseFromString(open(sys.argv[1] + '/saved_model.pb', 'rb').read())\n"
        "ops = set()\n"
        "for mg in sm.meta_graphs:\n"
        "    ops |= {n.op for n in mg.graph_def.node}\n"
        "    for f in mg.graph_def.library.function:\n"
        "        ops |= {n.op for n in f.node_def}\n"
        "unknown = sorted(o for o in ops if op_def_registry.get(o) is None)\n"
        "print(len(ops), unknown)\n"
        "sys.exit(1 if unknown else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, saved_model_dir],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, (
        f"ops core TensorFlow does not register: {done.stdout}{done.stderr}"
    )
    count = int(done.stdout.split()[0])
    assert count > 20, done.stdout  # the graph was really read


# -- multiclass: the Palmer penguins ----------------------------------------------------------


def _workload_run(
    tmp_path_factory: pytest.TempPathFactory, source: Path, label: str, name: str
) -> tuple[Path, PipelineConfig, str]:
    """A folder holding `source` as its one CSV file, `init` on it, then `run`."""
    root = tmp_path_factory.mktemp(name)
    data = root / "data"
    data.mkdir()
    shutil.copy(source, data / f"{name}.csv")
    config_file = _init(root, data, label, name)
    out = _run(config_file, root)
    return config_file, _config(config_file, root), out


@pytest.fixture(scope="module")
def penguins_run(tmp_path_factory: pytest.TempPathFactory):
    return _workload_run(tmp_path_factory, PENGUINS_CSV, "species", "penguins")


def test_init_config_for_penguins_is_multiclass_with_numbers_written_as_text(penguins_run):
    config_file, config, _ = penguins_run
    assert config.model.task == "multiclass" and config.model.label.column == "species"
    features = config.model.features
    assert features["island"].kind == "categorical"
    assert features["bill_length_mm"].kind == "numeric"  # NA for missing, parsed in the graph
    assert config.evaluator.metric == "accuracy"
    assert Path(config.data.schema_file).parent == config_file.parent


def test_penguins_run_is_blessed_and_pushed_with_per_class_recall(penguins_run):
    _, config, out = penguins_run
    assert "BLESSED" in out and "NOT BLESSED" not in out
    metrics = re.search(r"^eval metrics \(species, \d+ eval examples\): accuracy (\S+)$", out, re.M)
    assert metrics and float(metrics.group(1)) >= 0.9, out
    recall = re.search(r"^recall by class: (.+)$", out, re.M)
    assert recall, out
    for species in ("Adelie", "Gentoo", "Chinstrap"):
        assert re.search(rf"{species} (0\.\d\d|1\.00)", recall.group(1)), recall.group(1)
    path = _only_version(config)
    manifest = json.loads((Path(path) / "manifest.json").read_text())
    assert manifest["evaluation"]["thresholds"]["metric"] == "accuracy"
    assert manifest["evaluation"]["metrics"]["accuracy"] >= config.evaluator.min_value
    assert manifest["warmup_requests"] == config.registry.warmup_requests


def _report(out: str) -> str:
    found = re.search(r"^report: (\S+\.html)$", out, re.M)
    assert found, out
    return Path(found.group(1)).read_text()


def test_penguins_report_shows_recall_by_class_and_the_accuracy_gate(penguins_run):
    _, _, out = penguins_run
    page = _report(out)
    assert "Recall by class" in page and "Gentoo" in page
    assert "<b>accuracy</b> (gated)" in page
    assert "bill_length_mm" in page


def test_penguins_signatures_agree_and_name_the_classes(penguins_run, tmp_path):
    _, config, _ = penguins_run
    model = tf.saved_model.load(_only_version(config))
    rows = _unseen_rows_csv(PENGUINS_CSV, tmp_path / "rows.csv", 60)
    from_examples, from_raw = _both_signatures(model, config, rows)
    probabilities = from_examples[PROBABILITIES].numpy()
    assert probabilities.shape == (60, 4)  # three species and the unseen-class bucket
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probabilities, from_raw[PROBABILITIES].numpy(), atol=1e-6)
    classes = from_examples[CLASSES].numpy()
    assert [c.decode() for c in classes[0]][-1] == UNSEEN_CLASS
    assert {c.decode() for c in classes[0]} == {"Adelie", "Gentoo", "Chinstrap", UNSEEN_CLASS}
    assert probabilities[:, -1].max() < 0.05  # no training row is of an unseen class
    # The model learned: the top class is the species of most rows.
    with open(rows, newline="") as f:
        truth = [r["species"] for r in csv.DictReader(f)]
    predicted = [classes[i][probabilities[i].argmax()].decode() for i in range(60)]
    assert np.mean([p == t for p, t in zip(predicted, truth, strict=True)]) > 0.8


def test_penguins_graph_uses_core_ops_only(penguins_run):
    _, config, _ = penguins_run
    _core_ops_only(_only_version(config))


def _replay_warmup(config: PipelineConfig) -> None:
    """Every warmup request runs on the pushed model (TF Serving refuses a version whose fail)."""
    from components.registry import warmup

    path = _only_version(config)
    model = tf.saved_model.load(path)
    logs = warmup.read(os.path.join(path, warmup.WARMUP_FILE))
    # Two requests per eval row at most: the 24 IMDB eval reviews give 48.
    manifest = json.loads((Path(path) / "manifest.json").read_text())
    assert 0 < len(logs) == manifest["warmup_requests"] <= config.registry.warmup_requests
    signatures = set()
    for log in logs:
        request = log.predict_log.request
        signatures.add(request.model_spec.signature_name)
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = model.signatures[request.model_spec.signature_name](**inputs)
        assert outputs
    assert signatures == {SERVING_DEFAULT, SERVING_RAW}


def test_penguins_warmup_requests_run_on_the_pushed_model(penguins_run):
    _replay_warmup(penguins_run[1])


def test_penguins_lineage_shows_the_gated_metric(penguins_run):
    _, config, _ = penguins_run
    store = ["--set", f"metadata.sqlite_path={config.metadata.sqlite_path}"]
    registry = ["--set", f"registry.uri={config.registry.uri}"]
    argv = ["lineage", "model", "latest", "--config", str(penguins_run[0]), *store, *registry]
    code, out, err = _call(argv)
    assert code == 0, err
    shown = re.search(r"metrics: accuracy (\d\.\d{4})", out)
    assert shown and float(shown.group(1)) >= 0.9, out
    assert "(metric accuracy, min_value" in out


# -- text: the IMDB reviews ------------------------------------------------------------------


@pytest.fixture(scope="module")
def reviews_run(tmp_path_factory: pytest.TempPathFactory):
    # The IMDB file is CSV under a .txt name; ExampleGen reads *.csv.
    return _workload_run(tmp_path_factory, IMDB_TXT, "label", "reviews")


def test_init_config_for_reviews_is_binary_text(reviews_run):
    _, config, _ = reviews_run
    assert config.model.task == "binary" and config.model.label.positive == "1"
    assert config.model.features["text"].kind == "text"


def test_reviews_run_is_blessed_and_pushed(reviews_run):
    _, config, out = reviews_run
    assert "BLESSED" in out and "NOT BLESSED" not in out
    _only_version(config)
    page = _report(out)
    assert ">text<" in page  # the review column's string statistics
    assert "<b>auc</b> (gated)" in page


def test_raw_text_in_gives_the_model_on_transformed_features(reviews_run, tmp_path):
    """No tokenizer outside the graph: raw strings in, the same answer as the model itself."""
    _, config, _ = reviews_run
    path = _only_version(config)
    model = tf.saved_model.load(path)
    keras_model = tf.keras.models.load_model(path)
    rows = _unseen_rows_csv(IMDB_TXT, tmp_path / "rows.csv", 12)
    from_examples, from_raw = _both_signatures(model, config, rows)
    served = from_raw[PROBABILITY].numpy()
    np.testing.assert_allclose(served, from_examples[PROBABILITY].numpy(), atol=1e-6)
    with open(rows, newline="") as f:
        labelled = [(r["text"], int(r["label"])) for r in csv.DictReader(f)]
    # transform_features, as TFMA calls it: the raw columns, the label's included.
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode()])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[y])),
                }
            )
        ).SerializeToString()
        for t, y in labelled
    ]
    transformed = model.signatures[TRANSFORM_FEATURES](examples=tf.constant(examples))
    assert transformed[LABEL_KEY].numpy().tolist() == [y for _, y in labelled]
    token_ids = transformed["text_xf"]
    assert token_ids.shape[1] == config.model.features["text"].token_cap
    direct = keras_model({"text_xf": token_ids}).numpy()
    np.testing.assert_allclose(served, direct, atol=1e-6)


def test_reviews_graph_uses_core_ops_only(reviews_run):
    _, config, _ = reviews_run
    _core_ops_only(_only_version(config))


def test_reviews_warmup_requests_run_on_the_pushed_model(reviews_run):
    _replay_warmup(reviews_run[1])


# -- compiled for Kubeflow, run by the launcher emulation ------------------------------------


@pytest.mark.parametrize("workload", ["penguins_run", "reviews_run"])
def test_the_compiled_pipeline_runs_to_a_pushed_model(workload, request, tmp_path):
    config_file, config, _ = request.getfixturevalue(workload)
    output = tmp_path / "pipeline.yaml"
    code, _, err = _call(
        [
            "compile",
            "--config",
            str(config_file),
            "--image",
            "registry.example/mlops:emulated",
            "--output",
            str(output),
            *store_args(tmp_path),
        ]
    )
    assert code == 0, err
    # What a user runs before uploading the file: `run --compiled`, as KFP would.
    code, out, err = _call(
        [
            "run",
            "--compiled",
            str(output),
            "--run-id",
            "run-1",
            "--param",
            f"data_root={config.data.root}",
            "--param",
            f"train_steps={TRAIN_STEPS}",
            "--param",
            "eval_steps=5",
            "--param",
            "min_value=0.5",  # a float runtime parameter, set per run
            "-o",
            "json",
            *store_args(tmp_path),
        ]
    )
    assert code == 0, err
    result = json.loads(out)
    tasks = {t["name"]: t for t in result["tasks"]}
    assert result["run_id"] == "run-1" and set(tasks) == set(definition.NODE_IDS)
    assert tasks[definition.EVALUATOR]["parameters"]["min_value"] == 0.5
    assert tasks[definition.TRAINER]["parameters"]["train_steps"] == int(TRAIN_STEPS)
    assert len([line for line in err.splitlines() if line.startswith("[")]) == len(tasks)
    destination = result["pushed"]
    assert Path(destination).parent == tmp_path / "registry" / config.registry.model_name
    assert SERVING_RAW in tf.saved_model.load(destination).signatures


# -- bad input: one line naming the problem, nothing pushed ----------------------------------


def _fails(config_file: Path, root: Path, *overrides: str) -> str:
    code, _, err = _call(["run", "--config", str(config_file), *store_args(root), *overrides])
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith(("error:", "FAILED"))]
    assert len(lines) == 1, err
    assert not (root / "registry").exists() or not any((root / "registry").rglob("manifest.json"))
    return lines[0]


def test_a_feature_that_is_not_in_the_data_is_named(penguins_run, tmp_path):
    config_file, _, _ = penguins_run
    line = _fails(config_file, tmp_path, "--set", "model.features.beak_colour={kind: categorical}")
    assert "model.features.beak_colour" in line and "not in the data" in line


def test_a_model_package_that_cannot_be_imported_is_named(penguins_run, tmp_path):
    config_file, _, _ = penguins_run
    line = _fails(config_file, tmp_path, "--set", "model.package=team.models.penguins")
    assert "model.package=team.models.penguins: cannot import it" in line


def test_a_column_of_text_in_one_file_and_numbers_in_another_is_named(reviews_run, tmp_path):
    config_file, _, _ = reviews_run
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(IMDB_TXT, data / "a.csv")
    (data / "b.csv").write_text("label,text\n" + "".join(f"{i % 2},{i}\n" for i in range(30)))
    line = _fails(config_file, tmp_path, "--set", f"data.root={data}")
    assert "column 'text'" in line and "b.csv" in line and "a.csv" in line


def test_a_label_with_one_class_in_the_training_split_stops_at_the_gate(penguins_run, tmp_path):
    config_file, _, _ = penguins_run
    data = tmp_path / "data"
    data.mkdir()
    with open(PENGUINS_CSV, newline="") as f:
        reader = csv.DictReader(f)
        adelie = [r for r in reader if r["species"] == "Adelie"]
        header = reader.fieldnames or []
    with open(data / "penguins.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(adelie)
    line = _fails(config_file, tmp_path, "--set", f"data.root={data}")
    assert line.startswith("FAILED at anomalies_gate")
    assert "label 'species' has fewer than two classes in the train split" in line
    trainer_outputs = tmp_path / "pipeline_root" / "trainer"
    assert not trainer_outputs.exists(), "nothing may be trained after a failed gate"


def test_the_written_config_is_plain_yaml_a_person_can_edit(penguins_run):
    config_file, _, _ = penguins_run
    text = config_file.read_text()
    assert text.startswith("# yaml-language-server: $schema=file:///")
    assert text.split("\n", 1)[1].startswith("# Written by `python -m pipeline init`")
    # Each decision carries its reason, where a person would ask why.
    assert re.search(r"bill_length_mm: \{kind: numeric, fill: [\d.]+\}\s+# numbers, NA", text)
    assert re.search(r"task: multiclass\s+# 3 classes: Adelie 152", text)
    edited = text.replace("min_value: 0.72", "min_value: 0.9")
    assert edited != text
    config_file.with_name("edited.yaml").write_text(edited)
    assert load_config(config_file.with_name("edited.yaml")).evaluator.min_value == 0.9


# -- a team's own model package ---------------------------------------------------------------


def test_a_custom_model_package_runs_the_whole_pipeline(penguins_run, tmp_path):
    """tests/custom_model implements the protocol (docs/model_packages.md) with its own code."""
    config_file, _, _ = penguins_run
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    tree = yaml.safe_load(config_file.read_text())
    tree["model"]["package"] = "tests.custom_model"
    tree["model"]["features"] = {n: tree["model"]["features"][n] for n in numeric}
    custom = tmp_path / "custom.yaml"
    custom.write_text(yaml.safe_dump(tree))
    out = _run(custom, tmp_path, "--set", "trainer.learning_rate=0.05")
    assert "BLESSED" in out and "NOT BLESSED" not in out
    config = _config(custom, tmp_path)
    model = tf.saved_model.load(_only_version(config))
    rows = _unseen_rows_csv(PENGUINS_CSV, tmp_path / "rows.csv", 20)
    from_examples, from_raw = _both_signatures(model, config, rows)
    np.testing.assert_allclose(
        from_examples[PROBABILITIES].numpy(), from_raw[PROBABILITIES].numpy(), atol=1e-6
    )
