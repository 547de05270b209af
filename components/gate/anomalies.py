"""Reads an ExampleAnomalies artifact and turns its anomalies into one message."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2


class AnomaliesFoundError(RuntimeError):
    """The data deviates from the curated schema."""


def read_anomalies(uri: str, split_names: Sequence[str]) -> dict[str, anomalies_pb2.Anomalies]:
    """Loads each split's Anomalies proto from an ExampleAnomalies artifact dir.

    Raises:
        FileNotFoundError: A split has no SchemaDiff.pb.
    """
    result = {}
    for split in split_names:
        path = os.path.join(uri, f"Split-{split}", "SchemaDiff.pb")
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"ExampleAnomalies artifact {uri} has no {path}")
        anomalies = anomalies_pb2.Anomalies()
        with tf.io.gfile.GFile(path, "rb") as f:
            anomalies.ParseFromString(f.read())
        result[split] = anomalies
    return result


def split_names_of(split_names_property: str) -> list[str]:
    """Parses an artifact's `split_names` property (a JSON list)."""
    names = json.loads(split_names_property or "[]")
    if not isinstance(names, list) or not names:
        raise ValueError(f"artifact has no split names: {split_names_property!r}")
    return [str(n) for n in names]


_FEW_VALUES = anomalies_pb2.AnomalyInfo.FEATURE_TYPE_LOW_UNIQUE
_NON_FINITE = (
    anomalies_pb2.AnomalyInfo.FLOAT_TYPE_HAS_NAN,
    anomalies_pb2.AnomalyInfo.FLOAT_TYPE_HAS_INF,
)
# (split, feature) -> how many NaN and inf values, and of how many values.
NonFiniteCounter = Callable[[str, str], tuple[int, int, int]]


def count_non_finite(examples_uri: str) -> NonFiniteCounter:
    """A counter of one feature's NaN and inf values in a split of ExampleGen's output.

    TFDV says that a float feature has NaN or inf values, not how many; the
    gate counts them itself, only for a feature TFDV flagged, so only a
    failing run pays for the pass over the split.
    """

    def count(split: str, feature: str) -> tuple[int, int, int]:
        import numpy as np

        paths = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
        nan = inf = total = 0
        for record in tf.data.TFRecordDataset(paths, compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            values = np.asarray(example.features.feature[feature].float_list.value)
            nan += int(np.isnan(values).sum())
            inf += int(np.isinf(values).sum())
            total += values.size
        return nan, inf, total

    return count


def _non_finite_message(
    split: str, feature: str, info: anomalies_pb2.AnomalyInfo, counter: NonFiniteCounter
) -> str | None:
    if not any(reason.type in _NON_FINITE for reason in info.reason):
        return None
    nan, inf, total = counter(split, feature)
    found = " and ".join(f"{count} {name}" for count, name in ((nan, "NaN"), (inf, "inf")) if count)
    return (
        f"[{split}] feature {feature!r}: {found or 'NaN or inf'} value(s) among {total}: "
        "the schema refuses them (float_domain disallow_nan/disallow_inf), they would "
        "poison the statistics the model is normalised with; fix the data"
    )


def _label_message(split: str, column: str, info: anomalies_pb2.AnomalyInfo) -> str | None:
    """The label anomaly that matters most, said plainly: too few classes to learn from."""
    if any(reason.type == _FEW_VALUES for reason in info.reason):
        return (
            f"[{split}] label {column!r} has fewer than two classes in the {split} split "
            f"({info.description}): a model cannot learn or be judged on one class"
        )
    return None


def describe(
    anomalies_by_split: Mapping[str, anomalies_pb2.Anomalies],
    label_columns: Sequence[str] = (),
    non_finite: NonFiniteCounter | None = None,
) -> list[str]:
    """One line per anomalous feature and split: the feature, kind and detail.

    Args:
        anomalies_by_split: ExampleValidator's anomalies by split name.
        label_columns: The label's raw columns, whose anomalies are named as
            the label's.
        non_finite: Counts NaN and inf values of a flagged float feature
            (`count_non_finite`); None leaves TFDV's words alone.
    """
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature_name, info in sorted(anomalies.anomaly_info.items()):
            message = None
            if feature_name in label_columns:
                message = _label_message(split, feature_name, info)
            if message is None and non_finite is not None:
                message = _non_finite_message(split, feature_name, info, non_finite)
            if message:
                lines.append(message)
                continue
            kinds = ", ".join(
                anomalies_pb2.AnomalyInfo.Type.Name(reason.type) for reason in info.reason
            )
            detail = info.description or info.short_description
            lines.append(f"[{split}] feature {feature_name!r}: {kinds}: {detail}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"[{split}] dataset: {info.description or info.short_description}")
    return lines


def check(
    anomalies_by_split: Mapping[str, anomalies_pb2.Anomalies],
    label_columns: Sequence[str] = (),
    non_finite: NonFiniteCounter | None = None,
) -> None:
    """Raises AnomaliesFoundError naming every anomaly, if there is any."""
    lines = describe(anomalies_by_split, label_columns, non_finite)
    if lines:
        raise AnomaliesFoundError(
            f"ExampleValidator found {len(lines)} anomal{'y' if len(lines) == 1 else 'ies'} "
            "against the curated schema; nothing is trained or pushed: " + "; ".join(lines)
        )
