"""The TFMA EvalConfig: metrics, slices and the blessing thresholds."""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from components.features import LABEL, SLICE_COLUMNS
from components.signatures import OUTPUT_KEY, SERVING_DEFAULT, TRANSFORM_FEATURES

AUC = "AUC"


def make_eval_config(min_auc: float, max_auc_drop: float) -> tfma.EvalConfig:
    """Builds the Evaluator's config.

    The model is scored through `serving_default` on raw eval examples; the
    label comes from `transform_features`, i.e. from the same transform graph
    that computed it for training.

    Args:
        min_auc: Value threshold: AUC must be at least this.
        max_auc_drop: Change threshold: AUC may fall at most this much below
            the baseline's. TFX ignores it when there is no baseline.

    Returns:
        The EvalConfig: metrics overall and per SLICE_COLUMNS value; the
        thresholds gate the overall slice only.
    """
    return tfma.EvalConfig(
        # Only the metrics below; not also the Keras metrics compiled into
        # the model, which would report a second, differently computed AUC.
        options=tfma.Options(include_default_metrics={"value": False}),
        model_specs=[
            tfma.ModelSpec(
                signature_name=SERVING_DEFAULT,
                label_key=LABEL.name,
                prediction_key=OUTPUT_KEY,
                preprocessing_function_names=[TRANSFORM_FEATURES],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[column]) for column in SLICE_COLUMNS],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(class_name="BinaryAccuracy"),
                    tfma.MetricConfig(class_name="Precision"),
                    tfma.MetricConfig(class_name="Recall"),
                    tfma.MetricConfig(
                        class_name=AUC,
                        # A plain `threshold` would gate every slice too, and a
                        # one-class slice (a quiet hour) has an AUC of 0.
                        per_slice_thresholds=[
                            tfma.PerSliceMetricThreshold(
                                slicing_specs=[tfma.SlicingSpec()],
                                threshold=tfma.MetricThreshold(
                                    value_threshold=tfma.GenericValueThreshold(
                                        lower_bound={"value": min_auc}
                                    ),
                                    change_threshold=tfma.GenericChangeThreshold(
                                        direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                        absolute={"value": -max_auc_drop},
                                    ),
                                ),
                            )
                        ],
                    ),
                ]
            )
        ],
    )
