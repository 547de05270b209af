"""tf.data input pipeline over the Transform component's transformed TFRecords."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf

from components.features import LABEL


def make_dataset(
    file_patterns: Sequence[str],
    feature_spec: Mapping[str, Any],
    batch_size: int,
    shuffle: bool,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Reads transformed examples as an endless stream of (features, label) batches.

    Files are read in parallel (interleave), decoded per batch (parse after
    batching is much cheaper than per record) and prefetched.

    Args:
        file_patterns: Glob patterns of GZIP TFRecord files of tf.Examples.
        feature_spec: Transformed feature spec, e.g.
            `TFTransformOutput.transformed_feature_spec()`; must hold the label.
        batch_size: Examples per batch.
        shuffle: Shuffle files and records (training) or keep order (eval).
        seed: Shuffle seed, for reproducible tests.

    Returns:
        A repeating dataset of ({transformed name: [batch, 1]}, [batch, 1]).

    Raises:
        ValueError: No file matches the patterns, or the spec has no label.
    """
    if LABEL.name not in feature_spec:
        raise ValueError(f"feature spec has no label {LABEL.name!r}: {sorted(feature_spec)}")
    files = [path for pattern in file_patterns for path in tf.io.gfile.glob(pattern)]
    if not files:
        raise ValueError(f"no transformed example files match {list(file_patterns)}")

    spec = dict(feature_spec)

    def parse(serialized: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        parsed = tf.io.parse_example(serialized, spec)
        label = tf.reshape(parsed.pop(LABEL.name), [-1, 1])
        return {k: tf.reshape(v, [-1, 1]) for k, v in parsed.items()}, label

    dataset = tf.data.Dataset.from_tensor_slices(sorted(files))
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP"),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle,
    )
    if shuffle:
        dataset = dataset.shuffle(buffer_size=max(10 * batch_size, 1000), seed=seed)
    return (
        dataset.repeat()
        .batch(batch_size)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
