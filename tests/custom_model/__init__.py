"""A team's own model package, as docs/model_packages.md builds it step by step.

A multinomial logistic regression over the numeric features only, with its
own preprocessing: each numeric column scaled to [0, 1]. The docs quote this
file; tests/test_workloads.py runs the whole pipeline with it.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components import contracts
from components.model_package import ModelContext, workload_of
from components.workload import BINARY, NUMERIC, graph_fill
from models.declarative.preprocessing import dtype_name, fill_missing, parse_numbers


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """Numeric features scaled to [0, 1]; the label as a class id."""
    workload = workload_of(custom_config)
    outputs = {}
    for name, spec in workload.features.items():
        if spec.kind != NUMERIC:
            raise ValueError(f"model.features.{name}: this package takes numeric features only")
        raw = inputs[name]
        fill = graph_fill(name, spec, dtype_name(raw))  # what clients send for an empty cell
        if raw.dtype == tf.string:  # numbers written with NA for missing
            value = parse_numbers(fill_missing(raw, ""), float(fill))
        else:
            value = tf.cast(fill_missing(raw, fill), tf.float32)
        outputs[contracts.transformed_name(name)] = tft.scale_to_0_1(value)
    label = fill_missing(inputs[workload.label.column], "")
    outputs[contracts.LABEL_KEY] = tft.compute_and_apply_vocabulary(
        label,
        num_oov_buckets=contracts.LABEL_OOV_BUCKETS,  # a class only the eval split holds
        vocab_filename=contracts.LABEL_VOCABULARY,
    )
    return outputs


def build_model(context: ModelContext) -> tf.keras.Model:
    """One dense softmax layer over the scaled numbers."""
    if context.workload.task == BINARY:
        raise ValueError("this package predicts classes: set model.label.task: multiclass")
    names = [contracts.transformed_name(n) for n in context.workload.features]
    inputs = {n: tf.keras.Input(shape=(1,), name=n, dtype=tf.float32) for n in names}
    x = tf.keras.layers.concatenate(list(inputs.values()))
    probabilities = tf.keras.layers.Dense(
        context.num_classes, activation="softmax", dtype="float32"
    )(x)
    model = tf.keras.Model(inputs, probabilities)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=context.trainer.learning_rate),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=context.steps_per_execution,
        jit_compile=context.jit_compile,
    )
    return model
