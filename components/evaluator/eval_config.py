"""The TFMA EvalConfig, derived from the task: metrics, slices and the blessing thresholds.

The model is scored through `serving_default` on raw eval examples; the
label comes from `transform_features`, i.e. from the same transform graph
that computed it for training.

| task       | metrics                                           | gated metric         |
|------------|---------------------------------------------------|----------------------|
| binary     | AUC, binary accuracy, precision, recall, mean label | auc, binary_accuracy |
| multiclass | accuracy (top-1), confusion matrix (class recall) | accuracy             |
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import tensorflow_model_analysis as tfma

from components import contracts
from components.errors import ConfigError
from components.evaluator import binary_metrics
from components.workload import BINARY, MULTICLASS, TASKS

# Metric names as TFMA reports them, by task; the first is the default gate.
METRICS = {
    # mean_label: the share of positive labels; 0 or 1 says the eval split
    # holds one class, where AUC is undefined (TFMA reports 0).
    BINARY: ("auc", "binary_accuracy", "precision", "recall", "mean_label"),
    MULTICLASS: ("accuracy",),
}
GATE_METRICS = contracts.GATE_METRICS
# The metric class, by metric name: TFMA's binary metrics, fed by one
# conversion of each eval example (binary_metrics).
_METRIC_CLASS = {
    "auc": binary_metrics.OnePassAUC,
    "binary_accuracy": binary_metrics.OnePassBinaryAccuracy,
    "precision": binary_metrics.OnePassPrecision,
    "recall": binary_metrics.OnePassRecall,
    "mean_label": binary_metrics.HistogramMeanLabel,
}


@dataclass(frozen=True)
class EvalSpec:
    """What the Evaluator needs to know of the workload.

    Attributes:
        task: binary or multiclass.
        metric: The metric the thresholds gate (see GATE_METRICS).
        slice_by: Raw columns to report metrics for, value by value.
    """

    task: str
    metric: str
    slice_by: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"model.label.task must be one of {', '.join(TASKS)}")
        if self.metric not in GATE_METRICS[self.task]:
            raise ConfigError(
                f"evaluator.metric={self.metric!r} does not suit a {self.task} label; one of "
                f"{', '.join(GATE_METRICS[self.task])}"
            )

    @property
    def prediction_key(self) -> str:
        return contracts.PROBABILITY if self.task == BINARY else contracts.PROBABILITIES

    def to_json(self) -> str:
        return json.dumps(
            {"task": self.task, "metric": self.metric, "slice_by": list(self.slice_by)},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> EvalSpec:
        values = json.loads(text)
        spec = cls(values["task"], values["metric"], tuple(values.get("slice_by", ())))
        spec.validate()
        return spec


def _threshold(min_value: float, max_drop: float) -> list[tfma.PerSliceMetricThreshold]:
    # A plain `threshold` would gate every slice too, and a one-class slice
    # (a quiet hour) has an AUC of 0.
    return [
        tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec()],
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_value}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={"value": -max_drop},
                ),
            ),
        )
    ]


def _metrics_specs(spec: EvalSpec, min_value: float, max_drop: float) -> list[tfma.MetricsSpec]:
    gate = _threshold(min_value, max_drop)
    if spec.task == BINARY:
        configs = [tfma.MetricConfig(class_name="ExampleCount")]
        for name in METRICS[BINARY]:
            metric_class = _METRIC_CLASS[name]
            configs.append(
                tfma.MetricConfig(
                    class_name=metric_class.__name__,
                    module=metric_class.__module__,
                    per_slice_thresholds=gate if name == spec.metric else [],
                )
            )
        return [tfma.MetricsSpec(metrics=configs)]
    return [
        tfma.MetricsSpec(
            metrics=[
                tfma.MetricConfig(class_name="ExampleCount"),
                tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
            ]
        ),
        # With one label per example, the precision of the top-1 class is the
        # accuracy. Top-1 is set on the spec, not the metric, so that the
        # threshold's key carries the same top_k sub-key as the metric's.
        tfma.MetricsSpec(
            metrics=[
                tfma.MetricConfig(
                    class_name="Precision",
                    config=json.dumps({"name": "accuracy"}),
                    per_slice_thresholds=gate,
                )
            ],
            binarize=tfma.BinarizationOptions(top_k_list={"values": [1]}),
        ),
    ]


def make_eval_config(spec: EvalSpec, min_value: float, max_drop: float) -> tfma.EvalConfig:
    """Builds the Evaluator's config.

    Args:
        spec: The task, the gated metric and the slice columns.
        min_value: Value threshold: the metric must be at least this.
        max_drop: Change threshold: the metric may fall at most this much
            below the baseline's. TFX ignores it when there is no baseline.

    Returns:
        The EvalConfig: metrics overall and per `slice_by` value; the
        thresholds gate the overall slice only.
    """
    return tfma.EvalConfig(
        # Only the metrics below; not also the Keras metrics compiled into
        # the model, which would report a second, differently computed AUC.
        options=tfma.Options(include_default_metrics={"value": False}),
        model_specs=[
            tfma.ModelSpec(
                signature_name=contracts.SERVING_DEFAULT,
                # Our Trainer exports Keras models; without the type, TFMA
                # loads each model once more only to find that out.
                model_type=tfma.TF_KERAS,
                label_key=contracts.LABEL_KEY,
                prediction_key=spec.prediction_key,
                preprocessing_function_names=[contracts.TRANSFORM_FEATURES],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[column]) for column in spec.slice_by],
        metrics_specs=_metrics_specs(spec, min_value, max_drop),
    )
