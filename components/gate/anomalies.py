"""Reads an ExampleAnomalies artifact and turns its anomalies into one message."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

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


def _label_message(split: str, column: str, info: anomalies_pb2.AnomalyInfo) -> str | None:
    """The label anomaly that matters most, said plainly: too few classes to learn from."""
    if any(reason.type == _FEW_VALUES for reason in info.reason):
        return (
            f"[{split}] label {column!r} has fewer than two classes in the {split} split "
            f"({info.description}): a model cannot learn or be judged on one class"
        )
    return None


def describe(
    anomalies_by_split: Mapping[str, anomalies_pb2.Anomalies], label_columns: Sequence[str] = ()
) -> list[str]:
    """One line per anomalous feature and split: the feature, kind and detail.

    Args:
        anomalies_by_split: ExampleValidator's anomalies by split name.
        label_columns: The label's raw columns, whose anomalies are named as
            the label's.
    """
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature_name, info in sorted(anomalies.anomaly_info.items()):
            if feature_name in label_columns:
                message = _label_message(split, feature_name, info)
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
    anomalies_by_split: Mapping[str, anomalies_pb2.Anomalies], label_columns: Sequence[str] = ()
) -> None:
    """Raises AnomaliesFoundError naming every anomaly, if there is any."""
    lines = describe(anomalies_by_split, label_columns)
    if lines:
        raise AnomaliesFoundError(
            f"ExampleValidator found {len(lines)} anomal{'y' if len(lines) == 1 else 'ies'} "
            "against the curated schema; nothing is trained or pushed: " + "; ".join(lines)
        )
