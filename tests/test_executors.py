"""The parameter translation our Trainer and Evaluator executors do before TFX's."""

from __future__ import annotations

import json

import pytest
from tfx.types import standard_artifacts

from components.evaluator.executor import (
    BASELINE_MLMD_ID,
    _move_baseline_id,
    thresholds_to_eval_config,
)
from components.trainer.executor import steps_to_args


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


def test_thresholds_become_an_eval_config():
    props = thresholds_to_eval_config({"min_auc": 0.7, "max_auc_drop": 0.05})
    config = json.loads(props["eval_config"])
    assert "min_auc" not in props
    assert config["model_specs"][0]["label_key"] == "big_tipper"


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.8", None])
def test_bad_thresholds_are_named(bad):
    with pytest.raises(ValueError, match="max_auc_drop must be a number in"):
        thresholds_to_eval_config({"min_auc": 0.5, "max_auc_drop": bad})


def test_baseline_id_moves_out_of_tfx_entrypoint_reach():
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("baseline_model_id", 12)
    blessing.set_int_custom_property("current_model_id", 13)
    _move_baseline_id(blessing)
    assert not blessing.has_custom_property("baseline_model_id")
    assert blessing.get_int_custom_property(BASELINE_MLMD_ID) == 12
    assert blessing.get_int_custom_property("current_model_id") == 13
