"""TF Serving warmup requests (`assets.extra/tf_serving_warmup_requests`).

TF Serving replays these PredictionLog records when it loads a version, before
the version takes traffic, so the first real requests do not pay for graph
initialisation. They are built from real eval examples and cover both
serving signatures: `serving_default` (serialized tf.Examples, gRPC) and
`serving_raw` (feature tensors, REST).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from components.contracts import SERVING_DEFAULT, SERVING_DEFAULT_INPUT, SERVING_RAW
from components.workload import FLOAT, INT, ServingColumn

_DTYPES = {FLOAT: tf.float32, INT: tf.int64}

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
# TF Serving refuses to load a model whose warmup file holds more records.
MAX_RECORDS = 1000


def raw_values(
    example: tf.train.Example, columns: Sequence[ServingColumn]
) -> dict[str, object] | None:
    """One value per serving column, a missing one filled with the column's fill.

    The transform graph fills an empty cell the same way, so the raw request
    computes what the tf.Example one does. None for a row with a
    multi-valued feature, which serving_raw cannot carry.
    """
    values: dict[str, object] = {}
    for column in columns:
        feature = example.features.feature.get(column.name)
        kind = feature.WhichOneof("kind") if feature is not None else None
        listed = list(getattr(feature, kind).value) if kind else []
        if len(listed) > 1:
            return None
        values[column.name] = listed[0] if listed else column.fill
    return values


def _request(model_name: str, signature: str) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    return request


def build_requests(
    serialized_examples: Iterable[bytes],
    model_name: str,
    count: int,
    columns: Sequence[ServingColumn],
) -> Iterator[predict_pb2.PredictRequest]:
    """Yields up to `count` requests, alternating the two serving signatures.

    Args:
        serialized_examples: Raw tf.Examples, as ExampleGen writes them.
        model_name: The name TF Serving serves the model under.
        count: Number of requests, 1..MAX_RECORDS.
        columns: The serving_raw signature's inputs, typed, with their fills.

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
        request.inputs[SERVING_DEFAULT_INPUT].CopyFrom(
            tf.make_tensor_proto([serialized], dtype=tf.string)
        )
        yield request
        made += 1
        values = raw_values(tf.train.Example.FromString(serialized), columns)
        if values is not None and made < count:
            request = _request(model_name, SERVING_RAW)
            for column in columns:
                request.inputs[column.name].CopyFrom(
                    tf.make_tensor_proto(
                        [values[column.name]], dtype=_DTYPES.get(column.dtype, tf.string)
                    )
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
