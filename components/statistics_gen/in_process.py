"""A split's statistics computed in this process, as TFDV's `GenerateStatistics` does in Beam.

`GenerateStatistics` runs two kinds of generators: combiners (basic
statistics, value counts and quantiles), which Beam drives through one
CombineFn, and TFDV's exact top-k and uniques, a Beam transform that counts
every (feature, value) pair with a group-by-key. Here the combiners are
driven through that same CombineFn, one record batch at a time, and the
top-k and uniques are counted in a dict per feature and turned into
statistics with TFDV's own functions. The statistics are merged as Beam's
last step merges them. Memory holds one record batch, the combiners'
sketches and one count per distinct categorical value: it does not grow
with the number of rows.

Options that need Beam's own machinery (sampling whole record batches,
slicing, feature partitions, transform generators other than top-k and
uniques) are named by `unsupported`; the executor runs TFX's Beam
executor for them.
"""

from __future__ import annotations

import collections
import heapq
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent import futures
from typing import Any

import pyarrow as pa
from tensorflow_data_validation.statistics import stats_impl, stats_options
from tensorflow_data_validation.statistics.generators import (
    stats_generator,
    top_k_uniques_stats_generator,
)
from tensorflow_data_validation.utils import top_k_uniques_stats_util
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx_bsl.coders import example_coder
from tfx_bsl.statistics import merge_util
from tfx_bsl.tfxio import dataset_util

from components import private_apis


def record_batches(
    file_patterns: Sequence[str], batch_size: int, threads: int = 2
) -> Iterator[pa.RecordBatch]:
    """The tf.Examples in these TFRecord files, decoded as TFXIO's `TFExampleRecord` decodes them.

    The files are read as `TFExampleRecord.RecordBatches` reads them (tfx_bsl's
    `make_tf_record_dataset`, in order, GZIP by the files' names), and each
    batch decoded with no schema by tfx_bsl's decoder, as TFX's StatisticsGen
    decodes. The decoder lets go of the GIL for most of its work, and
    decoding was 85% of the statistics' time, so `threads` decode batches
    side by side (in a thread each), while the caller computes statistics
    of the one before: at most `threads` + 1 batches are held, and they come
    out in the files' order.
    """
    dataset = dataset_util.make_tf_record_dataset(
        list(file_patterns),
        batch_size,
        drop_final_batch=False,
        num_epochs=1,
        shuffle=False,
        shuffle_buffer_size=1,
        shuffle_seed=None,
    )
    local = threading.local()

    def decode(records: Any) -> pa.RecordBatch:
        decoder = getattr(local, "decoder", None)
        if decoder is None:
            decoder = local.decoder = example_coder.ExamplesToRecordBatchDecoder()
        return decoder.DecodeBatch(records)

    with futures.ThreadPoolExecutor(threads, thread_name_prefix="decode") as pool:
        pending: collections.deque[futures.Future[pa.RecordBatch]] = collections.deque()
        for records in dataset.as_numpy_iterator():
            pending.append(pool.submit(decode, records))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _generators(
    options: stats_options.StatsOptions,
) -> tuple[list[stats_generator.CombinerStatsGenerator], list[Any], list[Any]]:
    """The options' generators: combiners, TFDV's exact top-k, and any other."""
    combiners, top_k, others = [], [], []
    for generator in stats_impl.get_generators(options):
        if isinstance(generator, stats_generator.CombinerStatsGenerator):
            combiners.append(generator)
        elif type(generator) is top_k_uniques_stats_generator.TopKUniquesStatsGenerator:
            top_k.append(generator)
        else:
            others.append(generator)
    return combiners, top_k, others


def unsupported(options: stats_options.StatsOptions) -> str | None:
    """What in these options only TFDV's Beam transform computes; None when `statistics` can."""
    if options.sample_rate is not None:
        # TFDV keeps or drops each record batch whole, and Beam sizes them.
        return f"sample_rate {options.sample_rate}"
    if (
        options.slicing_config
        or options.experimental_slice_functions
        or options.experimental_slice_sqls
    ):
        return "slicing"
    if options.feature_allowlist:
        return "feature_allowlist"
    if options.experimental_num_feature_partitions != 1:
        return f"experimental_num_feature_partitions {options.experimental_num_feature_partitions}"
    if options.experimental_result_partitions != 1:
        return f"experimental_result_partitions {options.experimental_result_partitions}"
    _, top_k, others = _generators(options)
    if others or len(top_k) > 1:
        names = sorted(type(g).__name__ for g in others + top_k[1:])
        return f"generator(s) {', '.join(names)}"
    return None


class _TopKUniques:
    """TFDV's `TopKUniquesStatsGenerator`: exact value counts per feature, then its protos."""

    def __init__(self, generator: Any) -> None:
        self._settings = private_apis.tfdv_top_k_settings(generator)
        self._weighted = bool(self._settings["example_weight_map"].all_weight_features())
        # feature path steps -> value -> [count, weight]
        self._counts: dict[tuple[str, ...], dict[Any, list[Any]]] = {}

    def add(self, batch: pa.RecordBatch) -> None:
        settings = self._settings
        for (_, steps, value), (count, weight) in private_apis.tfdv_top_k_tuples(
            (None, batch),
            settings["bytes_features"],
            settings["categorical_numeric_types"],
            settings["example_weight_map"],
        ):
            values = self._counts.setdefault(steps, {})
            total = values.get(value)
            if total is None:
                values[value] = [count, weight]
            else:
                total[0] += count
                total[1] += weight

    def statistics(self) -> list[statistics_pb2.DatasetFeatureStatistics]:
        """TFDV's top-k, uniques and (with example weights) weighted top-k protos."""
        settings = self._settings
        # Beam's `Top.PerKey` keeps the largest (count, value) pairs: ties
        # in count go to the larger value.
        keep = max(settings["num_top_values"], settings["num_rank_histogram_buckets"])
        result = []
        for steps, values in self._counts.items():
            kinds = [(0, False, settings["frequency_threshold"])]
            if self._weighted:
                kinds.append((1, True, settings["weighted_frequency_threshold"]))
            for index, weighted, threshold in kinds:
                top = heapq.nlargest(
                    keep, ((total[index], value) for value, total in values.items())
                )
                result.append(
                    top_k_uniques_stats_util.make_dataset_feature_stats_proto_topk_single(
                        feature_path_tuple=steps,
                        value_count_list=[
                            top_k_uniques_stats_util.FeatureValueCount(value, count)
                            for count, value in top
                        ],
                        is_weighted_stats=weighted,
                        num_top_values=settings["num_top_values"],
                        frequency_threshold=threshold,
                        num_rank_histogram_buckets=settings["num_rank_histogram_buckets"],
                    )
                )
            result.append(
                top_k_uniques_stats_util.make_dataset_feature_stats_proto_unique_single(
                    feature_path_tuple=steps, num_uniques=len(values)
                )
            )
        return result


def statistics(
    batches: Iterable[pa.RecordBatch], options: stats_options.StatsOptions
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """The statistics `tfdv.GenerateStatistics(options)` computes from these record batches.

    Raises:
        ValueError: `unsupported(options)` names something.
    """
    reason = unsupported(options)
    if reason:
        raise ValueError(f"Statistics with {reason} are computed by TFDV's Beam transform only.")
    combiners, top_k, _ = _generators(options)
    combine = private_apis.tfdv_combiner_stats_fn(combiners, options.desired_batch_size)
    combine.setup()
    accumulator = combine.create_accumulator()
    counts = [_TopKUniques(generator) for generator in top_k]
    rows = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        rows += batch.num_rows
        accumulator = combine.add_input(accumulator, batch)
        for count in counts:
            count.add(batch)
    protos: list[statistics_pb2.DatasetFeatureStatistics] = []
    if rows:
        if combiners:
            protos.append(combine.extract_output(combine.compact(accumulator)))
        for count in counts:
            protos.extend(count.statistics())
    # TFDV's placeholder for no input: one dataset with no features.
    return merge_util.merge_dataset_feature_statistics(
        protos or [statistics_pb2.DatasetFeatureStatistics()]
    )
