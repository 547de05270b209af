"""The anomalies gate, on real TFDV anomalies."""

from __future__ import annotations

import csv
import os

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.gate.anomalies import (
    AnomaliesFoundError,
    check,
    describe,
    read_anomalies,
    split_names_of,
)
from tests.conftest import load_schema, read_csv_rows


def _anomalies(rows: list[dict[str, str]], tmp_path, drop: str = "") -> anomalies_pb2.Anomalies:
    """Validates CSV rows against the curated schema; TFDV's CSV decoder infers
    column types the same way CsvExampleGen does."""
    columns = [c for c in rows[0] if c != drop]
    path = tmp_path / "data.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    stats = tfdv.generate_statistics_from_csv(str(path))
    return tfdv.validate_statistics(stats, load_schema())


@pytest.fixture(scope="module")
def good_rows() -> list[dict[str, str]]:
    return read_csv_rows(limit=300)


def test_clean_data_passes(good_rows, tmp_path):
    check({"train": _anomalies(good_rows, tmp_path)})


def test_out_of_domain_value_is_named(good_rows, tmp_path):
    rows = [dict(r) for r in good_rows]
    rows[0]["trip_start_hour"] = "27"
    with pytest.raises(AnomaliesFoundError) as raised:
        check({"eval": _anomalies(rows, tmp_path)})
    message = str(raised.value)
    assert "[eval] feature 'trip_start_hour'" in message
    assert "INT_TYPE_BIG_INT" in message
    assert "nothing is trained or pushed" in message


def test_missing_column_is_named(good_rows, tmp_path):
    lines = describe({"train": _anomalies(good_rows, tmp_path, drop="company")})
    assert len(lines) == 1
    assert "[train] feature 'company': SCHEMA_MISSING_COLUMN" in lines[0]


def test_type_drift_is_named(good_rows, tmp_path):
    rows = [dict(r) for r in good_rows]
    rows[5]["fare"] = "twelve dollars"
    lines = describe({"train": _anomalies(rows, tmp_path)})
    assert any("feature 'fare'" in line and "UNEXPECTED_DATA_TYPE" in line for line in lines), lines


def test_reads_the_example_anomalies_artifact_layout(tmp_path, good_rows):
    anomalies = _anomalies(good_rows, tmp_path, drop="company")
    for split in ("train", "eval"):
        os.makedirs(tmp_path / f"Split-{split}")
        with tf.io.gfile.GFile(str(tmp_path / f"Split-{split}" / "SchemaDiff.pb"), "wb") as f:
            f.write(anomalies.SerializeToString())
    read = read_anomalies(str(tmp_path), split_names_of('["train", "eval"]'))
    assert set(read) == {"train", "eval"}
    with pytest.raises(AnomaliesFoundError, match="2 anomalies"):
        check(read)


def test_missing_split_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Split-train"):
        read_anomalies(str(tmp_path), ["train"])


def test_split_names_must_be_a_nonempty_list():
    with pytest.raises(ValueError, match="no split names"):
        split_names_of("[]")


def test_a_label_with_one_class_is_named_as_the_label(tmp_path):
    """init's schema bounds the label's classes; the gate says what a violation means."""
    path = tmp_path / "data.csv"
    path.write_text("x,y\n" + "".join(f"{i},yes\n" for i in range(40)))
    stats = tfdv.generate_statistics_from_csv(str(path))
    schema = tfdv.infer_schema(stats)
    label = tfdv.get_feature(schema, "y")
    label.unique_constraints.min, label.unique_constraints.max = 2, 2
    stats = tfdv.generate_statistics_from_csv(
        str(path), stats_options=tfdv.StatsOptions(schema=schema)
    )
    anomalies = {"train": tfdv.validate_statistics(stats, schema)}
    (line,) = describe(anomalies, label_columns=["y"])
    assert line.startswith("[train] label 'y' has fewer than two classes in the train split")
    with pytest.raises(AnomaliesFoundError, match="label 'y' has fewer than two classes"):
        check(anomalies, ["y"])
    # Without knowing the label, the same anomaly reads as any feature's.
    assert "FEATURE_TYPE_LOW_UNIQUE" in describe(anomalies)[0]
