"""The declarative package's Keras model: wide and deep over the transformed features.

The wide part is linear: one weight per category (and per class), and for
text one weight per token, summed over the tokens (a bag of words). The deep
part is an MLP over the z-scored numerics, an embedding per categorical
feature, and per text feature its token embeddings averaged (`embedding`)
or summed (`bag_of_words`), padding masked out. The two logits are added
and squashed: a sigmoid for binary, a softmax over the classes for
multiclass. Under a mixed-precision policy the layers compute in float16 or
bfloat16; the output stays float32.
"""

from __future__ import annotations

import tensorflow as tf

from components import contracts
from components.model_package import ModelContext
from components.workload import BINARY, CATEGORICAL, NUMERIC, TEXT, FeatureSpec


class MaskedSum(tf.keras.layers.Layer):
    """Sums token embeddings [batch, tokens, dim] over the tokens, skipping padding."""

    def __init__(self, **kwargs: object):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        if mask is not None:
            inputs = inputs * tf.cast(tf.expand_dims(mask, -1), inputs.dtype)
        return tf.reduce_sum(inputs, axis=1)

    def compute_mask(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> None:
        return None


def index_range(name: str, spec: FeatureSpec, tft_output: object) -> int:
    """How many distinct ids a categorical, bucketized or text feature's transform emits.

    Text ids are shifted by one (0 is padding), so they need one more.
    """
    if spec.kind == NUMERIC:
        if not spec.buckets:
            raise ValueError(f"feature {name!r} is a plain numeric and has no index range")
        return spec.buckets
    size = int(tft_output.vocabulary_size_by_name(contracts.vocabulary_name(name)))  # type: ignore[attr-defined]
    return size + spec.oov_buckets + (1 if spec.kind == TEXT else 0)


def build_model(context: ModelContext) -> tf.keras.Model:
    """Builds and compiles the wide-and-deep model for the workload.

    Args:
        context: The workload, the trainer settings and the Transform output.

    Returns:
        A compiled model whose inputs are keyed by transformed feature name
        ([batch, 1], text [batch, max_tokens]) and whose output is [batch, 1]
        P(positive) (binary) or [batch, K] class probabilities (multiclass).
    """
    workload, settings = context.workload, context.trainer
    units = 1 if workload.task == BINARY else context.num_classes
    inputs: dict[str, tf.keras.Input] = {}
    wide: list[tf.Tensor] = []
    deep: list[tf.Tensor] = []
    for name, spec in workload.features.items():
        key = contracts.transformed_name(name)
        if spec.kind == NUMERIC and not spec.buckets:
            inputs[key] = tf.keras.Input(shape=(1,), name=key, dtype=tf.float32)
            deep.append(inputs[key])
            continue
        size = index_range(name, spec, context.tft_output)
        dim = spec.embedding_dim or settings.embedding_dim
        if spec.kind == TEXT:
            inputs[key] = tf.keras.Input(shape=(spec.token_cap,), name=key, dtype=tf.int64)
            tokens = tf.keras.layers.Embedding(size, units, mask_zero=True, name=f"{name}_wide")
            wide.append(MaskedSum(name=f"{name}_bag")(tokens(inputs[key])))
            embedded = tf.keras.layers.Embedding(
                size, dim, mask_zero=True, name=f"{name}_embedding"
            )(inputs[key])
            pooled = (
                tf.keras.layers.GlobalAveragePooling1D(name=f"{name}_mean")(embedded)
                if spec.text_encoding == "embedding"
                else MaskedSum(name=f"{name}_sum")(embedded)
            )
            deep.append(pooled)
            continue
        inputs[key] = tf.keras.Input(shape=(1,), name=key, dtype=tf.int64)
        # A linear model over a one-hot column is one weight per category:
        # an embedding of width 1 (per class). Unlike one_hot CategoryEncoding
        # (a bincount guarded by tf.Assert) it compiles under XLA, where the
        # one-hot version ran ~120x slower (bench/bench_wide_xla.py).
        wide.append(
            tf.keras.layers.Flatten()(
                tf.keras.layers.Embedding(size, units, name=f"{name}_wide")(inputs[key])
            )
        )
        if spec.kind == CATEGORICAL or spec.buckets:
            embedded = tf.keras.layers.Embedding(size, dim, name=f"{name}_embedding")(inputs[key])
            deep.append(tf.keras.layers.Flatten()(embedded))

    x = deep[0] if len(deep) == 1 else tf.keras.layers.concatenate(deep, name="deep_features")
    for i, width in enumerate(settings.hidden_units):
        x = tf.keras.layers.Dense(width, activation="relu", name=f"deep_{i}")(x)
    logit = tf.keras.layers.Dense(units, name="deep_logit")(x)
    if wide:
        wide_logit = wide[0] if len(wide) == 1 else tf.keras.layers.Add(name="wide_logit")(wide)
        logit = tf.keras.layers.Add(name="logit")([wide_logit, logit])

    if workload.task == BINARY:
        output = tf.keras.layers.Activation("sigmoid", dtype="float32", name="probability")(logit)
        loss: tf.keras.losses.Loss = tf.keras.losses.BinaryCrossentropy()
        metrics: list[object] = [
            tf.keras.metrics.AUC(name="auc"),
            tf.keras.metrics.BinaryAccuracy(),
        ]
    else:
        output = tf.keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logit)
        loss = tf.keras.losses.SparseCategoricalCrossentropy()
        metrics = [tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    model = tf.keras.Model(inputs=inputs, outputs=output, name="wide_and_deep")
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=settings.learning_rate),
        loss=loss,
        metrics=metrics,
        steps_per_execution=context.steps_per_execution,
        jit_compile=context.jit_compile,
    )
    return model
