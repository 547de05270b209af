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


def per_class_recall(evaluation_uri: str) -> dict[int, float]:
    """Recall of each class id on the overall slice, from TFMA's multiclass confusion matrix.

    Empty when the evaluation has no such plot (a binary task). The matrix
    at threshold 0 counts each example under its top-1 prediction.
    """
    for per_slice in tfma.load_plots(evaluation_uri):
        if per_slice.slice_key.single_slice_keys:
            continue
        for kv in per_slice.plot_keys_and_values:
            if kv.key.model_name == "baseline":
                continue
            matrices = kv.value.multi_class_confusion_matrix_at_thresholds.matrices
            if not matrices:
                continue
            actual: dict[int, float] = {}
            correct: dict[int, float] = {}
            for entry in matrices[0].entries:
                actual[entry.actual_class_id] = (
                    actual.get(entry.actual_class_id, 0.0) + entry.num_weighted_examples
                )
                if entry.actual_class_id == entry.predicted_class_id:
                    correct[entry.actual_class_id] = entry.num_weighted_examples
            return {c: correct.get(c, 0.0) / n for c, n in sorted(actual.items()) if n}
    return {}
