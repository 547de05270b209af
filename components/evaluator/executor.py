"""Evaluator executor: thresholds to EvalConfig, baseline reference to model, then TFX's.

Everything TFMA-related (metrics, thresholds, the rubber stamp when there is
no baseline, the blessing) stays TFX's Evaluator executor, unchanged.
"""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.baseline.component import FOUND, MODEL_ID, MODEL_URI
from components.eval_config import make_eval_config

BASELINE_KEY = "baseline_model"
MIN_AUC = "min_auc"
MAX_AUC_DROP = "max_auc_drop"
# Where the blessing records the baseline's ML Metadata id. TFX writes it to
# `baseline_model_id`, which TFX's Kubeflow v2 entrypoint then maps through
# its table of *input* artifact ids, and the looked-up baseline is not an
# input: the entrypoint would fail with a KeyError after a successful
# evaluation. Under this name it is left alone, on every orchestrator.
BASELINE_MLMD_ID = "baseline_model_mlmd_id"


def resolve_baseline(reference: types.Artifact) -> standard_artifacts.Model | None:
    """Turns a BaselineLookup reference into the baseline Model it names.

    Returns:
        A Model artifact with the baseline's id and URI, or None when the
        lookup found no blessed model.

    Raises:
        ValueError: The reference says found but names no model.
    """
    if not reference.get_int_custom_property(FOUND):
        return None
    model_id = reference.get_int_custom_property(MODEL_ID)
    uri = reference.get_string_custom_property(MODEL_URI)
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
    """Replaces `min_auc`/`max_auc_drop` with TFX's `eval_config` JSON.

    Raises:
        ValueError: A threshold is missing or outside [0, 1].
    """
    props = dict(exec_properties)
    values = {}
    for key in (MIN_AUC, MAX_AUC_DROP):
        value = props.pop(key, None)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"Evaluator: {key} must be a number in [0, 1], got {value!r}")
        values[key] = float(value)
    props[standard_component_specs.EVAL_CONFIG_KEY] = proto_utils.proto_to_json(
        make_eval_config(values[MIN_AUC], values[MAX_AUC_DROP])
    )
    return props


def _move_baseline_id(blessing: types.Artifact) -> None:
    key = constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY
    if blessing.has_custom_property(key):
        blessing.set_int_custom_property(BASELINE_MLMD_ID, blessing.get_int_custom_property(key))
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
