"""TF Serving warmup requests: real PredictionLog records that run against the SavedModel."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from components.contracts import PROBABILITY as OUTPUT_KEY
from components.contracts import SERVING_DEFAULT, SERVING_RAW
from components.registry import warmup
from pipeline.serving.columns import columns_for
from tests.conftest import load_schema, read_csv_rows, taxi_config, to_tf_example

COLUMNS = columns_for(taxi_config())


@pytest.fixture(scope="module")
def raw_examples() -> list[bytes]:
    """Raw tf.Examples as CsvExampleGen writes them, label columns and empty cells included."""
    schema = load_schema()
    return [to_tf_example(row, schema) for row in read_csv_rows(limit=40)]


def test_warmup_file_parses_as_prediction_logs_and_every_request_runs(
    trained_model, raw_examples, tmp_path
):
    path = str(tmp_path / "tf_serving_warmup_requests")
    written = warmup.write(path, warmup.build_requests(raw_examples, "taxi", 50, COLUMNS))
    assert written == 50
    logs = warmup.read(path)
    assert len(logs) == 50
    assert all(log.WhichOneof("log_type") == "predict_log" for log in logs)
    signatures = {log.predict_log.request.model_spec.signature_name for log in logs}
    assert signatures == {SERVING_DEFAULT, SERVING_RAW}
    model = tf.saved_model.load(trained_model)
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "taxi"
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = model.signatures[request.model_spec.signature_name](**inputs)
        probability = outputs[OUTPUT_KEY].numpy()
        assert probability.shape == (1, 1)
        assert 0.0 <= float(probability[0, 0]) <= 1.0


def test_raw_requests_only_for_rows_with_every_feature(raw_examples):
    requests = list(warmup.build_requests(raw_examples, "taxi", 1000, COLUMNS))
    default = [r for r in requests if r.model_spec.signature_name == SERVING_DEFAULT]
    raw = [r for r in requests if r.model_spec.signature_name == SERVING_RAW]
    # Every row gives both; a missing cell takes the feature's default, as in
    # preprocessing_fn (test_both_signatures_agree_on_the_same_example).
    assert len(default) == len(raw) == len(raw_examples)
    served = {tuple(sorted(r.inputs)) for r in raw}
    assert len(served) == 1 and "company" in next(iter(served))


def test_both_signatures_agree_on_the_same_example(trained_model, raw_examples):
    requests = list(warmup.build_requests(raw_examples, "taxi", 1000, COLUMNS))
    model = tf.saved_model.load(trained_model)
    results = []
    for request in requests:
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        results.append(
            (
                request.model_spec.signature_name,
                model.signatures[request.model_spec.signature_name](**inputs)[OUTPUT_KEY].numpy(),
            )
        )
    # A raw request directly follows the tf.Example request of the same row.
    pairs = [
        (a[1], b[1])
        for a, b in itertools.pairwise(results)
        if a[0] == SERVING_DEFAULT and b[0] == SERVING_RAW
    ]
    assert pairs
    for from_example, from_raw in pairs:
        np.testing.assert_allclose(from_example, from_raw, atol=1e-6)


def test_bad_counts_and_empty_input_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"1\.\.1000, got 1001"):
        list(warmup.build_requests([], "taxi", 1001, COLUMNS))
    with pytest.raises(ValueError, match="no examples to build warmup requests"):
        warmup.write(str(tmp_path / "w"), warmup.build_requests([], "taxi", 10, COLUMNS))


def test_prediction_log_type_is_the_serving_one():
    # Guards against building the records from a look-alike proto.
    assert (
        prediction_log_pb2.PredictionLog.DESCRIPTOR.full_name == "tensorflow.serving.PredictionLog"
    )
