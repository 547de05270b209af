"""Serving signatures of every exported model, all applying the tf.Transform graph inside it.

- `serving_default`: serialized tf.Examples of raw features (gRPC Predict,
  TFMA, batch scoring).
- `serving_raw`: raw feature tensors by name, so TF Serving's REST API takes
  `{"instances": [{"fare": 12.5, "company": "Flash Cab", ...}]}`, raw text
  included: tokenizing happens in the graph.
- `transform_features`: serialized tf.Examples (label columns included) to
  transformed features; TFMA computes the label with it.

Outputs by task: binary `probability` [batch, 1]; multiclass `probabilities`
[batch, K] and `classes` [batch, K], the class names in the same order.
The names are in components/contracts.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components import contracts
from components.training.data import as_model_input
from components.workload import BINARY, MULTICLASS


def raw_input_specs(raw_spec: dict[str, Any], columns: Sequence[str]) -> dict[str, tf.TensorSpec]:
    """TensorSpecs of the `serving_raw` signature: one [batch] tensor per serving column."""
    return {name: tf.TensorSpec([None], raw_spec[name].dtype, name=name) for name in columns}


def as_parsed(x: tf.Tensor, spec: tf.io.FixedLenFeature | tf.io.VarLenFeature) -> Any:
    """Shapes a [batch] tensor the way tf.io.parse_example would under `spec`.

    The transform graph was traced on parsed tf.Examples: required columns as
    dense [batch, *shape] tensors, optional ones as [batch, 1] SparseTensors.
    """
    if isinstance(spec, tf.io.FixedLenFeature):
        return tf.reshape(x, [-1, *spec.shape])
    rows = tf.range(tf.shape(x, out_type=tf.int64)[0])
    indices = tf.stack([rows, tf.zeros_like(rows)], axis=1)
    return tf.SparseTensor(indices, x, tf.stack([tf.shape(x, out_type=tf.int64)[0], 1]))


def class_names(tft_output: tft.TFTransformOutput) -> list[str]:
    """The multiclass label's classes, index = class id: the label vocabulary's order,
    then the OOV bucket's `contracts.UNSEEN_CLASS`."""
    seen = [
        c.decode() if isinstance(c, bytes) else str(c)
        for c in tft_output.vocabulary_by_name(contracts.LABEL_VOCABULARY)
    ]
    return seen + [contracts.UNSEEN_CLASS] * contracts.LABEL_OOV_BUCKETS


def make_serving_signatures(
    model: tf.keras.Model,
    tft_output: tft.TFTransformOutput,
    serving_columns: Sequence[str],
    task: str,
) -> dict[str, Callable[..., Any]]:
    """Builds the concrete functions to pass as `signatures=` to `model.save`.

    The transform layer is attached to the model so that it is saved with it.

    Args:
        model: The trained model (inputs keyed by transformed feature name).
        tft_output: The Transform component's output.
        serving_columns: Raw columns a request carries: the workload's features.
        task: binary or multiclass.

    Returns:
        Concrete functions keyed by signature name.

    Raises:
        ValueError: The schema Transform used lacks a serving column, or the
            task is unknown.
    """
    if task not in (BINARY, MULTICLASS):
        raise ValueError(f"unknown task {task!r}")
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    missing = [c for c in serving_columns if c not in raw_spec]
    if missing:
        raise ValueError(f"the schema used by Transform lacks the serving columns {missing}")
    serving_spec = {name: raw_spec[name] for name in serving_columns}
    model_inputs = list(model.input_names)
    names = tf.constant(class_names(tft_output)) if task == MULTICLASS else None

    def predict(transformed: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        features = {name: as_model_input(transformed[name]) for name in model_inputs}
        output = model(features)
        if names is None:
            return {contracts.PROBABILITY: output}
        rows = tf.shape(output)[0]
        return {
            contracts.PROBABILITIES: output,
            contracts.CLASSES: tf.tile(tf.expand_dims(names, 0), [rows, 1]),
        }

    examples = tf.TensorSpec([None], tf.string, name=contracts.SERVING_DEFAULT_INPUT)

    @tf.function(input_signature=[examples])
    def serve_tf_examples(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(examples, serving_spec)
        return predict(model.tft_layer(raw))

    @tf.function(input_signature=[raw_input_specs(raw_spec, serving_columns)])
    def serve_raw(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        raw = {name: as_parsed(value, serving_spec[name]) for name, value in features.items()}
        return predict(model.tft_layer(raw))

    @tf.function(input_signature=[examples])
    def transform_features(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(examples, raw_spec)
        return model.tft_layer(raw)

    return {
        contracts.SERVING_DEFAULT: serve_tf_examples.get_concrete_function(),
        contracts.SERVING_RAW: serve_raw.get_concrete_function(),
        contracts.TRANSFORM_FEATURES: transform_features.get_concrete_function(),
    }
