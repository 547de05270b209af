"""Serving signatures, all applying the tf.Transform graph inside the model.

- `serving_default`: serialized tf.Examples of raw features (gRPC Predict,
  TFMA, batch scoring).
- `serving_raw`: raw feature tensors by name, so TF Serving's REST API takes
  `{"instances": [{"fare": 12.5, "company": "Flash Cab", ...}]}`.
- `transform_features`: serialized tf.Examples (label columns included) to
  transformed features; TFMA uses it to compute the label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components.features import FEATURES, RawType, serving_columns

SERVING_DEFAULT = "serving_default"
SERVING_RAW = "serving_raw"
TRANSFORM_FEATURES = "transform_features"
OUTPUT_KEY = "probability"

_TF_DTYPES = {RawType.FLOAT: tf.float32, RawType.INT: tf.int64, RawType.STRING: tf.string}


def raw_input_specs() -> dict[str, tf.TensorSpec]:
    """TensorSpecs of the `serving_raw` signature: one [batch] tensor per feature."""
    return {f.name: tf.TensorSpec([None], _TF_DTYPES[f.raw_type], name=f.name) for f in FEATURES}


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


def make_serving_signatures(
    model: tf.keras.Model, tft_output: tft.TFTransformOutput
) -> dict[str, Callable[..., Any]]:
    """Builds the concrete functions to pass as `signatures=` to `model.save`.

    The transform layer is attached to the model so that it is saved with it.

    Args:
        model: The trained model (inputs keyed by transformed feature name).
        tft_output: The Transform component's output.

    Returns:
        Concrete functions keyed by signature name.
    """
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    missing = [c for c in serving_columns() if c not in raw_spec]
    if missing:
        raise ValueError(f"schema used by Transform lacks serving features {missing}")
    serving_spec = {name: raw_spec[name] for name in serving_columns()}
    model_inputs = list(model.input_names)

    def predict(transformed: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        features = {name: tf.reshape(transformed[name], [-1, 1]) for name in model_inputs}
        return {OUTPUT_KEY: model(features)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(examples, serving_spec)
        return predict(model.tft_layer(raw))

    @tf.function(input_signature=[raw_input_specs()])
    def serve_raw(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        raw = {name: as_parsed(value, serving_spec[name]) for name, value in features.items()}
        return predict(model.tft_layer(raw))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(examples, raw_spec)
        return model.tft_layer(raw)

    return {
        SERVING_DEFAULT: serve_tf_examples.get_concrete_function(),
        SERVING_RAW: serve_raw.get_concrete_function(),
        TRANSFORM_FEATURES: transform_features.get_concrete_function(),
    }
