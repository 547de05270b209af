"""Reading TFMA's output: the overall-slice metrics of the candidate and the baseline."""

from __future__ import annotations

import tensorflow_model_analysis as tfma


def overall_metrics(evaluation_uri: str) -> tuple[dict[str, float], dict[str, float]]:
    """(candidate, baseline) overall-slice metrics of a TFMA output folder."""
    candidate: dict[str, float] = {}
    baseline: dict[str, float] = {}
    for per_slice in tfma.load_metrics(evaluation_uri):
        if per_slice.slice_key.single_slice_keys:
            continue
        for kv in per_slice.metric_keys_and_values:
            if kv.key.is_diff or not kv.value.HasField("double_value"):
                continue
            target = baseline if kv.key.model_name == "baseline" else candidate
            target[kv.key.name] = kv.value.double_value.value
    return candidate, baseline
