"""HistogramMeanLabel: TFMA's mean label, read off AUC's histogram instead of a pass of its own."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_specs, metric_types

from components.evaluator.eval_config import EvalSpec, make_eval_config
from components.evaluator.histogram_metrics import HistogramMeanLabel


def _inputs(labels, predictions, weights) -> list[metric_types.StandardMetricInputs]:
    return [
        metric_types.StandardMetricInputs(
            labels=np.array([label]),
            predictions=np.array([prediction]),
            example_weights=np.array([weight]),
        )
        for label, prediction, weight in zip(labels, predictions, weights, strict=True)
    ]


def _evaluate(metric: metric_types.Metric, inputs, example_weighted: bool) -> dict:
    """Runs a metric's computations the way TFMA's evaluator does, without Beam."""
    results: dict = {}
    for computation in metric.computations(example_weighted=example_weighted):
        if isinstance(computation, metric_types.DerivedMetricComputation):
            results.update(computation.result(results))
            continue
        combiner = computation.combiner
        combiner.setup()
        half = len(inputs) // 2
        accumulators = []
        for part in (inputs[:half], inputs[half:]):
            accumulator = combiner.create_accumulator()
            for element in part:
                accumulator = combiner.add_input(accumulator, element)
            accumulators.append(accumulator)
        results.update(combiner.extract_output(combiner.merge_accumulators(accumulators)))
    return {key.name: value for key, value in results.items() if key.name == "mean_label"}


@pytest.mark.parametrize(
    "labels, weights, example_weighted",
    [
        ("binary", "unit", False),
        ("binary", "random", True),
        ("fractional", "random", True),
    ],
)
def test_the_mean_label_is_tfmas(labels: str, weights: str, example_weighted: bool) -> None:
    rng = np.random.default_rng(7)
    n = 5001
    label_values = rng.integers(0, 2, n).astype(float) if labels == "binary" else rng.random(n)
    weight_values = np.ones(n) if weights == "unit" else rng.random(n) * 3
    # Predictions on the histogram's edges and outside [0, 1] land in its
    # catch-all buckets, which must count too.
    predictions = np.concatenate([rng.random(n - 4), [0.0, 1.0, -0.5, 1.5]])
    inputs = _inputs(label_values, predictions, weight_values)

    ours = _evaluate(HistogramMeanLabel(), inputs, example_weighted)["mean_label"]
    theirs = _evaluate(tfma.metrics.MeanLabel(), inputs, example_weighted)["mean_label"]
    if labels == "binary" and weights == "unit":
        assert ours == theirs == label_values.mean()
    else:
        assert math.isclose(ours, theirs, rel_tol=1e-12)


def test_an_empty_slice_has_no_mean_label() -> None:
    assert math.isnan(_evaluate(HistogramMeanLabel(), [], False)["mean_label"])


def test_one_class_reads_as_zero_or_one() -> None:
    inputs = _inputs(np.zeros(10), np.linspace(0, 1, 10), np.ones(10))
    assert _evaluate(HistogramMeanLabel(), inputs, False)["mean_label"] == 0.0
    inputs = _inputs(np.ones(10), np.linspace(0, 1, 10), np.ones(10))
    assert _evaluate(HistogramMeanLabel(), inputs, False)["mean_label"] == 1.0


def _per_example_combiners(config: tfma.EvalConfig) -> list[str]:
    """The distinct per-example computations: TFMA runs equal ones (same combiner, keys) once."""
    distinct: list[metric_types.MetricComputation] = []
    for c in metric_specs.to_computations(list(config.metrics_specs), config):
        if isinstance(c, metric_types.MetricComputation) and c not in distinct:
            distinct.append(c)
    return sorted(type(c.combiner).__name__ for c in distinct)


def test_the_binary_eval_walks_the_examples_once_fewer() -> None:
    config = make_eval_config(EvalSpec("binary", "auc"), min_value=0.5, max_drop=0.01)
    combiners = _per_example_combiners(config)
    # AUC's histogram, precision/recall/accuracy's matrices at 0.5, the count.
    assert len(combiners) == 3, combiners
    assert not any("WeightedLabelsPredictionsExamples" in name for name in combiners), combiners
    # What TFMA's own MeanLabel adds: a fourth pass.
    spec = config.metrics_specs[0]
    for metric in spec.metrics:
        if metric.class_name == "HistogramMeanLabel":
            metric.class_name, metric.module = "MeanLabel", ""
    assert len(_per_example_combiners(config)) == 4
