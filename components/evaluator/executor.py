"""Evaluator executor: resolves the baseline reference, then runs TFX's own.

Everything TFMA-related (metrics, thresholds, the rubber stamp when there is
no baseline, the blessing) stays TFX's Evaluator executor, unchanged.
"""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.types import standard_artifacts

from components.baseline.component import FOUND, MODEL_ID, MODEL_URI

BASELINE_KEY = "baseline_model"


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


class Executor(tfx_evaluator_executor.Executor):
    """TFX's Evaluator executor with the baseline resolved from a reference."""

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
        super().Do(inputs, output_dict, exec_properties)
