"""tf.Transform `preprocessing_fn`: the only place raw features are transformed.

It runs inside the Transform component (full-pass analyzers over the training
split) and, through the exported transform graph, inside every serving
signature, so training and serving preprocessing cannot drift.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components.features import FEATURES, LABEL, Feature, Kind, RawType

_TF_DTYPES = {RawType.FLOAT: tf.float32, RawType.INT: tf.int64, RawType.STRING: tf.string}

TensorLike = Any  # tf.Tensor | tf.SparseTensor | tf.RaggedTensor


def fill_missing(x: TensorLike, default: float | int | str) -> tf.Tensor:
    """Turns a column of at most one value per row into a dense [batch] tensor.

    Columns that may be missing arrive as SparseTensors of dense shape
    [batch, 1] (or [batch, None]); empty rows take `default`.

    Args:
        x: The raw column as parsed from tf.Examples.
        default: Fill value for empty rows.

    Returns:
        A rank-1 dense tensor with one value per row.
    """
    if isinstance(x, tf.RaggedTensor):
        x = x.to_sparse()
    if isinstance(x, tf.SparseTensor):
        default_value = tf.constant(default, dtype=x.dtype)
        one_column = tf.SparseTensor(x.indices, x.values, tf.stack([x.dense_shape[0], 1]))
        return tf.squeeze(tf.sparse.to_dense(one_column, default_value=default_value), axis=1)
    if x.shape.rank == 2:
        return tf.squeeze(x, axis=1)
    return x


def transform_feature(f: Feature, raw: tf.Tensor) -> tf.Tensor:
    """Applies the registered transformation of one feature to its dense column."""
    if f.kind is Kind.NUMERIC:
        return tft.scale_to_z_score(tf.cast(raw, tf.float32))
    if f.kind is Kind.BUCKETIZED:
        return tft.bucketize(tf.cast(raw, tf.float32), num_buckets=f.num_buckets)
    if f.kind is Kind.IDENTITY:
        # The schema's int_domain rejects out-of-range values at validation
        # time; clipping keeps a bad serving request from crashing the lookup.
        return tf.clip_by_value(tf.cast(raw, tf.int64), 0, f.num_buckets - 1)
    if f.kind is Kind.VOCABULARY:
        as_string = raw if f.raw_type is RawType.STRING else tf.strings.as_string(raw)
        return tft.compute_and_apply_vocabulary(
            as_string,
            top_k=f.top_k,
            num_oov_buckets=f.oov_buckets,
            vocab_filename=f.vocabulary_name,
        )
    raise ValueError(f"feature {f.name!r} has unsupported kind {f.kind!r}")


def compute_label(tips: tf.Tensor, fare: tf.Tensor) -> tf.Tensor:
    """1 where the tip is more than LABEL.threshold of a positive fare, else 0."""
    tips = tf.cast(tips, tf.float32)
    fare = tf.cast(fare, tf.float32)
    big = tf.logical_and(fare > 0.0, tips > LABEL.threshold * fare)
    return tf.cast(big, tf.int64)


def preprocessing_fn(inputs: dict[str, TensorLike]) -> dict[str, tf.Tensor]:
    """tf.Transform callback: raw feature dict in, transformed feature dict out.

    Args:
        inputs: Raw columns keyed by name, as parsed with the curated schema.
            At serving time the label's input (tips) is absent and
            tf.Transform prunes the label output, which depends on it.

    Returns:
        `<name>_xf` for every registered feature, plus the label.
    """
    outputs: dict[str, tf.Tensor] = {}
    for f in FEATURES:
        if f.name not in inputs:
            raise KeyError(f"preprocessing_fn: raw feature {f.name!r} missing from the inputs")
        raw = fill_missing(inputs[f.name], f.default)
        outputs[f.transformed_name] = transform_feature(f, raw)
    tips = fill_missing(inputs[LABEL.tips_column], 0.0)
    fare = fill_missing(inputs[LABEL.fare_column], 0.0)
    outputs[LABEL.name] = compute_label(tips, fare)
    return outputs
