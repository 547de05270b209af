"""The declarative package's preprocessing_fn, run for real by tft_beam.AnalyzeAndTransformDataset.

On 200 taxi rows with the taxi workload (numeric, bucketized, categorical
and a derived label), and on small frames for text, numbers written as text
with NA, and multiclass labels.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_metadata.proto.v0 import schema_pb2

from components.contracts import LABEL_KEY, LABEL_VOCABULARY, transformed_name, vocabulary_name
from components.workload import FeatureSpec, LabelSpec, Workload
from models.declarative.preprocessing import fill_missing
from models.declarative.text import tokenize
from models.taxi.labels import big_tipper
from tests.conftest import load_schema, run_transform, taxi_config, to_tf_example

TAXI = taxi_config().model


def _column(rows, name):
    return np.array([r[name] for r in rows])


def test_outputs_every_configured_feature_and_the_label(transformed):
    _, rows = transformed
    expected = {transformed_name(name) for name in TAXI.features} | {LABEL_KEY}
    assert set(rows[0]) == expected


def test_transformed_schema_types(transformed):
    output = tft.TFTransformOutput(transformed[0])
    spec = output.transformed_feature_spec()
    for name, f in TAXI.features.items():
        want = tf.float32 if f.kind == "numeric" and not f.buckets else tf.int64
        assert spec[transformed_name(name)].dtype == want, name
        assert isinstance(spec[transformed_name(name)], tf.io.FixedLenFeature)
    assert spec[LABEL_KEY].dtype == tf.int64


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
    name, f = "pickup_latitude", TAXI.features["pickup_latitude"]
    got = _column(rows, transformed_name(name))
    assert got.min() >= 0 and got.max() < f.buckets
    raw = np.array([float(r[name] or 0.0) for r in taxi_rows])
    order = np.argsort(raw, kind="stable")
    # Buckets are monotone in the raw value ...
    assert np.all(np.diff(got[order]) >= 0)
    # ... and quantile-based: no bucket holds most of the rows.
    counts = np.bincount(got, minlength=f.buckets)
    assert counts.max() <= 0.3 * len(rows), counts
    # Values outside the analysed range land in the first and last buckets.
    low, high = (
        _transform_one(transform_dir, pickup_latitude="41.0"),
        _transform_one(transform_dir, pickup_latitude="42.5"),
    )
    assert low[transformed_name(name)] == 0
    assert high[transformed_name(name)] == got.max()


def _vocabulary(transform_dir: str, name: str) -> list[str]:
    output = tft.TFTransformOutput(transform_dir)
    return [v.decode() if isinstance(v, bytes) else v for v in output.vocabulary_by_name(name)]


def test_vocabulary_is_frequency_ordered_with_oov_buckets(taxi_rows, transformed):
    transform_dir, rows = transformed
    name = "payment_type"
    vocab = _vocabulary(transform_dir, vocabulary_name(name))
    counts: dict[str, int] = {}
    for r in taxi_rows:
        counts[r[name]] = counts.get(r[name], 0) + 1
    assert vocab[0] == max(counts, key=counts.get)
    assert set(vocab) == set(counts)
    got = _column(rows, transformed_name(name))
    for raw_row, index in zip(taxi_rows, got, strict=True):
        assert vocab[index] == raw_row[name]


def test_integer_categories_get_a_vocabulary_of_their_values(taxi_rows, transformed):
    transform_dir, rows = transformed
    vocab = _vocabulary(transform_dir, vocabulary_name("trip_start_hour"))
    assert set(vocab) == {r["trip_start_hour"] for r in taxi_rows}
    for raw_row, index in zip(taxi_rows, _column(rows, "trip_start_hour_xf"), strict=True):
        assert vocab[index] == raw_row["trip_start_hour"]


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
    name, f = "payment_type", TAXI.features["payment_type"]
    size = tft.TFTransformOutput(transform_dir).vocabulary_size_by_name(vocabulary_name(name))
    index = _transform_one(transform_dir, payment_type="Bitcoin, never seen")[
        transformed_name(name)
    ]
    assert size <= index < size + f.oov_buckets


def test_label_is_tip_over_20_percent_of_fare(taxi_rows, transformed):
    _, rows = transformed
    for raw, row in zip(taxi_rows, rows, strict=True):
        # tf.Examples carry float32, so the comparison is made in float32.
        fare, tips = np.float32(raw["fare"] or 0), np.float32(raw["tips"] or 0)
        assert row[LABEL_KEY] == int(fare > 0 and tips > np.float32(0.2) * fare), raw
    assert 0 < sum(r[LABEL_KEY] for r in rows) < len(rows)


def test_big_tipper_edge_cases():
    columns = {
        "tips": tf.constant([2.0, 2.0, 0.0, 1.0]),
        "fare": tf.constant([10.0, 9.0, 0.0, 0.0]),
    }
    # exactly 20% is not "more than"; zero fare is never a big tip
    assert big_tipper(columns).numpy().tolist() == [0, 1, 0, 0]


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


def _schema(**types: int) -> schema_pb2.Schema:
    """A schema of optional columns of the given types (schema_pb2.FLOAT, INT, BYTES)."""
    schema = schema_pb2.Schema()
    for name, kind in types.items():
        feature = schema.feature.add(name=name, type=kind)
        feature.value_count.max = 1
    return schema


REVIEWS = [
    {"review": "A GREAT film. Great acting!", "stars": "5", "label": "pos"},
    {"review": "Great, great, great: <br />loved it", "stars": "4", "label": "pos"},
    {"review": "awful film; awful plot", "stars": "NA", "label": "neg"},
    {"review": "", "stars": "1.5", "label": "neg"},
]


@pytest.fixture(scope="module")
def text_transform(tmp_path_factory):
    workload = Workload(
        label=LabelSpec(column="label", task="binary", positive="pos"),
        features={
            "review": FeatureSpec(kind="text", max_tokens=4, vocab_size=3, oov_buckets=1),
            "stars": FeatureSpec(kind="numeric", fill=3.0),
        },
    )
    schema = _schema(review=schema_pb2.BYTES, stars=schema_pb2.BYTES, label=schema_pb2.BYTES)
    output_dir = str(tmp_path_factory.mktemp("text_tft"))
    return output_dir, run_transform(REVIEWS, output_dir, workload, schema)


def test_tokenizer_lowercases_and_drops_markup_and_punctuation():
    tokens = tokenize(tf.constant(["A GREAT film. Great acting!", "<br />Hi,there", ""]), 3)
    assert tokens.to_list() == [[b"a", b"great", b"film"], [b"hi", b"there"], []]


def test_text_becomes_padded_ids_of_a_top_k_vocabulary_with_oov(text_transform):
    transform_dir, rows = text_transform
    vocab = _vocabulary(transform_dir, vocabulary_name("review"))
    # top 3 by frequency: great (5), awful (2), film (2) ...
    assert vocab[0] == "great" and set(vocab) == {"great", "awful", "film"}
    ids = [list(r["review_xf"]) for r in rows]
    assert all(len(row) == 4 for row in ids)  # max_tokens, 0-padded
    great, awful, film = (vocab.index(w) + 1 for w in ("great", "awful", "film"))
    oov = len(vocab) + 1  # the one OOV bucket, shifted by one like every id
    # "a great film great" (cut at 4 tokens; "a" is out of the vocabulary)
    assert ids[0] == [oov, great, film, great]
    # "great great great loved" (the <br /> tag and the punctuation are gone)
    assert ids[1] == [great, great, great, oov]
    assert ids[2] == [awful, film, awful, oov]
    assert ids[3] == [0, 0, 0, 0]  # an empty review is all padding


def test_numbers_written_as_text_are_parsed_and_na_is_filled(text_transform):
    _, rows = text_transform
    # NA takes the fill (3.0): values 5, 4, 3, 1.5, z-scored.
    raw = np.array([5.0, 4.0, 3.0, 1.5])
    got = np.array([r["stars_xf"] for r in rows])
    np.testing.assert_allclose(got, (raw - raw.mean()) / raw.std(), rtol=1e-4, atol=1e-4)


def test_binary_label_column_with_a_positive_value(text_transform):
    _, rows = text_transform
    assert [r[LABEL_KEY] for r in rows] == [1, 1, 0, 0]


def test_multiclass_label_ids_follow_the_label_vocabulary(tmp_path):
    rows = [{"x": str(i), "y": y} for i, y in enumerate(["b", "a", "b", "c", "b", "a"])]
    workload = Workload(
        label=LabelSpec(column="y", task="multiclass"),
        features={"x": FeatureSpec(kind="numeric")},
    )
    schema = _schema(x=schema_pb2.INT, y=schema_pb2.BYTES)
    got = run_transform(rows, str(tmp_path), workload, schema)
    classes = _vocabulary(str(tmp_path), LABEL_VOCABULARY)
    assert classes == ["b", "a", "c"]  # by frequency; the rare class is kept
    assert [classes[r[LABEL_KEY]] for r in got] == [r["y"] for r in rows]


def test_a_class_the_training_split_lacks_takes_the_oov_id_not_minus_one(tmp_path):
    """An eval row of a class training never saw must not give the loss a -1 label."""
    import tensorflow_transform as tft

    from components.contracts import LABEL_OOV_BUCKETS

    rows = [{"x": str(i), "y": y} for i, y in enumerate(["b", "a", "b"])]
    workload = Workload(
        label=LabelSpec(column="y", task="multiclass"), features={"x": FeatureSpec(kind="numeric")}
    )
    run_transform(rows, str(tmp_path), workload, _schema(x=schema_pb2.INT, y=schema_pb2.BYTES))
    output = tft.TFTransformOutput(str(tmp_path))
    parsed = tf.io.parse_example(
        [
            tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "x": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
                        "y": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"emperor"])),
                    }
                )
            ).SerializeToString()
        ],
        output.raw_feature_spec(),
    )
    label = output.transform_features_layer()(parsed)[LABEL_KEY].numpy().tolist()
    assert LABEL_OOV_BUCKETS == 1 and label == [2]  # the vocabulary holds b, a


def test_float_classes_are_named_by_their_shortest_form(tmp_path):
    rows = [{"x": str(i), "y": y} for i, y in enumerate(["1.0", "2.0", "2.5", "1.0"])]
    workload = Workload(
        label=LabelSpec(column="y", task="multiclass"), features={"x": FeatureSpec(kind="numeric")}
    )
    run_transform(rows, str(tmp_path), workload, _schema(x=schema_pb2.INT, y=schema_pb2.FLOAT))
    assert sorted(_vocabulary(str(tmp_path), LABEL_VOCABULARY)) == ["1", "2", "2.5"]


def test_nan_and_inf_never_reach_the_statistics(tmp_path):
    """Should a schema allow them (the curated ones refuse them at the gate), they take the fill."""
    rows = [{"x": v, "y": str(i % 2)} for i, v in enumerate(["1.0", "nan", "3.0", "inf", "5.0"])]
    words = [{"x": v, "y": str(i % 2)} for i, v in enumerate(["1", "NA", "3", "1e40", "5"])]
    workload = Workload(
        label=LabelSpec(column="y"), features={"x": FeatureSpec(kind="numeric", fill=3.0)}
    )
    expected = np.array([1.0, 3.0, 3.0, 3.0, 5.0])
    z = (expected - expected.mean()) / expected.std()
    for data, kind, name in ((rows, schema_pb2.FLOAT, "float"), (words, schema_pb2.BYTES, "text")):
        got = run_transform(data, str(tmp_path / name), workload, _schema(x=kind, y=schema_pb2.INT))
        np.testing.assert_allclose([r["x_xf"] for r in got], z, rtol=1e-4, atol=1e-4)
