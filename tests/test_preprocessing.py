"""preprocessing_fn, run for real by tft_beam.AnalyzeAndTransformDataset."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components.features import FEATURES, LABEL, Kind, feature
from components.preprocessing import compute_label, fill_missing
from tests.conftest import load_schema, to_tf_example


def _column(rows, name):
    return np.array([r[name] for r in rows])


def test_outputs_every_registered_feature_and_the_label(transformed):
    _, rows = transformed
    expected = {f.transformed_name for f in FEATURES} | {LABEL.name}
    assert set(rows[0]) == expected


def test_transformed_schema_types(transformed):
    output = tft.TFTransformOutput(transformed[0])
    spec = output.transformed_feature_spec()
    for f in FEATURES:
        want = tf.float32 if f.kind is Kind.NUMERIC else tf.int64
        assert spec[f.transformed_name].dtype == want, f.name
        assert isinstance(spec[f.transformed_name], tf.io.FixedLenFeature)
    assert spec[LABEL.name].dtype == tf.int64


def test_numeric_features_are_z_scores(taxi_rows, transformed):
    _, rows = transformed
    for name in ("fare", "trip_miles"):
        raw = np.array([float(r[name] or 0.0) for r in taxi_rows])
        got = _column(rows, f"{name}_xf")
        np.testing.assert_allclose(got, (raw - raw.mean()) / raw.std(), rtol=1e-4, atol=1e-4)
        assert abs(got.mean()) < 1e-4 and abs(got.std() - 1.0) < 1e-3


def test_missing_numeric_is_filled_with_default(taxi_rows, transformed):
    _, rows = transformed
    raw = np.array([float(r["trip_seconds"]) if r["trip_seconds"] else 0.0 for r in taxi_rows])
    got = _column(rows, "trip_seconds_xf")
    np.testing.assert_allclose(got, (raw - raw.mean()) / raw.std(), rtol=1e-4, atol=1e-4)


def test_bucketized_coordinates_follow_quantile_boundaries(taxi_rows, transformed):
    transform_dir, rows = transformed
    f = feature("pickup_latitude")
    got = _column(rows, f.transformed_name)
    assert got.min() >= 0 and got.max() < f.num_buckets
    raw = np.array([float(r[f.name] or f.default) for r in taxi_rows])
    order = np.argsort(raw, kind="stable")
    # Buckets are monotone in the raw value ...
    assert np.all(np.diff(got[order]) >= 0)
    # ... and quantile-based: no bucket holds most of the rows.
    counts = np.bincount(got, minlength=f.num_buckets)
    assert counts.max() <= 0.3 * len(rows), counts
    # Values outside the analysed range land in the first and last buckets.
    low, high = (
        _transform_one(transform_dir, pickup_latitude="41.0"),
        _transform_one(transform_dir, pickup_latitude="42.5"),
    )
    assert low[f.transformed_name] == 0
    assert high[f.transformed_name] == got.max()


def test_vocabulary_is_frequency_ordered_with_oov_buckets(taxi_rows, transformed):
    transform_dir, rows = transformed
    f = feature("payment_type")
    output = tft.TFTransformOutput(transform_dir)
    vocab = [
        v.decode() if isinstance(v, bytes) else v
        for v in output.vocabulary_by_name(f.vocabulary_name)
    ]
    counts: dict[str, int] = {}
    for r in taxi_rows:
        counts[r[f.name]] = counts.get(r[f.name], 0) + 1
    assert vocab[0] == max(counts, key=counts.get)
    assert set(vocab) == set(counts)
    got = _column(rows, f.transformed_name)
    for raw_row, index in zip(taxi_rows, got, strict=True):
        assert vocab[index] == raw_row[f.name]


def _transform_one(transform_dir: str, **cells: str) -> dict[str, float | int]:
    """Applies the saved transform graph to one row with only required cells set."""
    output = tft.TFTransformOutput(transform_dir)
    schema = load_schema()
    row = {c.name: "" for c in schema.feature}
    row.update(
        fare="10.0",
        trip_start_month="1",
        trip_start_hour="3",
        trip_start_day="2",
        trip_start_timestamp="1400000000",
        trip_miles="1.0",
        tips="0",
        payment_type="Cash",
    )
    row.update(cells)
    parsed = tf.io.parse_example([to_tf_example(row, schema)], output.raw_feature_spec())
    out = output.transform_features_layer()(parsed)
    return {k: v.numpy()[0].item() for k, v in out.items()}


def test_unseen_category_maps_to_an_oov_bucket(transformed):
    transform_dir, _ = transformed
    f = feature("payment_type")
    vocab_size = tft.TFTransformOutput(transform_dir).vocabulary_size_by_name(f.vocabulary_name)
    index = _transform_one(transform_dir, payment_type="Bitcoin, never seen")[f.transformed_name]
    assert vocab_size <= index < vocab_size + f.oov_buckets


def test_label_is_tip_over_20_percent_of_fare(taxi_rows, transformed):
    _, rows = transformed
    for raw, row in zip(taxi_rows, rows, strict=True):
        # tf.Examples carry float32, so the comparison is made in float32.
        fare, tips = np.float32(raw["fare"] or 0), np.float32(raw["tips"] or 0)
        assert row[LABEL.name] == int(fare > 0 and tips > np.float32(0.2) * fare), raw
    assert 0 < sum(r[LABEL.name] for r in rows) < len(rows)


def test_compute_label_edge_cases():
    tips = tf.constant([2.0, 2.0, 0.0, 1.0])
    fare = tf.constant([10.0, 9.0, 0.0, 0.0])
    # exactly 20% is not "more than"; zero fare is never a big tip
    assert compute_label(tips, fare).numpy().tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize(
    "value, expected",
    [
        (tf.sparse.SparseTensor([[0, 0], [2, 0]], [1.5, 2.5], [3, 1]), [1.5, -1.0, 2.5]),
        (tf.constant([[1.0], [2.0], [3.0]]), [1.0, 2.0, 3.0]),
        (tf.constant([4.0, 5.0]), [4.0, 5.0]),
    ],
)
def test_fill_missing(value, expected):
    assert fill_missing(value, -1.0).numpy().tolist() == expected
