"""create_pipeline: the DAG's shape, without running it."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import pytest
from tfx import v1 as tfx

from components.errors import ConfigError
from components.evaluator import binary_metrics
from components.evaluator.component import Evaluator
from components.evaluator.executor import thresholds_to_eval_config
from components.model_package import workload_of
from components.trainer.executor import steps_to_args
from components.training.custom_config import settings_of
from pipeline import definition
from pipeline.config import load_config


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def nodes(config):
    return {c.id: c for c in definition.create_pipeline(config).components}


def _by_id(config) -> dict:
    return {c.id: c for c in definition.create_pipeline(config).components}


def _upstream_ids(node) -> set[str]:
    return {n.id for n in node.upstream_nodes}


def test_node_ids_are_stable(nodes):
    assert set(nodes) == set(definition.NODE_IDS)


def test_no_resolver_nodes(config):
    # Open-source KFP v2 cannot run TFX resolver executors.
    pipeline = definition.create_pipeline(config)
    assert not [c for c in pipeline.components if "Resolver" in type(c).__name__]


def test_model_code_is_referenced_by_import_path(nodes):
    transform = nodes[definition.TRANSFORM].exec_properties
    trainer = nodes[definition.TRAINER].exec_properties
    assert transform["preprocessing_fn"] == "models.declarative.preprocessing_fn"
    assert trainer["run_fn"] == "components.training.run.run_fn"
    assert not transform.get("module_file") and not trainer.get("module_file")
    for dotted in (transform["preprocessing_fn"], trainer["run_fn"]):
        module, _, name = dotted.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))


def test_gate_stands_between_validation_and_transform(nodes):
    assert definition.EXAMPLE_VALIDATOR in _upstream_ids(nodes[definition.ANOMALIES_GATE])
    assert definition.ANOMALIES_GATE in _upstream_ids(nodes[definition.TRANSFORM])


def test_evaluator_compares_against_the_baseline_lookup(nodes):
    evaluator = nodes[definition.EVALUATOR]
    assert isinstance(evaluator, Evaluator)
    assert evaluator.inputs["baseline_model"].producer_component_id == definition.BASELINE_LOOKUP
    assert evaluator.inputs["model"].producer_component_id == definition.TRAINER
    lookup = nodes[definition.BASELINE_LOOKUP]
    assert lookup.inputs["model"].producer_component_id == definition.TRAINER


def test_the_workload_reaches_transform_and_trainer_as_configured(config, nodes):
    transform = json.loads(nodes[definition.TRANSFORM].exec_properties["custom_config"])
    trainer = json.loads(nodes[definition.TRAINER].exec_properties["custom_config"])
    # What only the evaluation reads stays out of their cache keys.
    trained = dataclasses.replace(
        config.model, slice_by=(), label=dataclasses.replace(config.model.label, name="")
    )
    assert workload_of(transform) == trained
    assert workload_of(trainer) == trained
    assert settings_of(trainer, 1000, 100) == config.trainer
    assert transform["code_fingerprint"] == trainer["code_fingerprint"]


def test_changing_only_the_slices_keeps_transform_and_trainer_cached():
    def keys(*overrides):
        nodes = _by_id(load_config(None, list(overrides)))
        return [nodes[n].exec_properties["custom_config"] for n in ("transform", "trainer")]

    assert keys("model.slice_by=[trip_start_day]") == keys()


def test_editing_the_model_package_changes_the_cache_key(tmp_path, monkeypatch):
    """A preprocessing_fn named by path is only its name to TFX's cache: the code's hash is not."""
    package = tmp_path / "team_model"
    package.mkdir()
    (package / "__init__.py").write_text("from models.declarative import *  # noqa\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = load_config(None, ["model.package=team_model"])
    before = _by_id(config)[definition.TRANSFORM].exec_properties["custom_config"]
    (package / "__init__.py").write_text("from models.declarative import *  # noqa  (edited)\n")
    after = _by_id(config)[definition.TRANSFORM].exec_properties["custom_config"]
    assert before != after


@pytest.mark.parametrize("old", [True, False])
def test_thresholds_come_from_config(old):
    names = ("min_auc", "max_auc_drop") if old else ("min_value", "max_drop")
    config = load_config(None, [f"evaluator.{names[0]}=0.77", f"evaluator.{names[1]}=0.03"])
    evaluator = _by_id(config)[definition.EVALUATOR]
    assert evaluator.exec_properties["min_value"] == pytest.approx(0.77)
    assert evaluator.exec_properties["max_drop"] == pytest.approx(0.03)
    # What the executor hands TFX's Evaluator.
    props = thresholds_to_eval_config(evaluator.exec_properties)
    eval_config = json.loads(props["eval_config"])
    metrics = eval_config["metrics_specs"][0]["metrics"]
    auc = next(m for m in metrics if m["class_name"] == binary_metrics.OnePassAUC.__name__)
    [gate] = auc["per_slice_thresholds"]
    assert gate["slicing_specs"] == [{}], "thresholds must gate the overall slice only"
    assert gate["threshold"]["value_threshold"]["lower_bound"] == pytest.approx(0.77)
    assert gate["threshold"]["change_threshold"]["absolute"] == pytest.approx(-0.03)
    assert eval_config["model_specs"][0]["label_key"] == "label_xf"
    assert eval_config["model_specs"][0]["prediction_key"] == "probability"
    slices = [s.get("feature_keys") for s in eval_config["slicing_specs"]]
    assert slices == [None, ["trip_start_hour"]]


def test_a_feature_the_schema_lacks_is_named():
    with pytest.raises(ConfigError, match=r"model.features.surge: the curated schema has no"):
        definition.create_pipeline(load_config(None, ["model.features.surge={kind: numeric}"]))


def test_trainer_settings_come_from_config():
    config = load_config(None, ["trainer.train_steps=17", "trainer.batch_size=9"])
    trainer = _by_id(config)[definition.TRAINER]
    assert trainer.exec_properties["train_steps"] == 17
    assert json.loads(steps_to_args(trainer.exec_properties)["train_args"])["num_steps"] == 17
    assert '"batch_size": 9' in trainer.exec_properties["custom_config"]


def test_pusher_writes_to_the_registry(config, nodes):
    props = nodes[definition.PUSHER].exec_properties
    assert props["registry_uri"] == config.registry.uri
    assert props["model_name"] == config.registry.model_name
    assert props["keep_versions"] == config.registry.keep_versions
    assert props["warmup_requests"] == config.registry.warmup_requests
    # Locally the runner supplies the run id; Kubeflow's driver fills the placeholder.
    assert props["pipeline_run_id"] == ""
    kfp = {c.id: c for c in definition.create_pipeline(config, runtime_parameters=True).components}
    assert kfp[definition.PUSHER].exec_properties["pipeline_run_id"] == "{{$.pipeline_job_uuid}}"


def test_split_ratio_and_beam_args(config):
    config = load_config(None, ["data.train_buckets=9", "beam.args=[--direct_num_workers=2]"])
    pipeline = definition.create_pipeline(config)
    example_gen = {c.id: c for c in pipeline.components}[definition.EXAMPLE_GEN]
    splits = example_gen.exec_properties["output_config"]
    assert '"hash_buckets": 9' in splits
    assert pipeline.beam_pipeline_args == ["--direct_num_workers=2"]


def test_schema_is_embedded_by_content(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    original = Path(load_config().data.schema_file).read_text()
    schema.write_text(original)
    first = definition.create_pipeline(load_config(None, [f"data.schema_file={schema}"]))
    schema.write_text(original.replace("max: 23", "max: 22"))
    second = definition.create_pipeline(load_config(None, [f"data.schema_file={schema}"]))

    def text(p):
        return {c.id: c for c in p.components}[definition.SCHEMA_IMPORTER].exec_properties[
            "schema_text"
        ]

    # Same path, new content: a different cache key, unlike ImportSchemaGen.
    assert text(first) != text(second)


def test_bad_schema_file_is_named(tmp_path):
    bad = tmp_path / "schema.pbtxt"
    bad.write_text("feature { name: 'x' type: NOT_A_TYPE }")
    with pytest.raises(ConfigError, match=f"data.schema_file={bad} is not a valid"):
        definition.create_pipeline(load_config(None, [f"data.schema_file={bad}"]))
    with pytest.raises(ConfigError, match="cannot read the curated schema"):
        definition.create_pipeline(load_config(None, [f"data.schema_file={tmp_path / 'none'}"]))


def test_create_pipeline_is_deterministic(config):
    def describe(p: tfx.dsl.Pipeline):
        return [(c.id, type(c).__name__, sorted(_upstream_ids(c))) for c in p.components]

    first, second = definition.create_pipeline(config), definition.create_pipeline(config)
    assert describe(first) == describe(second)


def test_the_same_dag_compiles_for_kubeflow_v2_without_resolvers(tmp_path):
    """The local DAG compiles unchanged with TFX's KubeflowV2DagRunner (spec 2.1).

    A smoke check that nothing in create_pipeline is local-only; the Kubeflow
    packaging itself (image, compile command, submit) is separate work.
    """
    config = load_config(
        None,
        [
            "run.pipeline_root=gs://bucket/root",
            "data.root=gs://bucket/data",
            "registry.uri=gs://bucket/registry",
        ],
    )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image="registry.example/taxi:test", use_pipeline_spec_2_1=True
        ),
        output_dir=str(tmp_path),
        output_filename="pipeline.json",
    )
    runner.run(definition.create_pipeline(config), write_out=True)
    spec = json.loads((tmp_path / "pipeline.json").read_text())["pipelineSpec"]
    assert spec["schemaVersion"] == "2.1.0"
    assert set(spec["root"]["dag"]["tasks"]) == set(definition.NODE_IDS)
    executors = spec["deploymentSpec"]["executors"]
    assert not [name for name, e in executors.items() if "resolver" in e], executors.keys()
    gate_deps = spec["root"]["dag"]["tasks"][definition.TRANSFORM].get("dependentTasks", [])
    assert definition.ANOMALIES_GATE in gate_deps


def test_transform_skips_its_statistics_and_traces_tf1_unless_tflite_is_asked_for(config, nodes):
    transform = nodes[definition.TRANSFORM]
    assert transform.exec_properties["disable_statistics"] == 1
    assert not any("transform_stats" in key for key in transform.outputs)
    assert transform.exec_properties["force_tf_compat_v1"] == 1
    # The TFLite converter needs TF2's vocabulary tables (docs/benchmarks.md).
    tflite = dataclasses.replace(
        config, registry=dataclasses.replace(config.registry, tflite=("dynamic_int8",))
    )
    assert _by_id(tflite)[definition.TRANSFORM].exec_properties["force_tf_compat_v1"] == 0
