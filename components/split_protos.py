"""The per-split protos TFX components write: `<artifact uri>/Split-<split>/<file>`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from components import storage

SPLIT_PREFIX = "Split-"
STATISTICS_FILE = "FeatureStats.pb"  # StatisticsGen: DatasetFeatureStatisticsList
ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator: Anomalies

M = TypeVar("M", bound=Any)


def read_split_protos(uri: str, file_name: str, message_type: Callable[[], M]) -> dict[str, M]:
    """Each split's proto by split name, in name order; a split without the file is left out."""
    found: dict[str, M] = {}
    for name in sorted(storage.children(uri)):
        path = storage.join(uri, name, file_name)
        if name.startswith(SPLIT_PREFIX) and storage.exists(path):
            message = message_type()
            message.ParseFromString(storage.read_bytes(path))
            found[name[len(SPLIT_PREFIX) :]] = message
    return found


def split_records(uri: str, split: str) -> Iterator[bytes]:
    """Serialized records of one split of ExampleGen's output (gzipped TFRecords), in file order.

    Raises:
        ValueError: The split has no files.
    """
    import tensorflow as tf

    paths = sorted(tf.io.gfile.glob(storage.join(uri, f"{SPLIT_PREFIX}{split}", "*")))
    if not paths:
        raise ValueError(f"examples {uri}: no files in the {split} split")
    for record in tf.data.TFRecordDataset(paths, compression_type="GZIP"):
        yield record.numpy()
