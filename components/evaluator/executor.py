"""Evaluator executor: task and thresholds to EvalConfig, baseline reference to model, then TFX's.

Everything TFMA-related (metrics, thresholds, the rubber stamp when there is
no baseline, the blessing) stays TFX's Evaluator executor, unchanged; the
overall metrics are then written once more as JSON (`metrics.write_summary`).
"""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components import contracts
from components.evaluator import metrics
from components.evaluator.eval_config import EvalSpec, make_eval_config

BASELINE_KEY = "baseline_model"
EVAL_SPEC = "eval_spec"
MIN_VALUE = contracts.MIN_VALUE
MAX_DROP = contracts.MAX_DROP


def resolve_baseline(reference: types.Artifact) -> standard_artifacts.Model | None:
    """Turns a BaselineLookup reference into the baseline Model it names.

    Returns:
        A Model artifact with the baseline's id and URI, or None when the
        lookup found no blessed model.

    Raises:
        ValueError: The reference says found but names no model.
    """
    if not reference.get_int_custom_property(contracts.BASELINE_FOUND):
        return None
    model_id = reference.get_int_custom_property(contracts.BASELINE_MODEL_ID)
    uri = reference.get_string_custom_property(contracts.BASELINE_MODEL_URI)
    if not model_id or not uri:
        raise ValueError(
            f"baseline reference {reference.uri} says found but has model id {model_id!r} "
            f"and uri {uri!r}"
        )
    model = standard_artifacts.Model()
    model.id = model_id
    model.uri = uri
    return model


def thresholds_to_eval_config(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """Replaces `eval_spec`, `min_value` and `max_drop` with TFX's `eval_config` JSON.

    Raises:
        ValueError: A threshold is missing or outside [0, 1], or the spec is bad.
    """
    props = dict(exec_properties)
    spec = EvalSpec.from_json(props.pop(EVAL_SPEC))
    values = {}
    for key in (MIN_VALUE, MAX_DROP):
        value = props.pop(key, None)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"Evaluator: {key} must be a number in [0, 1], got {value!r}")
        values[key] = float(value)
    props[standard_component_specs.EVAL_CONFIG_KEY] = proto_utils.proto_to_json(
        make_eval_config(spec, values[MIN_VALUE], values[MAX_DROP])
    )
    return props


def _move_baseline_id(blessing: types.Artifact) -> None:
    key = constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY
    if blessing.has_custom_property(key):
        blessing.set_int_custom_property(
            contracts.BASELINE_MODEL_MLMD_ID, blessing.get_int_custom_property(key)
        )
        del blessing.mlmd_artifact.custom_properties[key]


class Executor(tfx_evaluator_executor.Executor):
    """TFX's Evaluator executor with the thresholds and baseline resolved first."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        inputs = dict(input_dict)
        references = inputs.pop(BASELINE_KEY, [])
        if len(references) > 1:
            raise ValueError(f"expected at most one baseline reference, got {len(references)}")
        baseline = resolve_baseline(references[0]) if references else None
        if baseline is not None:
            inputs[BASELINE_KEY] = [baseline]
        super().Do(inputs, output_dict, thresholds_to_eval_config(exec_properties))
        for blessing in output_dict.get(standard_component_specs.BLESSING_KEY, []):
            _move_baseline_id(blessing)
        for evaluation in output_dict.get(standard_component_specs.EVALUATION_KEY, []):
            metrics.write_summary(evaluation.uri)
