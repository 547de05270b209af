"""Our StatisticsGen executor against TFX's own: the same statistics, files and properties.

TFX's executor (TFDV's `GenerateStatistics` in Beam) is the oracle
throughout: every check runs both on the same examples. Beam sums floats in
an order of its own, so two runs of TFX's executor differ in the last bits
of a mean or a standard deviation; those two fields are compared to 1e-9,
everything else exactly.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from google.protobuf import json_format, text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx.components.statistics_gen import executor as tfx_executor
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts

from components import native_heap, private_apis
from components.statistics_gen import executor, in_process
from tests.conftest import write_taxi_lines
from tests.test_example_gen import _run as run_example_gen

TAXI_SCHEMA = Path(__file__).resolve().parents[1] / "models" / "taxi" / "schema.pbtxt"
# Summed in Beam's order or ours: the last bits may differ.
FLOAT_SUMS = {"mean", "stdDev"}


def _example(features: dict[str, list[Any]]) -> bytes:
    """A tf.Example of bytes, float or int lists; an empty list is a float list."""
    example = tf.train.Example()
    for name, values in features.items():
        feature = example.features.feature[name]
        if values and isinstance(values[0], bytes):
            feature.bytes_list.value.extend(values)
        elif values and isinstance(values[0], int):
            feature.int64_list.value.extend(values)
        else:
            feature.float_list.value.extend(values)
    return example.SerializeToString()


def _examples(root: Path, splits: dict[str, list[bytes]]) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = str(root)
    examples.split_names = json.dumps(list(splits))
    examples.span = 7
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    for split, records in splits.items():
        folder = root / f"Split-{split}"
        folder.mkdir(parents=True)
        with tf.io.TFRecordWriter(
            str(folder / "data_tfrecord-00000-of-00001.gz"), options="GZIP"
        ) as writer:
            for record in records:
                writer.write(record)
    return examples


def _schema(tmp_path: Path, text: str) -> standard_artifacts.Schema:
    folder = tmp_path / "schema"
    folder.mkdir()
    (folder / "schema.pbtxt").write_text(text)
    schema = standard_artifacts.Schema()
    schema.uri = str(folder)
    return schema


def _run(
    executor_class: type,
    examples: standard_artifacts.Examples,
    out: Path,
    schema: standard_artifacts.Schema | None = None,
    beam_args: list[str] | None = None,
    **properties: Any,
) -> standard_artifacts.ExampleStatistics:
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(out)
    inputs = {"examples": [examples]}
    if schema is not None:
        inputs["schema"] = [schema]
    properties.setdefault("exclude_splits", "[]")
    private_apis.skip_in_process_beam_package()
    context = executor_class.Context(beam_pipeline_args=beam_args or [])
    executor_class(context).Do(inputs, {"statistics": [statistics]}, properties)
    return statistics


def _differences(theirs: Any, ours: Any, path: str = "") -> list[str]:
    if isinstance(theirs, dict) and isinstance(ours, dict):
        found = []
        for key in sorted(set(theirs) | set(ours)):
            if key not in theirs or key not in ours:
                found.append(f"{path}/{key}: only in {'ours' if key in ours else 'theirs'}")
            else:
                found += _differences(theirs[key], ours[key], f"{path}/{key}")
        return found
    if isinstance(theirs, list) and isinstance(ours, list):
        if len(theirs) != len(ours):
            return [f"{path}: {len(theirs)} against {len(ours)} entries"]
        return [
            d
            for i, (a, b) in enumerate(zip(theirs, ours, strict=True))
            for d in _differences(a, b, f"{path}/{i}")
        ]
    if path.rsplit("/", 1)[-1] in FLOAT_SUMS and math.isclose(theirs, ours, rel_tol=1e-9):
        return []
    return [] if theirs == ours else [f"{path}: {theirs!r} against {ours!r}"]


def _statistics(artifact: standard_artifacts.ExampleStatistics, split: str) -> dict[str, Any]:
    """A split's statistics as a dict, its features in path order.

    A feature's place in the list is where it first appeared in the record
    batches, and Beam's first batches hold one example, ours thousands.
    """
    path = os.path.join(artifact.uri, f"Split-{split}", "FeatureStats.pb")
    with open(path, "rb") as stream:
        proto = statistics_pb2.DatasetFeatureStatisticsList.FromString(stream.read())
    result = json_format.MessageToDict(proto)
    for dataset in result["datasets"]:
        if "features" in dataset:
            dataset["features"].sort(key=lambda feature: feature["path"]["step"])
    return result


def _assert_same(
    tmp_path: Path, examples: standard_artifacts.Examples, **kwargs: Any
) -> dict[str, dict[str, Any]]:
    """Runs both executors on the examples; returns our statistics by split."""
    theirs = _run(tfx_executor.Executor, examples, tmp_path / "tfx", **kwargs)
    ours = _run(executor.Executor, examples, tmp_path / "ours", **kwargs)
    assert ours.split_names == theirs.split_names
    assert ours.span == theirs.span
    for name in (
        tfx_executor.STATS_DASHBOARD_LINK,
        tfx_executor.SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME,
    ):
        assert ours.get_custom_property(name) == theirs.get_custom_property(name), name
    result = {}
    for split in json.loads(ours.split_names):
        assert os.listdir(os.path.join(ours.uri, f"Split-{split}")) == ["FeatureStats.pb"]
        result[split] = _statistics(ours, split)
        assert _differences(_statistics(theirs, split), result[split]) == [], split
    return result


def _taxi_examples(tmp_path: Path, rows: int) -> standard_artifacts.Examples:
    """The first rows of the taxi CSV as our ExampleGen writes them (TFX's train and eval split)."""
    from components.example_gen import executor as example_gen

    data = write_taxi_lines(tmp_path / "csv" / "taxi.csv", rows).parent
    return run_example_gen(example_gen.Executor, data, tmp_path / "examples")


def test_taxi_statistics_are_tfxs(tmp_path: Path) -> None:
    examples = _taxi_examples(tmp_path, 3000)
    schema = _schema(tmp_path, TAXI_SCHEMA.read_text())
    ours = _assert_same(tmp_path, examples, schema=schema)
    train, evaluation = (ours[split]["datasets"][0] for split in ("train", "eval"))
    assert int(train["numExamples"]) + int(evaluation["numExamples"]) == 3000
    by_name = {feature["path"]["step"][0]: feature for feature in train["features"]}
    assert by_name["company"]["stringStats"]["topValues"]
    assert by_name["fare"]["numStats"]["histograms"]


# A categorical integer (top-k and uniques for an INT), 1,200 distinct tags
# (more than the 1,000 rank-histogram buckets, with tied counts), missing and
# empty values, lists of several values, and a weight column.
EDGE_SCHEMA = """
feature { name: "code" type: INT int_domain { is_categorical: true } }
feature { name: "tag" type: BYTES }
feature { name: "x" type: FLOAT }
feature { name: "w" type: FLOAT }
"""


def _edge_records(count: int, offset: int = 0) -> list[bytes]:
    records = []
    for i in range(offset, offset + count):
        features: dict[str, list[Any]] = {"w": [1.0 + i % 4]}
        if i % 11:
            features["tag"] = [f"t{(i * 7) % 1200}".encode()]
        if i % 5:
            features["code"] = [i % 13, (i * 3) % 13][: 1 + i % 2]
        features["x"] = [float(i % 97) / 3.0] * (i % 3)
        records.append(_example(features))
    return records


def test_edge_case_statistics_are_tfxs(tmp_path: Path) -> None:
    examples = _examples(
        tmp_path / "examples",
        {"train": _edge_records(20_000), "eval": _edge_records(700, 5), "empty": []},
    )
    ours = _assert_same(tmp_path, examples, schema=_schema(tmp_path, EDGE_SCHEMA))
    train = {f["path"]["step"][0]: f for f in ours["train"]["datasets"][0]["features"]}
    assert int(train["tag"]["stringStats"]["unique"]) == 1200
    assert len(train["tag"]["stringStats"]["rankHistogram"]["buckets"]) == 1000
    assert train["code"]["stringStats"]["topValues"]
    # No examples: TFDV's placeholder, one dataset without features.
    assert ours["empty"] == {"datasets": [{}]}


def test_weighted_statistics_are_tfxs(tmp_path: Path) -> None:
    examples = _examples(tmp_path / "examples", {"train": _edge_records(3000)})
    options = tfdv.StatsOptions(weight_feature="w").to_json()
    ours = _assert_same(
        tmp_path, examples, schema=_schema(tmp_path, EDGE_SCHEMA), stats_options_json=options
    )
    tag = {f["path"]["step"][0]: f for f in ours["train"]["datasets"][0]["features"]}["tag"]
    assert tag["stringStats"]["weightedStringStats"]["topValues"]


def test_excluded_splits_and_no_schema_as_tfxs(tmp_path: Path) -> None:
    examples = _examples(
        tmp_path / "examples", {"train": _edge_records(500), "eval": _edge_records(200)}
    )
    ours = _assert_same(tmp_path, examples, exclude_splits='["eval"]')
    assert list(ours) == ["train"]


def test_a_retry_writes_over_the_same_folder(tmp_path: Path) -> None:
    examples = _examples(tmp_path / "examples", {"train": _edge_records(300)})
    first = _statistics(_run(executor.Executor, examples, tmp_path / "out"), "train")
    again = _run(executor.Executor, examples, tmp_path / "out")
    assert _statistics(again, "train") == first
    assert os.listdir(tmp_path / "out" / "Split-train") == ["FeatureStats.pb"]


def test_an_unreadable_split_leaves_no_statistics_file(tmp_path: Path) -> None:
    examples = _examples(tmp_path / "examples", {"train": _edge_records(300), "eval": []})
    (tmp_path / "examples" / "Split-eval" / "data_tfrecord-00000-of-00001.gz").write_bytes(
        b"not gzip"
    )
    with pytest.raises(
        RuntimeError, match=r"split 'eval' \(.*Split-eval\): DataLossError"
    ) as error:
        _run(executor.Executor, examples, tmp_path / "out")
    assert isinstance(error.value.__cause__, tf.errors.DataLossError)
    assert not list((tmp_path / "out").rglob("*FeatureStats.pb"))


@pytest.mark.parametrize(
    ("beam_args", "properties", "reason"),
    [
        (["--runner=DataflowRunner"], {}, "the dataflowrunner"),
        ([], {"sharded_stats_output": True}, "sharded output"),
        ([], {"sample_rate_by_split": '{"train": 0.5}'}, "sample_rate 0.5"),
        ([], {"stats_options_json": tfdv.StatsOptions(sample_rate=0.2).to_json()}, "sample_rate"),
        (
            [],
            {"stats_options_json": tfdv.StatsOptions(feature_allowlist=["x"]).to_json()},
            "feature_allowlist",
        ),
    ],
)
def test_what_only_beam_computes_runs_tfxs_executor(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    beam_args: list[str],
    properties: dict[str, Any],
    reason: str,
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tfx_executor.Executor, "Do", lambda self, i, o, p: calls.append(p))
    examples = _examples(tmp_path / "examples", {"train": _edge_records(10)})
    caplog.set_level("INFO")
    _run(executor.Executor, examples, tmp_path / "out", beam_args=beam_args, **properties)
    assert len(calls) == 1
    assert f"StatisticsGen runs TFDV in Beam: {reason}" in caplog.text
    assert not (tmp_path / "out").exists()


def test_in_process_names_what_it_cannot_compute() -> None:
    schema = text_format.Parse(EDGE_SCHEMA, schema_pb2.Schema())
    assert in_process.unsupported(tfdv.StatsOptions(schema=schema)) is None
    lift = tfdv.StatsOptions(schema=schema, label_feature="code")
    assert in_process.unsupported(lift) == "generator(s) LiftStatsGenerator"
    assert in_process.unsupported(tfdv.StatsOptions(experimental_result_partitions=3)) == (
        "experimental_result_partitions 3"
    )
    with pytest.raises(ValueError, match=r"sample_rate 0\.1 are computed by TFDV's Beam transform"):
        in_process.statistics(iter([]), tfdv.StatsOptions(sample_rate=0.1))


def test_statistics_stream_one_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each record batch is read, then added to the statistics, before the next is read."""
    monkeypatch.setattr(executor, "BATCH_SIZE", 100)
    examples = _examples(tmp_path / "examples", {"train": _edge_records(1000)})
    events: list[tuple[str, int]] = []
    compute = in_process.statistics
    combine_fn = private_apis.tfdv_combiner_stats_fn

    def reading(batches: Any, options: Any) -> Any:
        def each() -> Any:
            for batch in batches:
                events.append(("read", batch.num_rows))
                yield batch

        return compute(each(), options)

    def adding(generators: Any, batch_size: Any) -> Any:
        combine = combine_fn(generators, batch_size)
        add = combine.add_input

        def add_input(accumulator: Any, batch: Any) -> Any:
            events.append(("add", batch.num_rows))
            return add(accumulator, batch)

        combine.add_input = add_input
        return combine

    monkeypatch.setattr(in_process, "statistics", reading)
    monkeypatch.setattr(private_apis, "tfdv_combiner_stats_fn", adding)
    statistics = _run(executor.Executor, examples, tmp_path / "out")
    assert events == [("read", 100), ("add", 100)] * 10
    assert _statistics(statistics, "train")["datasets"][0]["numExamples"] == "1000"


def test_free_heap_pages_go_back_after_each_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = _examples(
        tmp_path / "examples", {"train": _edge_records(300), "eval": _edge_records(100)}
    )
    events: list[str] = []
    compute = in_process.statistics

    def computing(batches: Any, options: Any) -> Any:
        result = compute(batches, options)
        events.append(f"statistics of {result.datasets[0].num_examples}")
        return result

    monkeypatch.setattr(in_process, "statistics", computing)
    monkeypatch.setattr(native_heap, "trim", lambda: events.append("trim"))
    _run(executor.Executor, examples, tmp_path / "out")
    assert events == ["statistics of 300", "trim", "statistics of 100", "trim"]


def test_record_batches_are_tfxios_in_order_and_decoded_a_few_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfx_bsl.coders import example_coder
    from tfx_bsl.public import tfxio

    _examples(tmp_path / "examples", {"train": _edge_records(2000)})
    pattern = str(tmp_path / "examples" / "Split-train" / "*")
    options = tfxio.RecordBatchesOptions(batch_size=150, num_epochs=1, shuffle=False)
    theirs = list(tfxio.TFExampleRecord(pattern).RecordBatches(options))

    decoded = []
    decoder_class = example_coder.ExamplesToRecordBatchDecoder

    class Counting:
        def __init__(self) -> None:
            self._decoder = decoder_class()

        def DecodeBatch(self, records: Any) -> Any:
            decoded.append(len(records))
            return self._decoder.DecodeBatch(records)

    monkeypatch.setattr(example_coder, "ExamplesToRecordBatchDecoder", Counting)
    ours = []
    for batch in in_process.record_batches([pattern], 150, threads=2):
        ours.append(batch)
        assert len(decoded) - len(ours) <= 3
    assert len(ours) == len(theirs) == 14
    assert all(a.equals(b) for a, b in zip(ours, theirs, strict=True))
