"""tf.data input pipeline: examples in, transformed features and the label out, a batch at a time.

What the examples are is `trainer.examples` (components/training/settings.py):
ExampleGen's raw examples, put through the transform graph as they are read
(`transform_raw`), or the examples Transform wrote out transformed
(`parse_transformed`). `decoder` picks one; `make_dataset` does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf

from components.contracts import LABEL_KEY
from components.training.settings import RAW, TRANSFORMED

# A batch of serialized tf.Examples -> the transformed features, label included.
Decode = Callable[[tf.Tensor], dict[str, tf.Tensor]]


def as_model_input(x: tf.Tensor) -> tf.Tensor:
    """A transformed feature as the model takes it: scalars as [batch, 1], vectors as they are.

    Text features are fixed-length vectors of token ids ([batch, max_tokens]).
    """
    return tf.reshape(x, [-1, 1]) if x.shape.rank == 1 else x


def _check_label(transformed_spec: Mapping[str, Any]) -> None:
    if LABEL_KEY not in transformed_spec:
        raise ValueError(
            f"the transformed feature spec has no label {LABEL_KEY!r} (preprocessing_fn must "
            f"output it): {sorted(transformed_spec)}"
        )


def parse_transformed(feature_spec: Mapping[str, Any]) -> Decode:
    """Decodes examples Transform wrote out, by their transformed feature spec.

    Raises:
        ValueError: The spec has no label.
    """
    _check_label(feature_spec)
    spec = dict(feature_spec)
    return lambda serialized: tf.io.parse_example(serialized, spec)


def transform_raw(tft_output: Any) -> Decode:
    """Decodes raw examples by the raw schema and runs the transform graph on them.

    The graph is the one the serving signatures carry, loaded once here and
    shared by every dataset this decoder feeds.

    Raises:
        ValueError: The transform outputs no label.
    """
    _check_label(tft_output.transformed_feature_spec())
    spec = tft_output.raw_feature_spec()
    layer = tft_output.transform_features_layer()
    return lambda serialized: layer(tf.io.parse_example(serialized, spec))


def decoder(tft_output: Any, examples: str) -> Decode:
    """The decoder for `trainer.examples`: `raw` or `transformed`.

    Raises:
        ValueError: Another value, or a transform without a label.
    """
    if examples == RAW:
        return transform_raw(tft_output)
    if examples == TRANSFORMED:
        return parse_transformed(tft_output.transformed_feature_spec())
    raise ValueError(f"trainer.examples must be {RAW} or {TRANSFORMED}, got {examples!r}")


def make_dataset(
    file_patterns: Sequence[str],
    decode: Decode,
    batch_size: int,
    shuffle: bool,
    seed: int | None = None,
    num_shards: int = 1,
    shard_index: int = 0,
) -> tf.data.Dataset:
    """Reads examples as an endless stream of (transformed features, label) batches.

    Files are read in parallel (interleave), decoded per batch (parsing and
    transforming after batching is much cheaper than per record) and
    prefetched.

    Args:
        file_patterns: Glob patterns of GZIP TFRecord files of tf.Examples.
        decode: From `decoder`: a batch of serialized examples to the
            transformed features, label included.
        batch_size: Examples per batch.
        shuffle: Shuffle files and records (training) or keep order (eval).
        seed: Shuffle seed, for reproducible tests; with several shards,
            every worker must pass the same one.
        num_shards: Input pipelines reading in parallel (one per worker).
        shard_index: This pipeline's shard. With at least as many files as
            shards each pipeline reads whole files; otherwise each keeps
            every `num_shards`-th record of the same deterministic stream.

    Returns:
        A repeating dataset of ({transformed name: [batch, 1] or [batch, n]},
        label [batch, 1]).

    Raises:
        ValueError: No file matches the patterns, or the shard index is out
            of range.
    """
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index {shard_index} out of range for {num_shards} shard(s)")
    files = [path for pattern in file_patterns for path in tf.io.gfile.glob(pattern)]
    if not files:
        raise ValueError(f"no example files match {list(file_patterns)}")

    def parse(serialized: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        parsed = dict(decode(serialized))
        label = tf.reshape(parsed.pop(LABEL_KEY), [-1, 1])
        return {k: as_model_input(v) for k, v in parsed.items()}, label

    shard_files = num_shards > 1 and len(files) >= num_shards
    shard_records = num_shards > 1 and not shard_files
    dataset = tf.data.Dataset.from_tensor_slices(sorted(files))
    if shard_files:
        dataset = dataset.shard(num_shards, shard_index)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP"),
        num_parallel_calls=tf.data.AUTOTUNE,
        # Record sharding needs every worker to see the same stream.
        deterministic=not shuffle or shard_records,
    )
    if shard_records:
        dataset = dataset.shard(num_shards, shard_index)
    if shuffle:
        dataset = dataset.shuffle(buffer_size=max(10 * batch_size, 1000), seed=seed)
    dataset = (
        dataset.repeat()
        .batch(batch_size)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    # Sharding is explicit above; a distribution strategy must not shard again.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)
