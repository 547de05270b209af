"""binary_metrics: TFMA's binary metrics from one conversion per example, equal to TFMA's own."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from apache_beam.internal import pickler
from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as mpve
from tensorflow_model_analysis.metrics import metric_specs, metric_types, metric_util

from components.evaluator import binary_metrics
from components.evaluator.eval_config import EvalSpec, make_eval_config

OURS = [
    binary_metrics.OnePassAUC(),
    binary_metrics.OnePassBinaryAccuracy(),
    binary_metrics.OnePassPrecision(),
    binary_metrics.OnePassRecall(),
    binary_metrics.HistogramMeanLabel(),
]
THEIRS = [
    tfma.metrics.AUC(),
    tfma.metrics.BinaryAccuracy(),
    tfma.metrics.Precision(),
    tfma.metrics.Recall(),
    tfma.metrics.MeanLabel(),
]
NAMES = ["auc", "binary_accuracy", "precision", "recall", "mean_label"]


def _inputs(labels, predictions, weights) -> list[metric_types.StandardMetricInputs]:
    return [
        metric_types.StandardMetricInputs(
            labels=np.array([label]),
            predictions=np.array([prediction]),
            example_weights=np.array([weight]),
        )
        for label, prediction, weight in zip(labels, predictions, weights, strict=True)
    ]


def _computations(metrics, example_weighted: bool):
    computations = []
    for metric in metrics:
        computations.extend(metric.computations(example_weighted=example_weighted))
    # TFMA's own de-duplication and ordering.
    non_derived, derived, _, _ = mpve._filter_and_separate_computations(computations)
    return non_derived, derived


def _evaluate(metrics, inputs, example_weighted: bool, combiner_wrap=lambda c: c) -> dict:
    """Runs metrics the way TFMA's evaluator does, without Beam.

    Each example goes to slice "all" and to one of three others, one after
    the other, as TFMA's slice fan-out hands it on; each slice's examples
    are split in two accumulators, merged at the end.
    """
    non_derived, derived = _computations(metrics, example_weighted)
    slices = ["all", "s0", "s1", "s2"]
    per_slice: dict[str, dict] = {s: {} for s in slices}
    for computation in non_derived:
        combiner = combiner_wrap(computation.combiner)
        combiner.setup()
        accumulators = {(s, half): combiner.create_accumulator() for s in slices for half in (0, 1)}
        for i, element in enumerate(inputs):
            half = int(i >= len(inputs) // 2)
            for s in ("all", f"s{i % 3}"):
                accumulators[s, half] = combiner.add_input(accumulators[s, half], element)
        for s in slices:
            merged = combiner.merge_accumulators([accumulators[s, 0], accumulators[s, 1]])
            per_slice[s].update(combiner.extract_output(merged))
    for results in per_slice.values():
        for computation in derived:
            results.update(computation.result(results))
    return {
        s: {key.name: value for key, value in results.items() if key.name in NAMES}
        for s, results in per_slice.items()
    }


def _data(labels: str, weights: str, n: int = 3001):
    rng = np.random.default_rng(7)
    label_values = rng.integers(0, 2, n).astype(float) if labels == "binary" else rng.random(n)
    weight_values = np.ones(n) if weights == "unit" else rng.random(n) * 3
    # Predictions on the histogram's edges, on the 0.5 threshold and outside
    # [0, 1] land in its catch-all buckets, which must count too.
    predictions = np.concatenate([rng.random(n - 6), [0.0, 1.0, -0.5, 1.5, 0.5, 0.50001]])
    return label_values, predictions, weight_values


def _assert_equal(ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys()
    for s in ours:
        assert sorted(ours[s]) == sorted(NAMES), s
        for name in ("auc", "binary_accuracy", "precision", "recall"):
            # The same counts, added in the same order: the same floats.
            assert ours[s][name] == theirs[s][name], (s, name)
        # Sums over buckets against TFMA's running sums: equal to rounding.
        assert math.isclose(ours[s]["mean_label"], theirs[s]["mean_label"], rel_tol=1e-12), s


@pytest.mark.parametrize(
    "labels, weights, example_weighted",
    [
        ("binary", "unit", False),
        ("binary", "random", True),
        ("fractional", "random", True),
    ],
)
def test_every_metric_is_tfmas(labels: str, weights: str, example_weighted: bool) -> None:
    label_values, predictions, weight_values = _data(labels, weights)
    inputs = _inputs(label_values, predictions, weight_values)

    ours = _evaluate(OURS, inputs, example_weighted)
    theirs = _evaluate(THEIRS, inputs, example_weighted)
    _assert_equal(ours, theirs)
    if labels == "binary" and weights == "unit":
        assert ours["all"]["mean_label"] == theirs["all"]["mean_label"] == label_values.mean()


def test_each_example_is_converted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    label_values, predictions, weight_values = _data("binary", "unit", n=300)
    inputs = _inputs(label_values, predictions, weight_values)
    convert = metric_util.to_label_prediction_example_weight
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return convert(*args, **kwargs)

    monkeypatch.setattr(metric_util, "to_label_prediction_example_weight", counted)
    _evaluate(OURS, inputs, example_weighted=False)
    assert len(calls) == len(inputs)
    calls.clear()
    # TFMA's AUC alone converts each example once per slice (its matrices
    # combiner bound the function before the patch, so only the histogram's
    # conversions are counted here).
    _evaluate([tfma.metrics.AUC()], inputs, example_weighted=False)
    assert len(calls) == 2 * len(inputs)


def test_the_combiner_pickles_without_its_last_example() -> None:
    label_values, predictions, weight_values = _data("binary", "random", n=500)
    inputs = _inputs(label_values, predictions, weight_values)

    def through_pickle(combiner):
        combiner.add_input(combiner.create_accumulator(), inputs[0])  # something to forget
        copy = pickler.loads(pickler.dumps(combiner))
        if isinstance(copy, binary_metrics._BinaryCountsCombiner):
            assert copy._convert._last is None
            # One conversion object for both halves, after pickling too.
            assert copy._matrices._extract_label_prediction_and_weight is copy._convert
        return copy

    _assert_equal(
        _evaluate(OURS, inputs, True, combiner_wrap=through_pickle),
        _evaluate(THEIRS, inputs, True),
    )


def test_an_empty_slice_has_no_mean_label() -> None:
    [results] = _evaluate([binary_metrics.HistogramMeanLabel()], [], False)["all"].values()
    assert math.isnan(results)


def test_one_class_reads_as_zero_or_one() -> None:
    metric = [binary_metrics.HistogramMeanLabel()]
    inputs = _inputs(np.zeros(10), np.linspace(0, 1, 10), np.ones(10))
    assert _evaluate(metric, inputs, False)["all"]["mean_label"] == 0.0
    inputs = _inputs(np.ones(10), np.linspace(0, 1, 10), np.ones(10))
    assert _evaluate(metric, inputs, False)["all"]["mean_label"] == 1.0


def test_other_thresholds_keep_tfmas_computation() -> None:
    ours = binary_metrics.OnePassPrecision(thresholds=[0.3])
    non_derived, _ = _computations([ours], example_weighted=False)
    assert [type(c.combiner).__name__ for c in non_derived] == ["_BinaryConfusionMatrixCombiner"]
    label_values, predictions, weight_values = _data("binary", "unit", n=400)
    inputs = _inputs(label_values, predictions, weight_values)
    assert _evaluate([ours], inputs, False) == _evaluate(
        [tfma.metrics.Precision(thresholds=[0.3])], inputs, False
    )


def _per_example_combiners(config: tfma.EvalConfig) -> list[str]:
    """The distinct per-example computations: TFMA runs equal ones (same combiner, keys) once."""
    computations = metric_specs.to_computations(list(config.metrics_specs), config)
    non_derived, _, _, _ = mpve._filter_and_separate_computations(computations)
    return sorted(type(c.combiner).__name__ for c in non_derived)


def test_the_binary_eval_has_two_per_example_combiners() -> None:
    config = make_eval_config(EvalSpec("binary", "auc"), min_value=0.5, max_drop=0.01)
    # Every reported metric from one combiner; the example count its own.
    assert _per_example_combiners(config) == ["_BinaryCountsCombiner", "_ExampleCountCombiner"]
    # With TFMA's own classes: the histogram, the matrices at 0.5, the
    # count and MeanLabel's sums.
    spec = config.metrics_specs[0]
    for metric in spec.metrics:
        metric.class_name = {"HistogramMeanLabel": "MeanLabel"}.get(
            metric.class_name, metric.class_name.removeprefix("OnePass")
        )
        metric.module = ""
    assert len(_per_example_combiners(config)) == 4
