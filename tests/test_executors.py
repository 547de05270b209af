"""The parameter translation our Trainer and Evaluator executors do before TFX's."""

from __future__ import annotations

import importlib
import json

import pytest
from tfx.types import standard_artifacts

from components.contracts import BASELINE_MODEL_MLMD_ID as BASELINE_MLMD_ID
from components.evaluator.eval_config import EvalSpec
from components.evaluator.executor import _move_baseline_id, thresholds_to_eval_config
from components.trainer.executor import steps_to_args

BINARY = EvalSpec("binary", "auc", ("trip_start_hour",)).to_json()
MULTICLASS = EvalSpec("multiclass", "accuracy").to_json()


def test_steps_become_tfx_arg_protos():
    props = steps_to_args({"train_steps": 7, "eval_steps": 3, "run_fn": "m.f"})
    assert json.loads(props["train_args"]) == {"num_steps": 7}
    assert json.loads(props["eval_args"]) == {"num_steps": 3}
    assert "train_steps" not in props and props["run_fn"] == "m.f"


def test_kubeflow_integer_floats_are_accepted():
    # KFP hands NUMBER_INTEGER parameters over as JSON numbers.
    props = steps_to_args({"train_steps": 7.0, "eval_steps": 3.0})
    assert json.loads(props["train_args"]) == {"num_steps": 7}


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10", None, True])
def test_bad_step_counts_are_named(bad):
    with pytest.raises(ValueError, match="train_steps must be a positive integer"):
        steps_to_args({"train_steps": bad, "eval_steps": 1})


def _metric_name(metric: dict) -> str:
    """The name TFMA reports a configured metric under (its key's name)."""
    module = importlib.import_module(metric.get("module") or "tensorflow_model_analysis.metrics")
    return getattr(module, metric["class_name"])(**json.loads(metric.get("config") or "{}")).name


def _gates(config: dict) -> dict[str, dict]:
    """Each gated metric's overall-slice threshold, by the metric's name."""
    gates = {}
    for spec in config["metrics_specs"]:
        for metric in spec["metrics"]:
            for gate in metric.get("per_slice_thresholds", []):
                gates[_metric_name(metric)] = {**gate, "binarize": spec.get("binarize")}
    return gates


def test_thresholds_become_an_eval_config():
    props = thresholds_to_eval_config({"eval_spec": BINARY, "min_value": 0.7, "max_drop": 0.05})
    config = json.loads(props["eval_config"])
    assert "min_value" not in props and "eval_spec" not in props
    assert config["model_specs"][0]["label_key"] == "label_xf"
    assert config["model_specs"][0]["prediction_key"] == "probability"
    gates = _gates(config)
    assert set(gates) == {"auc"}
    assert gates["auc"]["threshold"]["value_threshold"]["lower_bound"] == pytest.approx(0.7)


def test_multiclass_gates_top_1_accuracy_and_keeps_the_confusion_matrix():
    props = thresholds_to_eval_config({"eval_spec": MULTICLASS, "min_value": 0.6, "max_drop": 0.02})
    config = json.loads(props["eval_config"])
    assert config["model_specs"][0]["prediction_key"] == "probabilities"
    gates = _gates(config)
    assert set(gates) == {"accuracy"}
    # top_k on the spec, so that the threshold's key carries the metric's sub-key.
    assert gates["accuracy"]["binarize"] == {"top_k_list": {"values": [1]}}
    classes = {m["class_name"] for spec in config["metrics_specs"] for m in spec["metrics"]}
    assert "MultiClassConfusionMatrixPlot" in classes


def test_a_metric_that_does_not_suit_the_task_is_named():
    spec = EvalSpec("multiclass", "auc").to_json()
    with pytest.raises(ValueError, match=r"evaluator.metric='auc' does not suit a multiclass"):
        thresholds_to_eval_config({"eval_spec": spec, "min_value": 0.5, "max_drop": 0.1})


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.8", None])
def test_bad_thresholds_are_named(bad):
    with pytest.raises(ValueError, match="max_drop must be a number in"):
        thresholds_to_eval_config({"eval_spec": BINARY, "min_value": 0.5, "max_drop": bad})


def test_baseline_id_moves_out_of_tfx_entrypoint_reach():
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("baseline_model_id", 12)
    blessing.set_int_custom_property("current_model_id", 13)
    _move_baseline_id(blessing)
    assert not blessing.has_custom_property("baseline_model_id")
    assert blessing.get_int_custom_property(BASELINE_MLMD_ID) == 12
    assert blessing.get_int_custom_property("current_model_id") == 13


def test_split_records_reads_a_splits_gzipped_records_in_file_order(tmp_path):
    import tensorflow as tf

    from components.pusher.executor import eval_examples
    from components.split_protos import split_records

    split = tmp_path / "Split-eval"
    split.mkdir()
    for name, records in (("b.gz", [b"3"]), ("a.gz", [b"1", b"2"])):
        with tf.io.TFRecordWriter(str(split / name), options="GZIP") as writer:
            for record in records:
                writer.write(record)
    assert list(split_records(str(tmp_path), "eval")) == [b"1", b"2", b"3"]
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path)
    examples.split_names = '["train", "eval"]'
    assert list(eval_examples(examples)) == [b"1", b"2", b"3"]
    with pytest.raises(ValueError, match=r"no files in the train split"):
        list(split_records(str(tmp_path), "train"))
