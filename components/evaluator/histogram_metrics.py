"""TFMA metrics read off the calibration histogram that TFMA's AUC already builds.

TFMA's metrics each name the computations they need, and TFMA runs each
distinct computation once: one Beam combiner, one Python pass over every
eval example, per slice. Its own `MeanLabel` asks for a combiner of its
own (weighted label and example sums), a whole pass for two numbers that
the AUC's histogram holds already: per prediction bucket, the weighted
labels and the weighted examples. `HistogramMeanLabel` asks for that same
histogram (same arguments, so the same computation key) and sums it.

The sums are the same as TFMA's own: both go through
`to_label_prediction_example_weight`, and a fractional label `l` of weight
`w` lands in the histogram as `w * l` labels of `w` examples. With 0/1
labels and unit weights they are whole numbers, so the division gives the
same float; tests/test_histogram_metrics.py compares the two on an eval.
"""

from __future__ import annotations

import math
from typing import Any

from tensorflow_model_analysis.metrics import calibration_histogram, metric_types, metric_util
from tensorflow_model_analysis.metrics.calibration import MEAN_LABEL_NAME


# Not "MeanLabel": TFMA looks a metric config's class name up in its own
# registry before it reads the config's module.
class HistogramMeanLabel(metric_types.Metric):
    """The weighted share of positive labels, from the AUC's calibration histogram."""

    def __init__(self, name: str = MEAN_LABEL_NAME) -> None:
        super().__init__(metric_util.merge_per_key_computations(_mean_label), name=name)


def _mean_label(
    name: str = MEAN_LABEL_NAME,
    eval_config: Any = None,
    model_name: str = "",
    output_name: str = "",
    sub_key: Any = None,
    aggregation_type: Any = None,
    class_weights: Any = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    key = metric_types.MetricKey(
        name=name,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        example_weighted=example_weighted,
    )
    # The arguments binary_confusion_matrices passes for AUC's default
    # thresholds: TFMA keys a computation by its arguments, so this is the
    # same histogram, not a second one.
    computations = calibration_histogram.calibration_histogram(
        eval_config=eval_config,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        aggregation_type=aggregation_type,
        class_weights=class_weights,
        example_weighted=example_weighted,
    )
    histogram_key = computations[-1].keys[-1]

    def result(
        metrics: dict[metric_types.MetricKey, Any],
    ) -> dict[metric_types.MetricKey, float]:
        buckets = metrics[histogram_key]
        examples = math.fsum(bucket.weighted_examples for bucket in buckets)
        labels = math.fsum(bucket.weighted_labels for bucket in buckets)
        return {
            key: float("nan") if math.isclose(examples, 0.0, abs_tol=1e-8) else labels / examples
        }

    computations.append(metric_types.DerivedMetricComputation(keys=[key], result=result))
    return computations
