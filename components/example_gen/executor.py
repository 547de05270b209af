"""ExampleGen executor for CSV: CsvExampleGen's examples, read with Arrow a batch at a time.

TFX's CsvExampleGen parses every row into Python lists, holds all of them
while a side input infers the column types (Beam's in-process runner keeps
the whole PCollection in memory), then builds each tf.Example cell by cell.
This executor reads each file twice instead, both times as a stream of Arrow
record batches: once to type the columns (`columns.batch_types`, merged over
all files), once to encode the rows (`columns.encode`, straight to the bytes).
Nothing between the two passes is larger than the column types.

It keeps CsvExampleGen's contract: the same file pattern and header checks,
the same column types, the same tf.Examples, and, because it yields each
example in the deterministic form CsvExampleGen hashes, the same rows in each
split. Splitting stays TFX's (`BaseExampleGenExecutor`), and so do the
artifact's split names, payload and file format; `Executor.Do` says when the
shuffle before writing is left out. Like
CsvExampleGen it reads each file whole in one worker. Both read RFC 4180 CSV
(quoted cells with commas, doubled quotes and line breaks) alike, and both
refuse a file that ends inside a quoted cell. They part only on a stray '"'
inside an unquoted cell (`1,x"y`), which RFC 4180 does not allow: Arrow keeps
it as text, while CsvExampleGen, counting quotes per line, joins that line to
the next and fails ("new-line character seen in unquoted field").
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.csv as pcsv
from tfx import types
from tfx.components.example_gen import utils, write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components import private_apis
from components.example_gen import columns

# Bytes of CSV text per record batch: about 16,000 taxi rows. Arrow's
# streaming CSV reader parses blocks ahead of the one it hands out, and what
# it holds is fifty to sixty-five times the block here, or the whole file
# when that is smaller: with 4 MiB blocks 213 MiB over a 190 MB file and 61
# MiB over a 19 MB one, so ExampleGen's memory grew with the data up to that
# bound. 2 MiB holds 124 MiB over 190 MB and 128 over 577 MB, in the same
# time; 1 MiB holds 64 MiB but took 6% longer (docs/benchmarks.md, "Goal 2").
BLOCK_BYTES = 2 << 20
# Serialized examples per output file, before compression. Beam's gzip reader
# (`filesystem.CompressedFile`, which Transform and TFX's own readers use)
# inflates a file in 16 MiB compressed chunks, each held whole in memory:
# one file per split made that a quarter of the whole split at 1.5M rows
# (the taxi examples compress 14 times), 469 MiB, where files of 16 MiB hold
# it to 16 MiB whatever the data's size (docs/benchmarks.md). Files this size
# also give a distributed runner pieces to read in parallel (gzip is read
# whole, one file per worker).
SHARD_BYTES = 16 << 20


def header(csv_files: Sequence[str]) -> list[str]:
    """The column names every file shares, read as CsvExampleGen reads them.

    Raises:
        RuntimeError: The files' headers differ (CsvExampleGen's error).
        ValueError: A column name appears twice.
    """
    names = io_utils.load_csv_column_names(csv_files[0])
    for csv_file in csv_files[1:]:
        if io_utils.load_csv_column_names(csv_file) != names:
            raise RuntimeError(
                f"Files in same split {os.path.dirname(csv_files[0])} have different header: "
                f"{csv_file} does not start with {','.join(names)}"
            )
    repeated = sorted(name for name, count in collections.Counter(names).items() if count > 1)
    if repeated:
        raise ValueError(f"{csv_files[0]}: the header names column(s) {repeated} more than once")
    return names


def read_batches(
    path: str, names: Sequence[str], block_bytes: int | None = None
) -> Iterator[pa.RecordBatch]:
    """The rows after the header of one CSV file, as batches of cell text.

    Raises:
        ValueError: The file is not CSV with these columns (a row with another
            number of cells, text that is not UTF-8); the
            message names the file and Arrow's account of the row.
    """
    # Beam's file systems, as CsvExampleGen reads its rows (TF's GFile lacks the
    # `closed` attribute Arrow's reader needs).
    with beam.io.filesystems.FileSystems.open(path) as stream:
        try:
            reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(
                    skip_rows=1,
                    column_names=list(names),
                    block_size=block_bytes or BLOCK_BYTES,
                ),
                parse_options=pcsv.ParseOptions(newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(
                    column_types=columns.text_schema(names),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            yield from reader
        except pa.ArrowInvalid as error:
            if "invalid UTF8" in str(error):
                raise ValueError(f"{path}: a cell is not UTF-8 text ({error})") from error
            raise ValueError(
                f"{path}: not CSV with the header's {len(names)} columns: {error}"
            ) from error


def check_quotes_close(path: str) -> None:
    """CsvExampleGen's check that every quoted cell of a file is closed.

    It joins lines until their count of '"' is even, and fails when the file
    ends inside a cell: exactly when the rows' total count is odd. (Arrow
    would read such a cell to the end of the file instead.)

    Raises:
        ValueError: The rows after the header hold an odd number of '"'.
    """
    quotes = 0
    with beam.io.filesystems.FileSystems.open(path) as stream:
        stream.readline()
        while chunk := stream.read(BLOCK_BYTES):
            quotes += chunk.count(b'"')
    if quotes % 2:
        raise ValueError(
            f"{path}: a quoted cell is never closed (an odd number, {quotes}, of '\"' "
            "after the header)"
        )


def file_types(path: str, names: Sequence[str]) -> dict[str, columns.ColumnType]:
    """One file's column types, after `check_quotes_close`."""
    check_quotes_close(path)
    return columns.widest(columns.batch_types(batch) for batch in read_batches(path, names))


def all_columns(
    names: Sequence[str], types: Mapping[str, columns.ColumnType]
) -> dict[str, columns.ColumnType]:
    """Every column's type; UNKNOWN for a column no file has a value in."""
    return {name: types.get(name, columns.ColumnType.UNKNOWN) for name in names}


class _FileColumnTypes(beam.DoFn):
    """One file's column types, after `check_quotes_close`."""

    def __init__(self, names: Sequence[str]):
        self._names = list(names)

    def process(self, path: str) -> Iterator[dict[str, columns.ColumnType]]:
        yield file_types(path, self._names)


class _WidestTypes(beam.CombineFn):
    """The widest type of each column over all files."""

    def __init__(self, names: Sequence[str]):
        self._names = list(names)

    def create_accumulator(self) -> dict[str, columns.ColumnType]:
        return {}

    def add_input(
        self, accumulator: dict[str, columns.ColumnType], types: Mapping[str, columns.ColumnType]
    ) -> dict[str, columns.ColumnType]:
        return columns.widest([accumulator, types])

    def merge_accumulators(
        self, accumulators: Iterator[dict[str, columns.ColumnType]]
    ) -> dict[str, columns.ColumnType]:
        return columns.widest(accumulators)

    def extract_output(
        self, accumulator: dict[str, columns.ColumnType]
    ) -> dict[str, columns.ColumnType]:
        return all_columns(self._names, accumulator)


class _FileToExamples(beam.DoFn):
    """One file's rows as serialized tf.Examples (deterministic form)."""

    def __init__(self, names: Sequence[str]):
        self._names = list(names)

    def process(self, path: str, types: Mapping[str, columns.ColumnType]) -> Iterator[bytes]:
        for batch in read_batches(path, self._names):
            yield from columns.encode(batch, types)


class _CsvToSerializedExamples(beam.PTransform):
    """The CSV files of one input split as serialized tf.Examples.

    TFX calls it as CsvExampleGen's `_CsvToExample`: (exec_properties, split_pattern).
    """

    def __init__(self, exec_properties: Mapping[str, Any], split_pattern: str):
        super().__init__()
        self._pattern = os.path.join(
            exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern
        )

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        csv_files = matching_files(self._pattern)
        names = header(csv_files)
        files = pipeline | "CreateFilenames" >> beam.Create(csv_files)
        types = beam.pvalue.AsSingleton(
            files
            | "FileColumnTypes" >> beam.ParDo(_FileColumnTypes(names))
            | "InferColumnTypes" >> beam.CombineGlobally(_WidestTypes(names))
        )
        return files | "ToTFExample" >> beam.ParDo(_FileToExamples(names), types)


def matching_files(pattern: str) -> list[str]:
    """The CSV files of an input split (CsvExampleGen's error when there are none).

    Raises:
        RuntimeError: No file matches.
    """
    csv_files = fileio.glob(pattern)
    if not csv_files:
        raise RuntimeError(f"Split pattern {pattern} does not match any files.")
    return csv_files


def serialized_batches(pattern: str) -> Iterator[list[bytes]]:
    """The examples of an input split's CSV files, a batch of rows at a time, without Beam.

    The same two passes as `_CsvToSerializedExamples`: the column types over
    all files first, then the rows encoded with them, file by file in
    `fileio.glob`'s order.
    """
    csv_files = matching_files(pattern)
    names = header(csv_files)
    types = all_columns(names, columns.widest(file_types(path, names) for path in csv_files))
    for path in csv_files:
        for batch in read_batches(path, names):
            yield columns.encode(batch, types)


class _Shards:
    """One split's GZIP TFRecord files, a new one after every `SHARD_BYTES` of records.

    Each is written under a temporary name; `finish` renames them as Beam's
    sink names its shards (`data_tfrecord-00000-of-00003.gz`).
    """

    def __init__(self, folder: str) -> None:
        self._prefix = os.path.join(folder, write_split.DEFAULT_FILE_NAME)
        self._temporary: list[str] = []
        self._writer: Any = None
        self._bytes = 0

    def _next(self) -> None:
        import tensorflow as tf

        if self._writer is not None:
            self._writer.close()
        path = f"{self._prefix}-{len(self._temporary):05d}.gz.incomplete"
        self._temporary.append(path)
        self._writer = tf.io.TFRecordWriter(path, options="GZIP")
        self._bytes = 0

    def write(self, records: Sequence[bytes]) -> None:
        for record in records:
            if self._writer is None or self._bytes >= SHARD_BYTES:
                self._next()
            self._writer.write(record)
            self._bytes += len(record)

    def close(self) -> None:
        if self._writer is None:
            self._next()  # an empty split is one empty file, as Beam writes it
        self._writer.close()

    def finish(self) -> None:
        """Renames the closed files to their final names."""
        count = len(self._temporary)
        for index, path in enumerate(self._temporary):
            # A retried execution writes into the same folder again.
            fileio.rename(path, f"{self._prefix}-{index:05d}-of-{count:05d}.gz", overwrite=True)


class _SplitWriters:
    """Each output split's GZIP TFRecord files (`_Shards`).

    Every file is written under a temporary name and renamed when all are
    complete, so a failed run leaves no file that looks finished. The
    records are compressed and written in a thread of their own (TensorFlow's
    writer lets go of the GIL), while the caller encodes the next batch: at
    most `_QUEUED` batches wait. A failed write is raised by the next
    `write` or by `close`.
    """

    _QUEUED = 4

    def __init__(self, outputs: list[types.Artifact], split_names: Sequence[str]) -> None:
        self._shards: dict[str, _Shards] = {}
        for split in split_names:
            folder = artifact_utils.get_split_uri(outputs, split)
            fileio.makedirs(folder)
            self._shards[split] = _Shards(folder)
        self._queue: queue.Queue[tuple[str, Sequence[bytes]] | None] = queue.Queue(self._QUEUED)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="write-splits", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep taking batches, so the caller never blocks
            split, records = item
            try:
                self._shards[split].write(records)
            except BaseException as error:  # raised again in the caller's thread
                self._error = error

    def _raise_failed_write(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, split: str, records: Sequence[bytes]) -> None:
        self._raise_failed_write()
        self._queue.put((split, records))

    def close(self, complete: bool) -> None:
        self._queue.put(None)
        self._thread.join()
        for shards in self._shards.values():
            shards.close()
        self._raise_failed_write()
        if complete:
            for shards in self._shards.values():
                shards.finish()


def write_splits_in_process(
    exec_properties: Mapping[str, Any],
    input_config: example_gen_pb2.Input,
    output_config: example_gen_pb2.Output,
    outputs: list[types.Artifact],
) -> None:
    """Writes each output split as TFX's ExampleGen would, in this process, without Beam.

    The rows go to TFX's own partition function (`_PartitionFn`: the
    SHA-256 of each serialized example into the configured hash buckets),
    or, with no output split config, each input split to its own output
    split; each split keeps the order the rows were read in.
    """
    split_names = utils.generate_output_split_names(input_config, output_config)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    writers = _SplitWriters(outputs, split_names)
    complete = False
    try:
        if output_config.split_config.splits:
            partition = private_apis.tfx_example_partition()
            buckets = list(
                itertools.accumulate(s.hash_buckets for s in output_config.split_config.splits)
            )
            pattern = os.path.join(input_base, input_config.splits[0].pattern)
            for records in serialized_batches(pattern):
                by_split: dict[int, list[bytes]] = collections.defaultdict(list)
                for record in records:
                    by_split[
                        partition(record, len(buckets), buckets, output_config.split_config)
                    ].append(record)
                for index, split_records in sorted(by_split.items()):
                    writers.write(split_names[index], split_records)
        else:
            for name, split in zip(split_names, input_config.splits, strict=True):
                for records in serialized_batches(os.path.join(input_base, split.pattern)):
                    writers.write(name, records)
        complete = True
    finally:
        writers.close(complete)


class Executor(BaseExampleGenExecutor):
    """CsvExampleGen's executor contract, with the CSV read by `_CsvToSerializedExamples`."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CsvToSerializedExamples

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """TFX's ExampleGen `Do`; on in-process runners, without Beam and without its shuffle.

        On a distributed runner TFX's `Do` runs as it is, with this
        executor's PTransform reading the CSV files on the workers. On
        Beam's in-process runners there is nothing to spread, and Beam's
        per-element work (each record through a partition and a file sink
        in Python) was most of the time, so `write_splits_in_process`
        reads the files, splits the rows with TFX's own partition function
        and writes each split in this process: the same records in the same
        splits.

        TFX shuffles each split (`beam.Reshuffle`) before writing it. On a
        distributed runner that spreads the writing over workers, and it is
        kept. Beam's in-process runner held the whole split in memory for
        it (4.3 GB at 1.5M taxi rows against 1.1 GB without), so there the
        split is written as it is read: the same records, in the CSV files'
        order. That is the order TFX's in-process shuffle gives back too on
        small data (its grouping buffer is a dict in insertion order, each
        record under its own random key: the same order at 15,000 rows); on
        large data it hands the buffer on in several bundles, which mixes
        the order (at 1.5M rows). Downstream, the Trainer shuffles its files
        and a buffer of ten batches; a CSV whose row order means something
        (sorted by time or by label) is best shuffled before it is read.
        """
        runner = private_apis.beam_runner(self._beam_pipeline_args or [])
        payload = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        if runner not in private_apis.IN_PROCESS_BEAM_RUNNERS or payload not in (
            None,
            example_gen_pb2.FORMAT_TF_EXAMPLE,
        ):
            super().Do(input_dict, output_dict, exec_properties)
            return
        input_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], example_gen_pb2.Input()
        )
        output_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], example_gen_pb2.Output()
        )
        outputs = output_dict[standard_component_specs.EXAMPLES_KEY]
        examples = artifact_utils.get_single_instance(outputs)
        examples.split_names = artifact_utils.encode_split_names(
            utils.generate_output_split_names(input_config, output_config)
        )
        write_splits_in_process(exec_properties, input_config, output_config, outputs)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        for artifact in outputs:
            if payload:
                examples_utils.set_payload_format(artifact, payload)
            if file_format:
                file_format_name = write_split.to_file_format_str(file_format)
                examples_utils.set_file_format(artifact, file_format_name)
