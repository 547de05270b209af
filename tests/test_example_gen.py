"""Our CsvExampleGen executor against TFX's own: the same examples, splits and order.

TFX's CsvExampleGen (its executor, and tfx_bsl's cell typing) is the oracle
throughout: every check runs both on the same cells or files.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils
from tfx_bsl.coders import csv_decoder

from components import private_apis
from components.example_gen import columns, executor
from components.example_gen.columns import ColumnType
from tests.conftest import TAXI_CSV, write_taxi_lines

# Cells where Python's and Arrow's number parsing part ways, and the plain ones.
CELLS = [
    "",
    "0",
    "-0",
    "007",
    "5",
    "-5",
    "+5",
    " 5",
    "5 ",
    "1_000",
    "0x10",
    "1e3",
    "1E-5",
    "1.",
    ".5",
    "+.5",
    "-1.25",
    " 1.5",
    "1_0.5",
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "1e400",
    "1e-400",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "99999999999999999999",
    "1.5e",
    "e5",
    "abc",
    "٣",
    "1,5",
]

# Columns (as the cells of one batch) with the type CsvExampleGen gives each.
COLUMNS = {
    "ints": ["1", "-2", "", "007"],
    "ints_python_reads": ["5", " 5", "+5", "1_0"],
    "floats": ["1", "2.5", "", "-3e2"],
    "floats_python_reads": ["1", " 1.5", "+.5"],
    "hex_is_text": ["1", "0x10"],
    "big_int_is_text": ["1", "99999999999999999999"],
    "big_int_beside_float_is_text": ["2.5", "99999999999999999999"],
    "nan_and_inf_are_floats": ["1", "nan", "-inf"],
    "text": ["a", "1", ""],
    "empty": ["", ""],
}


def _tfx_column_type(cells: list[str]) -> ColumnType:
    inferrer = csv_decoder.ColumnTypeInferrer(["c"], skip_blank_lines=True)
    accumulator = inferrer.create_accumulator()
    for cell in cells:
        accumulator = inferrer.add_input(accumulator, [cell.encode()])
    return ColumnType(int(inferrer.extract_output(accumulator)[0].type))


@pytest.mark.parametrize("cell", CELLS)
def test_cell_type_is_tfx_bsls(cell: str) -> None:
    assert columns.cell_type(cell.encode()) == _tfx_column_type([cell])


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_array_type_is_csv_example_gens(name: str) -> None:
    cells = COLUMNS[name]
    assert columns.array_type(pa.array(cells, pa.string())) == _tfx_column_type(cells)


def test_array_type_of_every_cell_pair_is_csv_example_gens() -> None:
    for first in CELLS:
        for second in CELLS:
            cells = [first, second]
            found = columns.array_type(pa.array(cells, pa.string()))
            assert found == _tfx_column_type(cells), cells


def _tfx_examples(batch: dict[str, list[str]]) -> list[bytes]:
    """The examples CsvExampleGen's own row handler builds, in deterministic form."""
    names = list(batch)
    infos = [csv_decoder.ColumnInfo(name, _tfx_column_type(batch[name])) for name in names]
    to_example = tfx_csv_executor._ParsedCsvToTfExample()
    rows = zip(*(batch[name] for name in names), strict=True)
    return [
        example.SerializeToString(deterministic=True)
        for row in rows
        for example in to_example.process([cell.encode() for cell in row], infos)
    ]


def test_encode_gives_csv_example_gens_bytes() -> None:
    long_name = "a_column_name_longer_than_one_hundred_and_twenty_seven_bytes_" * 3
    batch = {
        "zeta": ["1", "", "-9223372036854775808", "300"],
        "alpha": ["0.1", "3.4028235e38", "", "-0"],
        "text": ["", "é and ü", "x" * 300, "a,b"],
        "empty": ["", "", "", ""],
        long_name: ["1", "2", "", "16384"],
        "python": [" 5", "+5", "1_0", ""],
        "Upper": ["1.5", " 2", "", "nan"],
    }
    record_batch = pa.RecordBatch.from_pydict(
        {name: pa.array(cells, pa.string()) for name, cells in batch.items()}
    )
    types = {name: _tfx_column_type(cells) for name, cells in batch.items()}
    assert columns.encode(record_batch, types) == _tfx_examples(batch)


def test_encode_names_an_untyped_column() -> None:
    record_batch = pa.RecordBatch.from_pydict({"a": pa.array(["1"], pa.string())})
    with pytest.raises(KeyError, match="'a'"):
        columns.encode(record_batch, {})


# Quoted commas, doubled quotes, a line break inside quotes, a blank line, an
# all-empty column, numbers only Python reads, hex and huge integers (text).
EDGE_CSV = (
    "i,f,s,empty,hex,py,big,q\n"
    '1,2.5,x,,7, 5,1,"q,uoted"\n'
    '-3,1e3,"multi\nline",,0x10,+5,99999999999999999999,"he said ""hi"""\n'
    "\n"
    ",nan,,,,1_0,,\n"
)
EDGE_CSV_CRLF = "i,f,s,empty,hex,py,big,q\r\n7,-0.5,é,,8,9,2,plain\r\n8,,,,,,,\r\n"


HASHED = example_gen_pb2.Input(
    splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*.csv")]
)
HASHED_OUTPUT = example_gen_pb2.Output(
    split_config=example_gen_pb2.SplitConfig(
        splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
        ]
    )
)


def _run(
    executor_class: type,
    input_base: Path,
    out: Path,
    beam_args: list[str] | None = None,
    input_config: example_gen_pb2.Input = HASHED,
    output_config: example_gen_pb2.Output = HASHED_OUTPUT,
):
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    properties: dict[str, Any] = {
        "input_base": str(input_base),
        "input_config": proto_utils.proto_to_json(input_config),
        "output_config": proto_utils.proto_to_json(output_config),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }
    private_apis.skip_in_process_beam_package()
    context = executor_class.Context(beam_pipeline_args=beam_args or [])
    executor_class(context).Do({}, {"examples": [examples]}, properties)
    return examples


def _records(examples: standard_artifacts.Examples, split: str) -> list[bytes]:
    files = sorted(glob.glob(os.path.join(examples.uri, f"Split-{split}", "*")))
    return [
        tf.train.Example.FromString(record.numpy()).SerializeToString(deterministic=True)
        for record in tf.data.TFRecordDataset(files, compression_type="GZIP")
    ]


def _assert_same_output(input_base: Path, tmp_path: Path, **configs: Any) -> int:
    theirs = _run(tfx_csv_executor.Executor, input_base, tmp_path / "tfx", **configs)
    ours = _run(executor.Executor, input_base, tmp_path / "ours", **configs)
    assert ours.split_names == theirs.split_names
    assert ours.get_custom_property("payload_format") == theirs.get_custom_property(
        "payload_format"
    )
    assert ours.get_custom_property("file_format") == theirs.get_custom_property("file_format")
    total = 0
    for split in json.loads(ours.split_names):
        assert os.listdir(os.path.join(ours.uri, f"Split-{split}")) == os.listdir(
            os.path.join(theirs.uri, f"Split-{split}")
        )
        # The same records in the same order (the in-process runner's order).
        assert _records(ours, split) == _records(theirs, split), split
        total += len(_records(ours, split))
    return total


def test_executor_writes_csv_example_gens_splits_for_edge_cases(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text(EDGE_CSV, encoding="utf-8")
    (data / "b.csv").write_bytes(EDGE_CSV_CRLF.encode())
    (data / "notes.txt").write_text("not data\n")
    assert _assert_same_output(data, tmp_path) == 5


def test_executor_writes_csv_example_gens_splits_for_taxi(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = TAXI_CSV.read_text().splitlines(keepends=True)
    (data / "first.csv").write_text("".join(lines[:2001]))
    (data / "second.csv").write_text("".join(lines[:1] + lines[2001:4001]))
    assert _assert_same_output(data, tmp_path) == 4000


def test_input_splits_become_output_splits_as_tfxs(tmp_path: Path) -> None:
    # No output split config: each input split's files are one output split.
    data = tmp_path / "data"
    (data / "tr").mkdir(parents=True)
    (data / "ev").mkdir()
    lines = TAXI_CSV.read_text().splitlines(keepends=True)
    (data / "tr" / "a.csv").write_text("".join(lines[:301]))
    (data / "ev" / "b.csv").write_text("".join(lines[:1] + lines[301:401]))
    by_folder = example_gen_pb2.Input(
        splits=[
            example_gen_pb2.Input.Split(name="train", pattern="tr/*.csv"),
            example_gen_pb2.Input.Split(name="eval", pattern="ev/*.csv"),
        ]
    )
    total = _assert_same_output(
        data, tmp_path, input_config=by_folder, output_config=example_gen_pb2.Output()
    )
    assert total == 400


def test_a_retry_writes_over_the_same_folder(tmp_path: Path) -> None:
    # A retried execution (Kubeflow reuses the output URI) writes its files again.
    data = write_taxi_lines(tmp_path / "data" / "a.csv", 200).parent
    first = _run(executor.Executor, data, tmp_path / "out")
    records = {split: _records(first, split) for split in ("train", "eval")}
    again = _run(executor.Executor, data, tmp_path / "out")
    assert {split: _records(again, split) for split in ("train", "eval")} == records
    assert sum(len(r) for r in records.values()) == 200


def test_a_failed_read_leaves_no_split_file_that_looks_finished(tmp_path: Path) -> None:
    first = write_taxi_lines(tmp_path / "data" / "a.csv", 100)
    data = first.parent
    header = write_taxi_lines(tmp_path / "header.csv", 0).read_text()
    (data / "b.csv").write_text(header + "1,2\n")  # a short row, read second
    with pytest.raises(ValueError, match=r"b\.csv: not CSV"):
        _run(executor.Executor, data, tmp_path / "out")
    written = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written and all(name.endswith(".incomplete") for name in written)


def test_large_splits_are_written_in_shards_as_beam_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file after SHARD_BYTES of records: TFX's records, in order, over Beam-named files."""
    data = write_taxi_lines(tmp_path / "data" / "a.csv", 3000).parent
    theirs = _run(tfx_csv_executor.Executor, data, tmp_path / "tfx")
    monkeypatch.setattr(executor, "SHARD_BYTES", 100_000)
    ours = _run(executor.Executor, data, tmp_path / "ours")
    for split in ("train", "eval"):
        records = _records(theirs, split)
        # A file is full once it holds 100,000 bytes of records.
        count, size = 1, 0
        for record in records:
            if size >= 100_000:
                count, size = count + 1, 0
            size += len(record)
        assert count > 2
        names = sorted(os.listdir(os.path.join(ours.uri, f"Split-{split}")))
        assert names == [f"data_tfrecord-{i:05d}-of-{count:05d}.gz" for i in range(count)]
        assert _records(ours, split) == records


def test_a_failed_write_fails_the_run_and_leaves_no_finished_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread's error reaches the run, and no split file looks finished."""
    data = write_taxi_lines(tmp_path / "data" / "a.csv", 3000).parent
    monkeypatch.setattr(executor, "BLOCK_BYTES", 16384)  # many batches
    writer_class = tf.io.TFRecordWriter
    written = []

    class FailingWriter(writer_class):  # type: ignore[misc, valid-type]
        def write(self, record: bytes) -> None:
            if len(written) == 1000:
                raise OSError("No space left on device")
            written.append(record)
            super().write(record)

    monkeypatch.setattr(tf.io, "TFRecordWriter", FailingWriter)
    with pytest.raises(OSError, match="No space left on device"):
        _run(executor.Executor, data, tmp_path / "out")
    files = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files and all(name.endswith(".incomplete") for name in files)


def test_executor_reads_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Column types are the widest over batches: a float in a later batch makes the column float."""
    data = tmp_path / "data"
    data.mkdir()
    rows = [f"{i},{i if i < 900 else i + 0.5},t{i}" for i in range(1000)]
    (data / "rows.csv").write_text("n,x,s\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(executor, "BLOCK_BYTES", 512)
    batches = list(executor.read_batches(str(data / "rows.csv"), ["n", "x", "s"], 512))
    assert len(batches) > 10 and sum(b.num_rows for b in batches) == 1000
    assert columns.batch_types(batches[0])["x"] == ColumnType.INT
    assert _assert_same_output(data, tmp_path) == 1000


def test_distributed_runners_keep_tfxs_shuffle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(BaseExampleGenExecutor, "Do", lambda self, i, o, p: calls.append(p))
    (tmp_path / "a.csv").write_text("a\n1\n")
    _run(executor.Executor, tmp_path, tmp_path / "out", ["--runner=DataflowRunner"])
    assert len(calls) == 1
    _run(executor.Executor, tmp_path, tmp_path / "out2", ["--direct_num_workers=1"])
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("files", "error", "match"),
    [
        ({"a.csv": "a,b\n1,2\n3\n"}, ValueError, r"a\.csv: not CSV with the header's 2 columns"),
        ({"a.csv": 'a,b\n1,"2\n'}, ValueError, r"a\.csv: a quoted cell is never closed"),
        ({"a.csv": "a,b\n1,2\n", "b.csv": "a,c\n1,2\n"}, RuntimeError, r"b\.csv does not start"),
        ({"a.csv": "a,a\n1,2\n"}, ValueError, r"names column\(s\) \['a'\] more than once"),
        ({"a.txt": "a\n1\n"}, RuntimeError, r"\*\.csv does not match any files"),
    ],
)
def test_bad_csv_is_named(tmp_path: Path, files: dict[str, str], error: type, match: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, text in files.items():
        (data / name).write_text(text)
    with pytest.raises(error, match=match):
        _run(executor.Executor, data, tmp_path / "out")


def test_text_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_bytes(b"a,b\n1,\xff\xfe\n")
    with pytest.raises(ValueError, match=r"a\.csv: a cell is not UTF-8 text"):
        _run(executor.Executor, data, tmp_path / "out")


def test_a_stray_quote_is_text_where_csv_example_gen_fails(tmp_path: Path) -> None:
    """The one documented difference: `x"y` is not RFC 4180, and CsvExampleGen refuses it."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text('a,b\n1,x"y\n2,z"w\n3,ok\n')
    with pytest.raises(Exception, match="new-line character seen in unquoted field"):
        _run(tfx_csv_executor.Executor, data, tmp_path / "tfx")
    ours = _run(executor.Executor, data, tmp_path / "ours")

    def cells(examples: standard_artifacts.Examples) -> list[tuple[int, bytes]]:
        found = []
        for split in ("train", "eval"):
            for record in _records(examples, split):
                feature = tf.train.Example.FromString(record).features.feature
                found.append((feature["a"].int64_list.value[0], feature["b"].bytes_list.value[0]))
        return sorted(found)

    assert cells(ours) == [(1, b'x"y'), (2, b'z"w'), (3, b"ok")]
