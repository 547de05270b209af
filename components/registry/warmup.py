"""TF Serving warmup requests (`assets.extra/tf_serving_warmup_requests`).

TF Serving replays these PredictionLog records when it loads a version, before
the version takes traffic, so the first real requests do not pay for graph
initialisation. They are built from real eval examples and cover both
serving signatures: `serving_default` (serialized tf.Examples, gRPC) and
`serving_raw` (feature tensors, REST).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from components.features import FEATURES
from components.signatures import SERVING_DEFAULT, SERVING_RAW, raw_input_specs

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
# TF Serving refuses to load a model whose warmup file holds more records.
MAX_RECORDS = 1000


def _raw_values(example: tf.train.Example) -> dict[str, object] | None:
    """One value per feature, a missing one filled with its registry default.

    `preprocessing_fn` fills an empty cell with the same default, so the raw
    request computes what the tf.Example one does. None for a row with a
    multi-valued feature, which serving_raw cannot carry.
    """
    values: dict[str, object] = {}
    for f in FEATURES:
        feature = example.features.feature.get(f.name)
        kind = feature.WhichOneof("kind") if feature is not None else None
        listed = list(getattr(feature, kind).value) if kind else []
        if len(listed) > 1:
            return None
        values[f.name] = listed[0] if listed else f.default
    return values


def _request(model_name: str, signature: str) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    return request


def build_requests(
    serialized_examples: Iterable[bytes], model_name: str, count: int
) -> Iterator[predict_pb2.PredictRequest]:
    """Yields up to `count` requests, alternating the two serving signatures.

    Args:
        serialized_examples: Raw tf.Examples, as ExampleGen writes them.
        model_name: The name TF Serving serves the model under.
        count: Number of requests, 1..MAX_RECORDS.

    Raises:
        ValueError: `count` is out of range.
    """
    if not 1 <= count <= MAX_RECORDS:
        raise ValueError(f"warmup request count must be in 1..{MAX_RECORDS}, got {count}")
    made = 0
    for serialized in serialized_examples:
        if made >= count:
            return
        request = _request(model_name, SERVING_DEFAULT)
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto([serialized], dtype=tf.string))
        yield request
        made += 1
        values = _raw_values(tf.train.Example.FromString(serialized))
        if values is not None and made < count:
            request = _request(model_name, SERVING_RAW)
            for name, spec in raw_input_specs().items():
                request.inputs[name].CopyFrom(
                    tf.make_tensor_proto([values[name]], dtype=spec.dtype)
                )
            yield request
            made += 1


def write(path: str, requests: Iterable[predict_pb2.PredictRequest]) -> int:
    """Writes PredictionLog records to a TFRecord file; returns how many.

    Raises:
        ValueError: No requests at all (an empty eval split).
    """
    written = 0
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
            written += 1
    if not written:
        raise ValueError(f"{path}: no examples to build warmup requests from")
    return written


def read(path: str) -> list[prediction_log_pb2.PredictionLog]:
    """Parses a warmup file back into PredictionLog records."""
    return [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(path)
    ]
