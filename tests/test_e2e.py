"""The whole pipeline, run locally for real on a sample of the taxi data.

Runs share one workspace and run in order: a first run that blesses and
pushes, an unchanged re-run served from cache, a clearly worse model that is
not blessed, and two runs on broken data that stop at the anomalies gate.
"""

from __future__ import annotations

import gc
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.contracts import PROBABILITY as OUTPUT_KEY
from components.contracts import SERVING_DEFAULT, SERVING_RAW
from components.mlmd import connection_config
from components.registry import warmup
from components.registry.store import Registry
from components.schema_io import parse_schema
from pipeline import definition
from pipeline.__main__ import main
from pipeline.config import PipelineConfig, load_config, to_dict
from pipeline.report import page as report_page
from pipeline.report import write_report
from pipeline.runners import local, memory
from tests import browser
from tests.conftest import (
    csv_columns,
    load_schema,
    read_csv_rows,
    to_instance,
    to_tf_example,
    write_csv,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLE_ROWS = 3000


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    rows = read_csv_rows()
    columns = csv_columns()
    write_csv(root / "data" / "good" / "data.csv", rows[:SAMPLE_ROWS], columns)

    write_csv(
        root / "data" / "missing_column" / "data.csv",
        rows[:SAMPLE_ROWS],
        [c for c in columns if c != "payment_type"],
    )
    drifted = [dict(r) for r in rows[:SAMPLE_ROWS]]
    for r in drifted[::50]:
        r["trip_miles"] = "n/a"
    write_csv(root / "data" / "type_drift" / "data.csv", drifted, columns)
    return root


def _config(workspace: Path, data: str = "good", *overrides: str) -> PipelineConfig:
    return load_config(
        None,
        [
            f"data.root={workspace / 'data' / data}",
            f"run.pipeline_root={workspace / 'pipeline_root'}",
            f"metadata.sqlite_path={workspace / 'metadata.sqlite'}",
            f"registry.uri={workspace / 'registry'}",
            "trainer.train_steps=300",
            "trainer.eval_steps=5",
            "trainer.batch_size=64",
            "evaluator.min_value=0.75",
            *overrides,
        ],
    )


def _store(config: PipelineConfig) -> metadata_store.MetadataStore:
    return metadata_store.MetadataStore(connection_config(to_dict(config)["metadata"]))


def _versions(config: PipelineConfig) -> list[str]:
    folder = config.serving_model_dir
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _executions(config: PipelineConfig, node_id: str) -> list[metadata_store_pb2.Execution]:
    store = _store(config)
    context = store.get_context_by_type_and_name("node", f"{config.run.pipeline_name}.{node_id}")
    return store.get_executions_by_context(context.id) if context else []


@pytest.fixture(scope="module")
def given_back() -> list[bool]:
    """One entry per time the first run gave memory back: were objects frozen then (the run's own
    freeze, which makes each collection walk only what the last component made)."""
    return []


@pytest.fixture(scope="module")
def first_run(workspace: Path, given_back: list[bool]):
    config = _config(workspace)
    original = memory.give_back

    def counted(**options: bool) -> None:
        given_back.append(gc.get_freeze_count() > 0)
        original(**options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory, "give_back", counted)
        return config, local.run(config)


def test_first_run_blesses_and_pushes(first_run):
    config, summary = first_run
    assert sorted(n.node_id for n in summary.nodes) == sorted(definition.NODE_IDS)
    assert summary.blessed is True, summary.reasons
    assert summary.metrics["auc"] >= 0.75
    assert summary.baseline_model_id is None
    assert any("judged on the value thresholds alone" in r for r in summary.reasons)
    assert summary.pushed_uri and summary.pushed_uri.startswith(config.serving_model_dir)


def test_memory_is_given_back_after_every_component(first_run, given_back):
    _, summary = first_run
    assert given_back == [True] * len(summary.nodes)
    assert len(summary.nodes) == len(definition.NODE_IDS)
    assert gc.get_freeze_count() == 0  # the run leaves the collector as it found it


def test_the_run_report_shows_this_run_and_loads_in_chromium(first_run, tmp_path):
    config, summary = first_run
    path = write_report(config, summary, str(tmp_path / "report.html"))
    loaded = browser.load(Path(path))
    assert loaded.console == []
    for key, _ in report_page.SECTIONS:
        assert f'id="{key}"' in loaded.dom
    assert "trip_miles" in loaded.dom and "auc by trip_start_hour" in loaded.dom
    assert loaded.dom.count('class="node"') == len(definition.NODE_IDS)
    assert f"Version <b>{Path(summary.pushed_uri).name}</b>" in loaded.dom
    assert "<polyline" in loaded.dom  # the Trainer's loss curve, from its TensorBoard events
    assert summary.run_id and summary.run_id in loaded.dom
    assert loaded.screenshot.startswith(b"\x89PNG")


def test_the_last_node_writes_the_same_page_as_an_html_artifact(first_run):
    # What Kubeflow shows in the run's page: drawn by the run_report node
    # from ML Metadata alone, every node but itself.
    config, summary = first_run
    store = metadata_store.MetadataStore(connection_config(to_dict(config.metadata)))
    node = next(n for n in summary.nodes if n.node_id == definition.RUN_REPORT)
    events = store.get_events_by_execution_ids([node.execution_id])
    (page,) = store.get_artifacts_by_id(
        [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
    )
    (page_type,) = store.get_artifact_types_by_id([page.type_id])
    assert page_type.name == "system.HTML"
    assert page.custom_properties["display_name"].string_value == "run report"
    html = Path(page.uri).read_text()
    for key, _ in report_page.SECTIONS:
        assert f'id="{key}"' in html
    assert html.count('class="node"') == len(definition.NODE_IDS) - 1
    assert summary.run_id in html and "auc by trip_start_hour" in html
    assert f"Version <b>{Path(summary.pushed_uri).name}</b>" in html


def test_every_component_has_a_completed_execution(first_run):
    config, _ = first_run
    for node_id in definition.NODE_IDS:
        states = [e.last_known_state for e in _executions(config, node_id)]
        assert metadata_store_pb2.Execution.COMPLETE in states, node_id


def test_registry_holds_a_numeric_version_with_a_complete_saved_model(first_run):
    config, summary = first_run
    versions = _versions(config)
    assert len(versions) == 1 and versions[0].isdigit(), versions
    version_dir = os.path.join(config.serving_model_dir, versions[0])
    assert os.path.normpath(summary.pushed_uri) == os.path.normpath(version_dir)
    assert tf.saved_model.contains_saved_model(version_dir)
    assert os.path.isdir(os.path.join(version_dir, "variables"))
    assert os.listdir(os.path.join(version_dir, "variables"))


def test_pushed_version_carries_its_manifest_and_warmup_and_verifies(first_run, capsys):
    config, summary = first_run
    registry = Registry(config.registry.uri, config.registry.model_name)
    (version,) = registry.complete_versions()
    assert os.path.normpath(version.path) == os.path.normpath(summary.pushed_uri)
    manifest = registry.manifest(version.number)
    assert manifest["model_name"] == "taxi" and manifest["version"] == version.number
    assert manifest["pipeline"]["name"] == config.run.pipeline_name
    assert manifest["pipeline"]["run_id"]
    assert manifest["source"]["data_root"] == config.data.root
    assert manifest["evaluation"]["metrics"]["auc"] == pytest.approx(summary.metrics["auc"])
    assert manifest["evaluation"]["thresholds"] == {
        "metric": "auc",
        "min_value": 0.75,
        "max_drop": 0.01,
    }
    # The ML Metadata ids are the real ones: each names the artifact at that URI.
    store = _store(config)
    ids = manifest["mlmd"]
    (model,) = store.get_artifacts_by_id([ids["model_id"]])
    assert model.uri == manifest["source"]["model_uri"]
    (examples,) = store.get_artifacts_by_id([ids["examples_id"]])
    assert examples.uri == manifest["source"]["examples_uri"]
    (blessing,) = store.get_artifacts_by_id([ids["blessing_id"]])
    assert blessing.custom_properties["blessed"].int_value == 1
    assert blessing.custom_properties["current_model_id"].int_value == ids["model_id"]
    logs = warmup.read(os.path.join(version.path, warmup.WARMUP_FILE))
    assert len(logs) == manifest["warmup_requests"] == config.registry.warmup_requests
    assert warmup.WARMUP_FILE in manifest["files"]
    # Checked before the push: its ops against TF Serving's; no stable label to compare with.
    assert manifest["contract"]["compared_with"] is None
    assert manifest["contract"]["signature_changes"] == []
    assert main(["registry", "verify", "--set", f"registry.uri={config.registry.uri}"]) == 0
    assert f"version {version.number}: ok" in capsys.readouterr().out


def test_pushed_model_serves_raw_csv_rows(first_run):
    config, _ = first_run
    version_dir = os.path.join(config.serving_model_dir, _versions(config)[0])
    model = tf.saved_model.load(version_dir)
    schema = load_schema()
    columns = list(config.model.features)
    unseen = [r for r in read_csv_rows()[SAMPLE_ROWS:] if all(r[c] for c in columns)][:50]
    examples = tf.constant([to_tf_example(r, schema, columns) for r in unseen])
    from_examples = model.signatures[SERVING_DEFAULT](examples=examples)[OUTPUT_KEY].numpy()
    instances = [to_instance(r, schema) for r in unseen]
    raw = {c: tf.constant(np.concatenate([i[c] for i in instances])) for c in columns}
    from_raw = model.signatures[SERVING_RAW](**raw)[OUTPUT_KEY].numpy()
    assert from_examples.shape == (50, 1)
    assert np.all((from_examples >= 0) & (from_examples <= 1))
    assert from_examples.std() > 0.01, "the model predicts a constant"
    np.testing.assert_allclose(from_examples, from_raw, atol=1e-6)


def test_unchanged_rerun_is_served_from_cache(first_run, workspace, capsys):
    config, summary = first_run
    versions_before = _versions(config)
    args = ["run"]
    for key, value in (
        ("data.root", config.data.root),
        ("run.pipeline_root", config.run.pipeline_root),
        ("metadata.sqlite_path", config.metadata.sqlite_path),
        ("registry.uri", config.registry.uri),
        ("trainer.train_steps", "300"),
        ("trainer.eval_steps", "5"),
        ("trainer.batch_size", "64"),
        ("evaluator.min_auc", "0.75"),  # the old name still works for the AUC gate
    ):
        args += ["--set", f"{key}={value}"]
    # -o json: the progress goes to stderr, stdout is one JSON object.
    assert main([*args, "-o", "json"]) == 0
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert len(progress) == len(definition.NODE_IDS)
    parsed = [re.match(r"^\[\s*\d+/\d+\] (\S+)\s+(\S+)\s+[\d.]+s$", line) for line in progress]
    assert all(parsed), progress
    assert {m.group(1) for m in parsed if m} == set(definition.NODE_IDS)
    assert {m.group(2) for m in parsed if m} == {"cached"}, progress
    result = json.loads(captured.out)
    assert result["format"] == 1 and result["status"] == "succeeded"
    assert [n["id"] for n in result["nodes"]] == [m.group(1) for m in parsed if m]
    assert {n["state"] for n in result["nodes"]} == {"CACHED"}
    assert result["blessed"] is True and result["pushed"] == summary.pushed_uri
    assert result["pushed_by_earlier_run"] is True
    assert result["report"] == result["log_file"].removesuffix(".log") + ".html"
    # This run's Pusher was served from cache: the version is the first run's.
    assert f"Version <b>{Path(summary.pushed_uri).name}</b>" in Path(result["report"]).read_text()
    assert result["metrics"]["auc"] == pytest.approx(summary.metrics["auc"])
    assert result["gated_metric"] == "auc" and result["task"] == "binary"
    assert _versions(config) == versions_before


def test_clearly_worse_model_is_not_blessed_and_not_pushed(first_run, workspace):
    config, first = first_run
    versions_before = _versions(config)
    # One training step; the AUC floor is lowered so that only the change
    # threshold against the baseline (the first run's model) can reject it.
    worse = _config(workspace, "good", "trainer.train_steps=1", "evaluator.min_value=0.0")
    summary = local.run(worse)
    assert summary.blessed is False
    assert summary.baseline_model_id is not None
    assert summary.metrics["auc"] < summary.baseline_metrics["auc"] - 0.01
    assert any("against the baseline" in r for r in summary.reasons), summary.reasons
    assert summary.pushed_uri is None
    assert _versions(config) == versions_before
    first_model = _store(config).get_artifacts_by_id([summary.baseline_model_id])[0]
    assert first_model.type_id == _store(config).get_artifact_type("Model").id
    assert first.pushed_uri


def _store_args(config: PipelineConfig) -> list[str]:
    return [
        "--set",
        f"metadata.sqlite_path={config.metadata.sqlite_path}",
        "--set",
        f"registry.uri={config.registry.uri}",
    ]


def _inputs_by_key(store: metadata_store.MetadataStore, execution_id: int) -> dict[str, int]:
    return {
        e.path.steps[0].key: e.artifact_id
        for e in store.get_events_by_execution_ids([execution_id])
        if e.type == metadata_store_pb2.Event.INPUT
    }


def _producer(store: metadata_store.MetadataStore, artifact_id: int) -> int:
    """The execution that made an artifact (cached re-runs record outputs again, later)."""
    writers = [
        e.execution_id
        for e in store.get_events_by_artifact_ids([artifact_id])
        if e.type == metadata_store_pb2.Event.OUTPUT
    ]
    (state,) = {s.last_known_state for s in store.get_executions_by_id([min(writers)])}
    assert state == metadata_store_pb2.Execution.COMPLETE
    return min(writers)


def test_lineage_model_names_the_exact_inputs_the_pushed_model_was_trained_on(first_run, capsys):
    config, _ = first_run
    registry = Registry(config.registry.uri, config.registry.model_name)
    model_id = registry.manifest(registry.complete_versions()[-1].number)["mlmd"]["model_id"]
    assert main(["lineage", "model", "latest", "--json", *_store_args(config)]) == 0
    out = capsys.readouterr().out
    lineage = json.loads(out)
    # Checked against ML Metadata directly: the model's producer and its inputs.
    store = _store(config)
    trainer = _producer(store, model_id)
    trainer_inputs = _inputs_by_key(store, trainer)
    transform_inputs = _inputs_by_key(store, _producer(store, trainer_inputs["transform_graph"]))
    assert lineage["model"]["id"] == model_id
    assert lineage["trainer"]["id"] == trainer
    # trainer.examples: raw, so the Trainer read the examples Transform analyzed.
    assert lineage["trained_on"] == "examples" and "transformed_examples" not in lineage
    assert trainer_inputs["examples"] == transform_inputs["examples"]
    assert lineage["transform_graph"]["id"] == trainer_inputs["transform_graph"]
    assert lineage["examples"]["id"] == transform_inputs["examples"]
    (raw,) = store.get_artifacts_by_id([transform_inputs["examples"]])
    assert lineage["examples"]["uri"] == raw.uri
    assert lineage["examples"]["example_gen"]["input_base"] == config.data.root
    counts = lineage["examples"]["statistics"]["split_counts"]
    assert set(counts) == {"train", "eval"} and sum(counts.values()) == SAMPLE_ROWS
    assert lineage["examples"]["anomalies"]["anomaly_count"] == 0
    assert lineage["blessing"]["blessed"] is True
    assert lineage["blessing"]["thresholds"] == {
        "metric": "auc",
        "min_value": 0.75,
        "max_drop": 0.01,
    }
    assert lineage["trainer"]["parameters"]["train_steps"] == 300
    assert lineage["pushed"][0]["version"] == 1
    assert lineage["run"] and lineage["pipeline"] == config.run.pipeline_name
    # Stable enough to diff: the same store gives the same bytes.
    assert main(["lineage", "model", "1", "--json", *_store_args(config)]) == 0
    assert capsys.readouterr().out == out
    assert main(["lineage", "model", "latest", *_store_args(config)]) == 0
    tree = capsys.readouterr().out
    assert f"Model {model_id}: " in tree and f"Examples {raw.id}: {raw.uri}" in tree
    assert (
        main(["lineage", "model", f"id:{model_id}", "--format", "dot", *_store_args(config)]) == 0
    )
    dot = capsys.readouterr().out
    assert dot.startswith("digraph lineage {") and f'-> "Model {model_id}"' in dot
    assert main(["lineage", "model", "7", *_store_args(config)]) == 2
    assert "pushed versions: 1" in capsys.readouterr().err


def test_lineage_examples_finds_the_models_of_both_runs_on_the_same_data(first_run, capsys):
    config, _ = first_run
    assert main(["lineage", "model", "latest", "--json", *_store_args(config)]) == 0
    examples_id = json.loads(capsys.readouterr().out)["examples"]["id"]
    assert main(["lineage", "examples", str(examples_id), "--json", *_store_args(config)]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    # The first run's model (blessed, pushed) and the one-step model of the
    # "clearly worse" run (rejected); the cached re-run trained nothing new.
    assert [(m["blessed"], [p["version"] for p in m["pushed"]]) for m in models] == [
        (True, [1]),
        (False, []),
    ]
    assert models[0]["run"] != models[1]["run"]


@pytest.mark.parametrize(
    "data, column, kind",
    [("missing_column", "payment_type", "SCHEMA_MISSING_COLUMN"), ("type_drift", "trip_miles", "")],
)
def test_bad_data_fails_at_the_gate_and_pushes_nothing(first_run, workspace, data, column, kind):
    config, _ = first_run
    versions_before = _versions(config)
    trainer_runs_before = len(_executions(config, definition.TRAINER))
    with pytest.raises(local.PipelineRunError) as raised:
        local.run(_config(workspace, data))
    error = raised.value
    assert error.node_id == definition.ANOMALIES_GATE
    assert f"feature '{column}'" in error.reason
    assert kind in error.reason
    assert {n.node_id for n in error.summary.nodes} == {
        definition.EXAMPLE_GEN,
        definition.SCHEMA_IMPORTER,
        definition.STATISTICS_GEN,
        definition.EXAMPLE_VALIDATOR,
    }
    assert len(_executions(config, definition.TRAINER)) == trainer_runs_before
    assert _versions(config) == versions_before


def test_cli_failure_is_one_line_and_nonzero(first_run, workspace, capsys):
    config, _ = first_run
    code = main(
        [
            "run",
            "--set",
            f"data.root={workspace / 'data' / 'type_drift'}",
            "--set",
            f"run.pipeline_root={config.run.pipeline_root}",
            "--set",
            f"metadata.sqlite_path={config.metadata.sqlite_path}",
            "--set",
            f"registry.uri={config.registry.uri}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    failure = [line for line in err.splitlines() if line.startswith("FAILED")]
    assert len(failure) == 1 and "anomalies_gate" in failure[0] and "trip_miles" in failure[0]


def test_a_missing_column_is_named_before_anything_runs(first_run, workspace, capsys):
    config, _ = first_run
    trainer_runs_before = len(_executions(config, definition.TRAINER))
    code = main(
        ["run", "--set", f"data.root={workspace / 'data' / 'missing_column'}", *_store_args(config)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "model.features.payment_type: column 'payment_type' is not in the data" in err[0]
    assert len(_executions(config, definition.TRAINER)) == trainer_runs_before


def test_schema_infer_writes_a_draft_covering_every_column(first_run, workspace, capsys):
    config, _ = first_run
    draft = workspace / "draft" / "schema.pbtxt"
    code = main(
        [
            "schema",
            "infer",
            "--output",
            str(draft),
            "--set",
            f"data.root={config.data.root}",
            "--set",
            f"run.pipeline_root={config.run.pipeline_root}",
            "--set",
            f"metadata.sqlite_path={config.metadata.sqlite_path}",
        ]
    )
    assert code == 0
    assert f"draft schema written to {draft}" in capsys.readouterr().out
    inferred = {f.name: f.type for f in parse_schema(draft.read_text()).feature}
    curated = {f.name: f.type for f in load_schema().feature}
    assert set(inferred) == set(curated)
    # A column with no value in the sample (pickup_census_tract) has no type to infer.
    rows = read_csv_rows(limit=SAMPLE_ROWS)
    with_values = {c for c in curated if any(r[c] for r in rows)}
    assert len(with_values) >= len(curated) - 1
    assert {c: inferred[c] for c in with_values} == {c: curated[c] for c in with_values}


def test_lineage_runs_lists_every_run_with_its_status_and_pushes(first_run, capsys):
    config, _ = first_run
    assert main(["lineage", "runs", "--json", *_store_args(config)]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    # The first run, the cached re-run, the clearly worse model, then the
    # runs that stopped at the gate (bad data, the CLI failure).
    assert [r["status"] for r in runs][:3] == ["SUCCEEDED"] * 3
    assert runs[0]["pushed_versions"] == [1] and runs[1]["cached"] == runs[1]["executions"]
    assert runs[1]["pushed_versions"] == []  # served from cache: it pushed nothing
    assert runs[2]["pushed_versions"] == []
    failed = [r for r in runs if r["status"] == "FAILED"]
    assert len(failed) >= 2 and all(r["failed_nodes"] == ["anomalies_gate"] for r in failed)
    assert main(["lineage", "runs", *_store_args(config)]) == 0
    assert "FAILED at anomalies_gate" in capsys.readouterr().out
