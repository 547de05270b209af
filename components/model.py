"""The Keras wide-and-deep model over the transformed features."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_transform as tft

from components.features import FEATURES, Feature, Kind


@dataclass(frozen=True)
class ModelParams:
    """Architecture and optimiser settings.

    Attributes:
        hidden_units: Widths of the deep tower's dense layers.
        embedding_dim: Embedding width of each categorical feature.
        learning_rate: Adam learning rate.
        steps_per_execution: Batches per compiled training call; for a
            model this small on CPU, Python overhead per step dominates.
        jit_compile: Compile the train step with XLA.
    """

    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    learning_rate: float = 0.001
    steps_per_execution: int = 1
    jit_compile: bool = False


def cardinality(f: Feature, tft_output: tft.TFTransformOutput) -> int:
    """Number of distinct indices a categorical feature's transform can emit."""
    if f.kind is Kind.VOCABULARY:
        return int(tft_output.vocabulary_size_by_name(f.vocabulary_name)) + f.oov_buckets
    if f.kind in (Kind.BUCKETIZED, Kind.IDENTITY):
        return f.num_buckets
    raise ValueError(f"feature {f.name!r} is numeric and has no cardinality")


def cardinalities(tft_output: tft.TFTransformOutput) -> dict[str, int]:
    """`cardinality` of every categorical feature, keyed by raw name."""
    return {f.name: cardinality(f, tft_output) for f in FEATURES if f.is_categorical}


def build_model(category_sizes: Mapping[str, int], params: ModelParams) -> tf.keras.Model:
    """Builds and compiles the wide-and-deep classifier.

    The wide part is a linear model over one-hot categorical features (one
    weight per category); the deep part is an MLP over the z-scored numerics
    and per-feature embeddings. Their logits are summed and squashed to
    P(big tipper).

    Under a mixed-precision Keras policy the layers compute in float16 or
    bfloat16; the output stays float32, so the loss, the metrics and the
    serving signatures see full-precision probabilities.

    Args:
        category_sizes: Index range of each categorical feature (raw name ->
            size), e.g. from `cardinalities(tft_output)`.
        params: Architecture and optimiser settings.

    Returns:
        A compiled model whose inputs are keyed by transformed feature name
        (shape [batch, 1]) and whose output is a [batch, 1] probability.

    Raises:
        KeyError: A categorical feature has no entry in `category_sizes`.
    """
    inputs: dict[str, tf.keras.Input] = {}
    wide: list[tf.Tensor] = []
    deep: list[tf.Tensor] = []
    for f in FEATURES:
        if f.kind is Kind.NUMERIC:
            inp = tf.keras.Input(shape=(1,), name=f.transformed_name, dtype=tf.float32)
            deep.append(inp)
        else:
            if f.name not in category_sizes:
                raise KeyError(f"build_model: no category size for feature {f.name!r}")
            size = int(category_sizes[f.name])
            inp = tf.keras.Input(shape=(1,), name=f.transformed_name, dtype=tf.int64)
            # A linear model over a one-hot column is one weight per category:
            # an embedding of width 1. Unlike one_hot CategoryEncoding (a
            # bincount guarded by tf.Assert) it compiles under XLA, where the
            # one-hot version ran ~120x slower (bench/bench_wide_xla.py).
            wide.append(
                tf.keras.layers.Flatten()(
                    tf.keras.layers.Embedding(size, 1, name=f"{f.name}_wide")(inp)
                )
            )
            embedded = tf.keras.layers.Embedding(
                size, params.embedding_dim, name=f"{f.name}_embedding"
            )(inp)
            deep.append(tf.keras.layers.Flatten()(embedded))
        inputs[f.transformed_name] = inp

    wide_logit = wide[0] if len(wide) == 1 else tf.keras.layers.Add(name="wide_logit")(wide)
    x = tf.keras.layers.concatenate(deep, name="deep_features")
    for i, units in enumerate(params.hidden_units):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"deep_{i}")(x)
    deep_logit = tf.keras.layers.Dense(1, name="deep_logit")(x)
    logit = tf.keras.layers.Add(name="logit")([wide_logit, deep_logit])
    probability = tf.keras.layers.Activation("sigmoid", dtype="float32", name="probability")(logit)

    model = tf.keras.Model(inputs=inputs, outputs=probability, name="wide_and_deep")
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=params.learning_rate),
        loss=tf.keras.losses.BinaryCrossentropy(),
        metrics=[tf.keras.metrics.AUC(name="auc"), tf.keras.metrics.BinaryAccuracy()],
        steps_per_execution=params.steps_per_execution,
        jit_compile=params.jit_compile,
    )
    return model
