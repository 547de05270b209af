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


def describe(anomalies_by_split: Mapping[str, anomalies_pb2.Anomalies]) -> list[str]:
    """One line per anomalous feature and split: the feature, kind and detail."""
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature_name, info in sorted(anomalies.anomaly_info.items()):
            kinds = ", ".join(
                anomalies_pb2.AnomalyInfo.Type.Name(reason.type) for reason in info.reason
            )
            detail = info.description or info.short_description
            lines.append(f"[{split}] feature {feature_name!r}: {kinds}: {detail}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"[{split}] dataset: {info.description or info.short_description}")
    return lines


def check(anomalies_by_split: Mapping[str, anomalies_pb2.Anomalies]) -> None:
    """Raises AnomaliesFoundError naming every anomaly, if there is any."""
    lines = describe(anomalies_by_split)
    if lines:
        raise AnomaliesFoundError(
            f"ExampleValidator found {len(lines)} anomal{'y' if len(lines) == 1 else 'ies'} "
            "against the curated schema; nothing is trained or pushed: " + "; ".join(lines)
        )
