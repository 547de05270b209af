"""TFMA's binary metrics, each eval example converted once instead of once per combiner and slice.

TFMA runs every distinct computation a metric asks for as a Beam combiner
over every eval example of every slice. A binary evaluation here needs two:
the calibration histogram (AUC; the mean label, below) and the confusion
matrices at 0.5 (binary accuracy, precision, recall). Each combiner first
converts the example with `metric_util.to_label_prediction_example_weight`,
TFMA's general conversion (model and output lookups, sub keys, fractional
labels), the largest single cost of an evaluation (docs/benchmarks.md). With
two combiners and each example in two slices (overall and its hour), that
was four conversions per example.

`one_pass` swaps those two computations for one, `_BinaryCountsCombiner`,
which converts once and feeds both accumulations. TFMA hands the same
example object to a combiner once for each slice it falls in, so the
conversion is also kept for the example last seen. The metric classes are
TFMA's own (AUC, BinaryAccuracy, Precision, Recall) with that swap: keys,
thresholds, the derivations from the counts (rebinning, AUC's summation)
and so the results are TFMA's. A metric configured otherwise (other
thresholds, a preprocessor, top-k) asks for other computations, which are
left as they are.

`HistogramMeanLabel` reads the mean label off the same histogram: TFMA's
`MeanLabel` asks for a combiner of its own (weighted label and example
sums), a whole pass for two numbers the histogram holds already (per
prediction bucket, the weighted labels and the weighted examples). The sums
are the same as TFMA's: a fractional label `l` of weight `w` lands in the
histogram as `w * l` labels of `w` examples; with 0/1 labels and unit
weights they are whole numbers, so the division gives the same float.

tests/test_binary_metrics.py compares every metric with TFMA's own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from tensorflow_model_analysis.metrics import (
    binary_confusion_matrices,
    calibration_histogram,
    confusion_matrix_metrics,
    metric_types,
    metric_util,
)
from tensorflow_model_analysis.metrics.calibration import MEAN_LABEL_NAME

# TFMA's default for BinaryAccuracy, Precision and Recall.
THRESHOLD = 0.5


def one_pass(
    computations: metric_types.MetricComputations,
    *,
    eval_config: Any = None,
    model_name: str = "",
    output_name: str = "",
    sub_key: Any = None,
    aggregation_type: Any = None,
    class_weights: Any = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    """Replaces TFMA's histogram and matrices-at-0.5 computations with the one combiner.

    TFMA de-duplicates computations by combiner class name and keys, so the
    replacement, the same for every metric built with the same arguments,
    runs once however many metrics ask for it.
    """
    # The two computations, built by TFMA as its metrics build them for
    # these arguments.
    common = dict(
        eval_config=eval_config,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        aggregation_type=aggregation_type,
        class_weights=class_weights,
        example_weighted=example_weighted,
    )
    histogram = calibration_histogram.calibration_histogram(**common)[0]
    matrices = binary_confusion_matrices.binary_confusion_matrices(
        thresholds=[THRESHOLD], **common
    )[0]
    fused = metric_types.MetricComputation(
        keys=[*histogram.keys, *matrices.keys],
        preprocessors=None,
        combiner=_BinaryCountsCombiner(histogram.combiner, matrices.combiner),
    )
    result: list[Any] = []
    added = False
    for computation in computations:
        if isinstance(computation, metric_types.MetricComputation) and computation in (
            histogram,
            matrices,
        ):
            if not added:
                result.append(fused)
                added = True
        else:
            result.append(computation)
    return result


class _OncePerExample:
    """TFMA's conversion of an example, kept for the example converted last.

    Holding the example keeps its identity from being reused, so `is` is
    safe; the arguments must match too.
    """

    def __init__(self) -> None:
        self._last: tuple[Any, dict[str, Any], list[Any]] | None = None

    def __call__(self, element: Any, **kwargs: Any) -> list[Any]:
        last = self._last
        if last is not None and last[0] is element and last[1] == kwargs:
            return last[2]
        converted = list(metric_util.to_label_prediction_example_weight(element, **kwargs))
        self._last = (element, kwargs, converted)
        return converted

    def __getstate__(self) -> dict[str, Any]:
        return {"_last": None}


class _BinaryCountsCombiner(beam.CombineFn):
    """TFMA's calibration-histogram and confusion-matrix combiners, fed by one conversion.

    The accumulators, merges and outputs are those two TFMA combiners'. The
    matrices combiner takes its conversion as an argument and gets the
    shared one; the histogram's per-example update, which calls TFMA's
    conversion itself, is repeated here.
    """

    def __init__(self, histogram: beam.CombineFn, matrices: beam.CombineFn) -> None:
        self._histogram = histogram
        self._matrices = matrices
        self._convert = _OncePerExample()
        matrices._extract_label_prediction_and_weight = self._convert
        # The arguments TFMA's histogram combiner converts with (add_input in
        # tensorflow_model_analysis/metrics/calibration_histogram.py); built
        # once, not for every example.
        self._histogram_args = dict(
            eval_config=histogram._eval_config,
            model_name=histogram._key.model_name,
            output_name=histogram._key.output_name,
            sub_key=histogram._key.sub_key,
            fractional_labels=histogram._fractional_labels,
            flatten=True,
            aggregation_type=histogram._aggregation_type,
            class_weights=histogram._class_weights,
            example_weighted=histogram._example_weighted,
        )

    @property
    def histogram(self) -> beam.CombineFn:
        """TFMA's calibration-histogram combiner inside."""
        return self._histogram

    @property
    def matrices(self) -> beam.CombineFn:
        """TFMA's confusion-matrices combiner inside."""
        return self._matrices

    def setup(self, *args: Any, **kwargs: Any) -> None:
        self._histogram.setup(*args, **kwargs)
        self._matrices.setup(*args, **kwargs)

    def create_accumulator(self) -> tuple[Any, Any]:
        return self._histogram.create_accumulator(), self._matrices.create_accumulator()

    def add_input(self, accumulator: tuple[Any, Any], element: Any) -> tuple[Any, Any]:
        histogram, matrices = accumulator
        h = self._histogram
        # TFMA's histogram update, after the shared conversion.
        for label, prediction, example_weight in self._convert(element, **self._histogram_args):
            example_weight = float(example_weight)
            label = float(label)
            prediction = float(prediction)
            weighted_label = label * example_weight
            weighted_prediction = prediction * example_weight
            index = h._bucket_index(prediction if h._prediction_based_bucketing else label)
            bucket = histogram.get(index)
            if bucket is None:
                histogram[index] = calibration_histogram.Bucket(
                    index, weighted_label, weighted_prediction, example_weight
                )
            else:
                bucket.weighted_labels += weighted_label
                bucket.weighted_predictions += weighted_prediction
                bucket.weighted_examples += example_weight
        return histogram, self._matrices.add_input(matrices, element)

    def merge_accumulators(self, accumulators: Iterable[tuple[Any, Any]]) -> tuple[Any, Any]:
        histograms, matrices = zip(*accumulators, strict=True)
        return (
            self._histogram.merge_accumulators(histograms),
            self._matrices.merge_accumulators(matrices),
        )

    def extract_output(self, accumulator: tuple[Any, Any]) -> dict[Any, Any]:
        histogram, matrices = accumulator
        return {
            **self._histogram.extract_output(histogram),
            **self._matrices.extract_output(matrices),
        }


class _OnePassMixin:
    """A TFMA confusion-matrix metric whose counts come from `one_pass`.

    The signature is the base class's: TFMA passes a computations function
    only the arguments it names (`metric_util.merge_per_key_computations`).
    """

    def _metric_computations(
        self,
        thresholds: Any = None,
        num_thresholds: Any = None,
        top_k: Any = None,
        class_id: Any = None,
        name: Any = None,
        eval_config: Any = None,
        model_name: str = "",
        output_name: str = "",
        sub_key: Any = None,
        aggregation_type: Any = None,
        class_weights: Any = None,
        example_weighted: bool = False,
        preprocessors: Any = None,
        metric_key: Any = None,
        **kwargs: Any,
    ) -> metric_types.MetricComputations:
        computations = super()._metric_computations(  # type: ignore[misc]
            thresholds=thresholds,
            num_thresholds=num_thresholds,
            top_k=top_k,
            class_id=class_id,
            name=name,
            eval_config=eval_config,
            model_name=model_name,
            output_name=output_name,
            sub_key=sub_key,
            aggregation_type=aggregation_type,
            class_weights=class_weights,
            example_weighted=example_weighted,
            preprocessors=preprocessors,
            metric_key=metric_key,
            **kwargs,
        )
        return one_pass(
            computations,
            eval_config=eval_config,
            model_name=model_name,
            output_name=output_name,
            sub_key=sub_key,
            aggregation_type=aggregation_type,
            class_weights=class_weights,
            example_weighted=example_weighted,
        )


# Class names differ from TFMA's: TFMA looks a metric config's class name up
# in its own registry before it reads the config's module. The metric names
# (auc, binary_accuracy, precision, recall) are TFMA's defaults.
class OnePassAUC(_OnePassMixin, confusion_matrix_metrics.AUC):
    """TFMA's AUC (ROC, 10,000 thresholds)."""


class OnePassBinaryAccuracy(_OnePassMixin, confusion_matrix_metrics.BinaryAccuracy):
    """TFMA's binary accuracy at 0.5."""


class OnePassPrecision(_OnePassMixin, confusion_matrix_metrics.Precision):
    """TFMA's precision at 0.5."""


class OnePassRecall(_OnePassMixin, confusion_matrix_metrics.Recall):
    """TFMA's recall at 0.5."""


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
    args = dict(
        eval_config=eval_config,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        aggregation_type=aggregation_type,
        class_weights=class_weights,
        example_weighted=example_weighted,
    )
    # The arguments binary_confusion_matrices passes for AUC's default
    # thresholds: the same histogram, not a second one.
    computations = calibration_histogram.calibration_histogram(**args)
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
    return one_pass(computations, **args)
