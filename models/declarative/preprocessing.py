"""tf.Transform `preprocessing_fn` of the declarative package, driven by the workload.

It runs inside the Transform component (full-pass analyzers over the training
split) and, through the exported transform graph, inside every serving
signature, so training and serving preprocessing cannot drift.

| kind        | transformed value                                                   |
|-------------|---------------------------------------------------------------------|
| numeric     | missing filled, z-score; with `buckets`: quantile bucket index      |
| categorical | top-k vocabulary index, OOV hash buckets after it                   |
| text        | token ids + 1, 0-padded to `max_tokens` (0 is padding)              |

A numeric feature over a string column (numbers written with `NA` or the
like for missing) is parsed here: a cell that is not a number counts as
missing and takes `fill`. A NaN or inf never reaches an analyzer: it takes
`fill` too.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components import contracts
from components.model_package import import_function, workload_of
from components.workload import (
    BINARY,
    CATEGORICAL,
    FLOAT,
    INT,
    NUMBER_PATTERN,
    NUMERIC,
    STRING,
    TEXT,
    FeatureSpec,
    LabelSpec,
    Scalar,
    graph_fill,
)
from models.declarative.text import pad_ids, tokenize

TensorLike = Any  # tf.Tensor | tf.SparseTensor | tf.RaggedTensor


def dtype_name(x: TensorLike) -> str:
    """float, int or string: the raw column's type as the schema parsed it."""
    if x.dtype == tf.string:
        return STRING
    return FLOAT if x.dtype.is_floating else INT


def fill_missing(x: TensorLike, default: Scalar) -> tf.Tensor:
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


def parse_numbers(text: tf.Tensor, fill: float) -> tf.Tensor:
    """Cells that are numbers as float32; anything else (NA, "", ?) as `fill`."""
    is_number = tf.strings.regex_full_match(text, NUMBER_PATTERN)
    safe = tf.where(is_number, text, tf.fill(tf.shape(text), "0"))
    values = tf.strings.to_number(safe, out_type=tf.float32)
    # "1e40" is a number but not a float32: it would be inf.
    usable = tf.logical_and(is_number, tf.math.is_finite(values))
    return tf.where(usable, values, tf.fill(tf.shape(values), tf.constant(fill, tf.float32)))


def as_category(x: tf.Tensor) -> tf.Tensor:
    """Categories as strings; a float's shortest form ("2", not "2.000000")."""
    if x.dtype == tf.string:
        return x
    if x.dtype.is_floating:
        return tf.strings.as_string(x, shortest=True)
    return tf.strings.as_string(x)


def transform_feature(name: str, spec: FeatureSpec, raw: TensorLike) -> tf.Tensor:
    """The transformed value of one feature (see the module's table)."""
    dtype = dtype_name(raw)
    fill = graph_fill(name, spec, dtype)
    if spec.kind == NUMERIC:
        if dtype == STRING:
            value = parse_numbers(fill_missing(raw, ""), float(fill))
        else:
            value = tf.cast(fill_missing(raw, fill), tf.float32)  # fill has the column's type
            # The gate refuses NaN and inf (the curated schema's float_domain); should a
            # schema allow them, they still never reach the analyzers' statistics.
            value = tf.where(tf.math.is_finite(value), value, float(fill))
        if spec.buckets:
            return tft.bucketize(value, num_buckets=spec.buckets)
        return tft.scale_to_z_score(value)
    if spec.kind == CATEGORICAL:
        return tft.compute_and_apply_vocabulary(
            as_category(fill_missing(raw, fill)),
            top_k=spec.vocabulary_cap,
            num_oov_buckets=spec.oov_buckets,
            vocab_filename=contracts.vocabulary_name(name),
        )
    if spec.kind == TEXT:
        tokens = tokenize(fill_missing(raw, fill), spec.token_cap)
        ids = tft.compute_and_apply_vocabulary(
            tokens,
            top_k=spec.vocabulary_cap,
            num_oov_buckets=spec.oov_buckets,
            vocab_filename=contracts.vocabulary_name(name),
        )
        return pad_ids(ids, spec.token_cap)
    raise ValueError(f"model.features.{name}: unsupported kind {spec.kind!r}")


def _zero(x: TensorLike) -> Scalar:
    return "" if x.dtype == tf.string else 0


def compute_label(label: LabelSpec, inputs: dict[str, TensorLike]) -> tf.Tensor:
    """The label: 0/1 (binary) or the class id from the label vocabulary (multiclass)."""
    missing = [c for c in label.columns if c not in inputs]
    if missing:
        raise KeyError(f"preprocessing_fn: label column(s) {missing} missing from the inputs")
    if label.derive:
        columns = {c: fill_missing(inputs[c], _zero(inputs[c])) for c in label.columns}
        value = import_function(label.derive, "model.label.derive")(columns)
    else:
        value = fill_missing(inputs[label.column], _zero(inputs[label.column]))
    if label.task == BINARY:
        if label.derive:
            return tf.cast(value, tf.int64)
        if value.dtype == tf.string:
            return tf.cast(tf.equal(value, label.positive_value), tf.int64)
        return tf.cast(tf.equal(tf.cast(value, tf.float64), float(label.positive_value)), tf.int64)
    # Every class of the training split, rare ones included (no top_k); a
    # class only the eval split holds takes the OOV id.
    return tft.compute_and_apply_vocabulary(
        as_category(value),
        num_oov_buckets=contracts.LABEL_OOV_BUCKETS,
        vocab_filename=contracts.LABEL_VOCABULARY,
    )


def preprocessing_fn(
    inputs: dict[str, TensorLike], custom_config: dict[str, Any]
) -> dict[str, tf.Tensor]:
    """tf.Transform callback: raw columns in, transformed features and the label out.

    Args:
        inputs: Raw columns keyed by name, as parsed with the curated schema.
            At serving time the label's columns are absent and tf.Transform
            prunes the label output, which depends on them.
        custom_config: `{"workload": ...}`, the configuration's `model` section.

    Returns:
        `<name>_xf` for every feature, plus the label under `label_xf`.
    """
    workload = workload_of(custom_config)
    outputs: dict[str, tf.Tensor] = {}
    for name, spec in workload.features.items():
        if name not in inputs:
            raise KeyError(f"preprocessing_fn: feature column {name!r} missing from the inputs")
        outputs[contracts.transformed_name(name)] = transform_feature(name, spec, inputs[name])
    outputs[contracts.LABEL_KEY] = compute_label(workload.label, inputs)
    return outputs
