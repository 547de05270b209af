"""Reading TFMA's output: the metrics of the candidate and the baseline, overall and by slice.

The Evaluator writes them once more as JSON beside TFMA's files
(`contracts.METRICS_SUMMARY_FILE`), so that readers that run without
TensorFlow (`lineage`, the registry's manifest, the run summary) need not
load TFMA to show four numbers. Outputs from before that file existed are
read through TFMA.
"""

from __future__ import annotations

import json
from typing import Any

from components import contracts, storage

_CANDIDATE = "candidate"
_BASELINE = "baseline"
_RECALL = "class_recall"


def _summary(evaluation_uri: str) -> dict[str, Any] | None:
    path = storage.join(evaluation_uri, contracts.METRICS_SUMMARY_FILE)
    if not storage.exists(path):
        return None
    loaded = json.loads(storage.read_bytes(path))
    return loaded if isinstance(loaded, dict) else None


def overall_metrics(evaluation_uri: str) -> tuple[dict[str, float], dict[str, float]]:
    """(candidate, baseline) overall-slice metrics of a TFMA output folder."""
    summary = _summary(evaluation_uri)
    if summary is not None:
        return dict(summary[_CANDIDATE]), dict(summary[_BASELINE])
    return _tfma_overall_metrics(evaluation_uri)


def per_class_recall(evaluation_uri: str) -> dict[int, float]:
    """Recall of each class id on the overall slice (empty for a binary task)."""
    summary = _summary(evaluation_uri)
    if summary is not None:
        return {int(c): float(r) for c, r in summary[_RECALL].items()}
    return _tfma_per_class_recall(evaluation_uri)


def write_summary(evaluation_uri: str) -> None:
    """Writes the JSON summary of a TFMA output folder, from TFMA's own files."""
    candidate, baseline = _tfma_overall_metrics(evaluation_uri)
    recall = _tfma_per_class_recall(evaluation_uri)
    body = {
        _CANDIDATE: candidate,
        _BASELINE: baseline,
        _RECALL: {str(c): r for c, r in recall.items()},
    }
    storage.write_bytes(
        storage.join(evaluation_uri, contracts.METRICS_SUMMARY_FILE),
        (json.dumps(body, indent=2, sort_keys=True) + "\n").encode(),
    )


def _tfma_overall_metrics(evaluation_uri: str) -> tuple[dict[str, float], dict[str, float]]:
    import tensorflow_model_analysis as tfma

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


def slice_metrics(
    evaluation_uri: str, columns: tuple[str, ...]
) -> dict[str, list[tuple[Any, dict[str, float]]]]:
    """The candidate's metrics per value of each single-column slice, in TFMA's order.

    Returns:
        column -> [(the slice's value: int, float or str, {metric: value})];
        a column TFMA has no slices for is left out.
    """
    import tensorflow_model_analysis as tfma

    found: dict[str, list[tuple[Any, dict[str, float]]]] = {}
    for per_slice in tfma.load_metrics(evaluation_uri):
        keys = per_slice.slice_key.single_slice_keys
        if len(keys) != 1 or keys[0].column not in columns:
            continue
        key = keys[0]
        value = getattr(key, key.WhichOneof("kind"))
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        metrics = {
            kv.key.name: kv.value.double_value.value
            for kv in per_slice.metric_keys_and_values
            if kv.key.model_name != _BASELINE
            and not kv.key.is_diff
            and kv.value.HasField("double_value")
        }
        found.setdefault(key.column, []).append((value, metrics))
    return found


def _tfma_per_class_recall(evaluation_uri: str) -> dict[int, float]:
    """Recall by class id from TFMA's multiclass confusion matrix; empty without one.

    The matrix at threshold 0 counts each example under its top-1 prediction.
    """
    import tensorflow_model_analysis as tfma

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
