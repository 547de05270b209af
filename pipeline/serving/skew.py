"""Skew of served requests: TFDV statistics of logged REST bodies against the training data.

Three steps, each with TFDV and the records the pipeline left:

1. `read_requests`: JSON lines, each a REST predict body (`{"instances":
   [...]}`, or the columnar `{"inputs": {...}}`), or a record of the TLS
   front's sampled request log (`{"status": 200, "body": "<the body>", ...}`,
   kubernetes/serving/components/front/nginx.conf). Values are typed by the
   model's serving columns; a line that is not such a body is refused naming
   the file and the line.
2. `training_data`: the served version's manifest names its run and its
   ExampleGen output in ML Metadata; from there, the StatisticsGen statistics
   of that run (train split) and the curated schema StatisticsGen was given
   (the SchemaImporter's output).
3. `compare`: TFDV statistics of the requests (in memory, with the schema),
   validated against the schema restricted to the model's features (schema
   anomalies), with a drift comparator on each feature: L-infinity distance
   for a categorical feature (string statistics), approximate Jensen-Shannon
   divergence for a numeric one, thresholds from the `skew` section. The
   measured values are TFDV's own (`Anomalies.drift_skew_info`).

TensorFlow and TFDV load only in `compare`, pandas with them.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components import contracts, storage
from components.errors import UserError
from components.schema_io import parse_schema
from components.split_protos import STATISTICS_FILE, read_split_protos
from components.workload import FLOAT, INT, STRING, ServingColumn

if TYPE_CHECKING:
    from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

    from components.registry.store import Registry
    from pipeline.config import SkewConfig
    from pipeline.lineage.graph import MetadataGraph

CATEGORICAL = "categorical"
NUMERIC = "numeric"
L_INFINITY = "L-infinity"
JENSEN_SHANNON = "Jensen-Shannon"
MEASURES = {CATEGORICAL: L_INFINITY, NUMERIC: JENSEN_SHANNON}
# The environment a schema declares for serving (the label input is absent there).
SERVING_ENVIRONMENT = "SERVING"
# Anomaly reasons TFDV gives for a drift comparator over its threshold.
_DRIFT_REASONS = ("COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH")
# Why a line of the front's log carries no body to read.
NOT_SERVED = "answered with an error status"
NOT_LOGGED = "body not logged (over client_body_buffer_size)"

Values = list[float | int | bytes]


class RequestsError(UserError, ValueError):
    """A requests file that is not JSON lines of REST predict bodies."""


class TrainingDataError(UserError, LookupError):
    """The served version's training statistics or schema cannot be found."""


# 1. The requests.


@dataclass
class Requests:
    """The instances of a requests file, each column's values typed.

    Attributes:
        path: The file.
        instances: Each instance's values by column; a column it lacks is absent.
        lines: Non-blank lines read.
        bodies: Predict bodies among them.
        skipped: Lines without a body to read, by reason (front log records).
    """

    path: str
    instances: list[dict[str, Values]] = field(default_factory=list)
    lines: int = 0
    bodies: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        """`requests.jsonl: 30 lines, 30 bodies, 300 instances` (and what was skipped)."""
        text = (
            f"{self.path}: {self.lines} lines, {self.bodies} bodies, "
            f"{len(self.instances)} instances"
        )
        if self.skipped:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
            text += f" ({sum(self.skipped.values())} lines skipped: {reasons})"
        return text


def _typed(column: ServingColumn, value: Any) -> float | int | bytes:
    """One value typed for its column; raises ValueError saying what was expected."""
    if column.dtype == STRING:
        if isinstance(value, Mapping) and set(value) == {"b64"}:
            # TF Serving's REST form of binary strings.
            try:
                return base64.b64decode(str(value["b64"]), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"expected base64 under b64, found {value['b64']!r}") from None
        if not isinstance(value, str):
            raise ValueError(f"expected a string, found {json.dumps(value)}")
        return value.encode()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, found {json.dumps(value)}")
    if column.dtype == INT:
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise ValueError(f"expected an integer, found {value!r}")
        return int(value)
    return float(value)


def _instance(raw: Any, columns: Mapping[str, ServingColumn], where: str) -> dict[str, Values]:
    """One instance (column -> value, or a list of values) typed by the serving columns."""
    if not isinstance(raw, Mapping):
        raise RequestsError(
            f"{where}: expected an object of column -> value (serving_raw), found "
            f"{json.dumps(raw)[:60]}"
        )
    instance: dict[str, Values] = {}
    for name, value in raw.items():
        column = columns.get(name)
        if column is None:
            raise RequestsError(
                f"{where}: column {name!r} is not in the schema's model features; "
                f"expected some of: {', '.join(columns)}"
            )
        items = value if isinstance(value, list) else [] if value is None else [value]
        try:
            instance[name] = [_typed(column, item) for item in items]
        except ValueError as error:
            raise RequestsError(f"{where}, column {name!r} ({column.dtype}): {error}") from None
    return instance


def _body_instances(body: Any, where: str) -> list[Any]:
    """The raw instances of one predict body, row form or columnar form."""
    if not isinstance(body, Mapping):
        raise RequestsError(f"{where}: expected a JSON object, found {json.dumps(body)[:60]}")
    signature = body.get("signature_name", contracts.SERVING_RAW)
    if signature != contracts.SERVING_RAW:
        raise RequestsError(
            f"{where}: signature_name {signature!r}; skew reads {contracts.SERVING_RAW} "
            "bodies (one value per feature)"
        )
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise RequestsError(f"{where}: instances must be a list of objects")
        return instances
    if "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, Mapping) or not all(isinstance(v, list) for v in inputs.values()):
            raise RequestsError(f"{where}: inputs must be an object of column -> list of values")
        lengths = {len(v) for v in inputs.values()}
        if len(lengths) > 1:
            raise RequestsError(
                f"{where}: the inputs' columns have different lengths ({sorted(lengths)})"
            )
        count = lengths.pop() if lengths else 0
        return [{name: values[i] for name, values in inputs.items()} for i in range(count)]
    raise RequestsError(
        f"{where}: no instances (or inputs): expected a REST predict body such as "
        '{"instances": [{"fare": 5.0, ...}]}, found the keys ' + ", ".join(sorted(body))
    )


def _lines(path: str) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            yield from enumerate(f, start=1)
    except OSError as error:
        raise RequestsError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise RequestsError(f"{path} is not UTF-8 text: {error}") from None


def read_requests(path: str, columns: Sequence[ServingColumn]) -> Requests:
    """Reads a file of JSON lines, each a REST predict body or a front log record.

    A log record (an object with `body`, as the TLS front writes them) whose
    status is not 200 was not served and is skipped, as is one whose body
    nginx did not keep (an empty `body`); both are counted.

    Args:
        path: The file.
        columns: The model's serving columns: the columns an instance may
            carry, and their types.

    Returns:
        The typed instances and counts.

    Raises:
        RequestsError: The file is unreadable, a line is not JSON or not a
            predict body, a column is not a model feature or a value not of
            its type (each named by line), or there is no instance at all.
    """
    by_name = {c.name: c for c in columns}
    requests = Requests(path)
    for number, text in _lines(path):
        if not text.strip():
            continue
        requests.lines += 1
        where = f"{path}, line {number}"
        try:
            body = json.loads(text)
        except json.JSONDecodeError as error:
            raise RequestsError(f"{where}: not JSON ({error.msg}, column {error.colno})") from None
        if isinstance(body, Mapping) and "body" in body and "instances" not in body:
            status = body.get("status", 200)
            if str(status) != "200":
                requests.skipped[NOT_SERVED] += 1
                continue
            if not isinstance(body["body"], str):
                raise RequestsError(f"{where}: the log record's body must be a string")
            if not body["body"]:
                requests.skipped[NOT_LOGGED] += 1
                continue
            try:
                body = json.loads(body["body"])
            except json.JSONDecodeError as error:
                raise RequestsError(
                    f"{where}: the logged body is not JSON ({error.msg}, column {error.colno})"
                ) from None
        instances = _body_instances(body, where)
        requests.bodies += 1
        for i, raw in enumerate(instances, start=1):
            requests.instances.append(_instance(raw, by_name, f"{where}, instance {i}"))
    if not requests.instances:
        raise RequestsError(f"{path}: no instances to compare ({requests.describe()})")
    return requests


# 2. The training data of the served version.


def served_version(
    registry: Registry, version: int | None = None, label: str | None = None
) -> tuple[int, str]:
    """The version to compare with, and how it was chosen.

    Args:
        registry: The registry.
        version: --version; None to choose by label.
        label: --label; None: the `stable` label if set, else the newest
            complete version.

    Returns:
        (version number, e.g. "label 'stable'").

    Raises:
        RegistryError: The version or label names nothing in the registry.
    """
    if version is not None:
        return registry.version(version).number, f"version {version}"
    if label is not None:
        return registry.resolve(label).number, f"label {label!r}"
    if contracts.STABLE_LABEL in registry.labels():
        return (
            registry.resolve(contracts.STABLE_LABEL).number,
            f"label {contracts.STABLE_LABEL!r}",
        )
    return registry.resolve("latest").number, "the newest version (no stable label)"


@dataclass(frozen=True)
class TrainingData:
    """What the served version was trained on, as its run recorded it.

    Attributes:
        run_id: The run that pushed the version.
        statistics_uri: StatisticsGen's output.
        schema_uri: The curated schema StatisticsGen was given.
        statistics: The train split's statistics.
        schema: The curated schema.
    """

    run_id: str | None
    statistics_uri: str
    schema_uri: str
    statistics: statistics_pb2.DatasetFeatureStatisticsList
    schema: schema_pb2.Schema

    @property
    def examples(self) -> int:
        return int(self.statistics.datasets[0].num_examples) if self.statistics.datasets else 0


def training_data(graph: MetadataGraph, manifest: Mapping[str, Any], where: str) -> TrainingData:
    """The train split's statistics and the curated schema of the run that pushed a version.

    Args:
        graph: ML Metadata, either dialect.
        manifest: The version's manifest.json.
        where: The version, for messages.

    Returns:
        The statistics and the schema, with their URIs.

    Raises:
        TrainingDataError: The manifest names no examples, or ML Metadata
            holds no statistics, train split or schema for them.
        LineageError: An id the manifest names is not in the store.
    """
    from tensorflow_metadata.proto.v0 import statistics_pb2

    examples_id = (manifest.get("mlmd") or {}).get("examples_id")
    run_id = (manifest.get("pipeline") or {}).get("run_id")
    if not isinstance(examples_id, int):
        raise TrainingDataError(f"{where}: the manifest records no mlmd.examples_id")
    examples = graph.artifact(examples_id)
    found = []
    for execution in graph.consumers(examples.id):
        outputs = graph.io(execution.id, "output").get(contracts.STATISTICS)
        if outputs:
            found.append((execution, outputs[0]))
    if not found:
        raise TrainingDataError(
            f"{where}: ML Metadata records no statistics of its examples "
            f"(id {examples_id}, {examples.uri})"
        )
    same_run = [f for f in found if graph.run_and_pipeline(f[0].id)[0] == run_id]
    execution, statistics = max(same_run or found, key=lambda f: f[0].id)
    splits = read_split_protos(
        statistics.uri, STATISTICS_FILE, statistics_pb2.DatasetFeatureStatisticsList
    )
    if contracts.TRAIN_SPLIT not in splits:
        raise TrainingDataError(
            f"{where}: {statistics.uri} has no {contracts.TRAIN_SPLIT} split "
            f"(splits: {', '.join(splits) or 'none'})"
        )
    schemas = graph.io(execution.id, "input").get(contracts.SCHEMA, [])
    if not schemas:
        raise TrainingDataError(
            f"{where}: the StatisticsGen execution {execution.id} took no schema"
        )
    schema_path = storage.join(schemas[0].uri, contracts.SCHEMA_FILE)
    if not storage.exists(schema_path):
        raise TrainingDataError(f"{where}: the curated schema {schema_path} is not there")
    schema = parse_schema(storage.read_bytes(schema_path).decode(), source=schema_path)
    return TrainingData(
        run_id, statistics.uri, schemas[0].uri, splits[contracts.TRAIN_SPLIT], schema
    )


# 3. The comparison.


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's distance between the requests and the training data.

    Attributes:
        feature: Its name.
        kind: categorical (string statistics) or numeric.
        measure: L-infinity or Jensen-Shannon.
        value: TFDV's measurement; None where it could not measure (no
            values of the feature in the requests or the training data).
        threshold: The threshold it was held to.
        drifted: Whether TFDV found it over the threshold.
    """

    feature: str
    kind: str
    measure: str
    value: float | None
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class SchemaAnomaly:
    """What TFDV found in the requests against the curated schema.

    Attributes:
        feature: The feature, or `(dataset)` for the requests as a whole.
        anomaly: TFDV's short description.
        description: Its long description.
    """

    feature: str
    anomaly: str
    description: str


@dataclass(frozen=True)
class SkewReport:
    """The comparison of the requests with the training data."""

    features: tuple[FeatureDrift, ...]
    anomalies: tuple[SchemaAnomaly, ...]

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.drifted]

    @property
    def failed(self) -> bool:
        return bool(self.drifted or self.anomalies)


def _kind(name: str, statistics: statistics_pb2.DatasetFeatureStatisticsList) -> str | None:
    """categorical or numeric, as the training statistics hold the feature; None if absent."""
    if not statistics.datasets:
        return None
    for feature in statistics.datasets[0].features:
        if ".".join(feature.path.step) == name or feature.name == name:
            return CATEGORICAL if feature.HasField("string_stats") else NUMERIC
    return None


def _restricted_schema(schema: schema_pb2.Schema, names: Sequence[str]) -> schema_pb2.Schema:
    """The schema of the model's features only: requests carry no other column."""
    restricted = type(schema)()
    restricted.CopyFrom(schema)
    del restricted.feature[:]
    # Sparse and weighted features name columns a request does not carry.
    del restricted.sparse_feature[:]
    del restricted.weighted_feature[:]
    restricted.feature.extend(f for f in schema.feature if f.name in names)
    return restricted


def _fill_means_missing(column: ServingColumn, schema: schema_pb2.Schema) -> Values | None:
    """The values that stand for a missing cell of `column`, if the schema lets it be missing.

    serving_raw cannot carry a missing cell: clients send the column's fill
    instead, the value the transform graph fills a missing cell with
    (`pipeline.serving.rows`). The training statistics count those cells as
    missing, so the requests' statistics must too. A required column (a
    presence.min_fraction of 1) is never missing: its fill is a real value.
    """
    for feature in schema.feature:
        if feature.name == column.name and feature.presence.min_fraction < 1.0:
            fill = column.fill
            return [fill.encode() if isinstance(fill, str) else fill]
    return None


def _request_frame(
    requests: Requests, columns: Sequence[ServingColumn], schema: schema_pb2.Schema
) -> Any:
    """The instances as a DataFrame of one array of values per cell, typed as the schema."""
    import numpy as np
    import pandas as pd

    dtypes = {FLOAT: np.float32, INT: np.int64, STRING: object}
    frame = {}
    for column in columns:
        missing = _fill_means_missing(column, schema)
        cells = []
        for instance in requests.instances:
            values = instance.get(column.name, [])
            if values == missing:
                values = []
            cells.append(np.asarray(values, dtype=dtypes[column.dtype]))
        frame[column.name] = cells
    return pd.DataFrame(frame)


def compare(
    requests: Requests,
    columns: Sequence[ServingColumn],
    training: TrainingData,
    config: SkewConfig,
) -> SkewReport:
    """Runs TFDV: the requests' statistics, the schema check and the drift comparators.

    Args:
        requests: What `read_requests` read.
        columns: The model's serving columns.
        training: The served version's training statistics and schema.
        config: The `skew` section: thresholds and the histogram JSD uses.

    Returns:
        Each column's measurement and verdict, and the schema anomalies.
    """
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    names = [c.name for c in columns]
    schema = _restricted_schema(training.schema, names)
    options = tfdv.StatsOptions(schema=schema)
    statistics = tfdv.generate_statistics_from_dataframe(
        _request_frame(requests, columns, schema), options
    )
    histogram = {
        "quantiles": schema_pb2.HistogramSelection.QUANTILES,
        "standard": schema_pb2.HistogramSelection.STANDARD,
    }[config.numeric_histogram]
    kinds: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    for feature in schema.feature:
        kind = _kind(feature.name, training.statistics) or (
            CATEGORICAL if feature.type == schema_pb2.BYTES else NUMERIC
        )
        default = config.categorical_threshold if kind == CATEGORICAL else config.numeric_threshold
        threshold = config.features.get(feature.name, default)
        kinds[feature.name], thresholds[feature.name] = kind, threshold
        if kind == CATEGORICAL:
            feature.drift_comparator.infinity_norm.threshold = threshold
        else:
            divergence = feature.drift_comparator.jensen_shannon_divergence
            divergence.threshold = threshold
            divergence.source.type = histogram
    environment = SERVING_ENVIRONMENT if SERVING_ENVIRONMENT in schema.default_environment else None
    anomalies = tfdv.validate_statistics(
        statistics, schema, environment=environment, previous_statistics=training.statistics
    )
    measured = {
        ".".join(info.path.step): info.drift_measurements[0].value
        for info in anomalies.drift_skew_info
        if info.drift_measurements
    }
    drifted: set[str] = set()
    found: list[SchemaAnomaly] = []
    for name, info in sorted(anomalies.anomaly_info.items()):
        for reason in info.reason:
            kind_name = type(info).Type.Name(reason.type)
            if kind_name in _DRIFT_REASONS:
                drifted.add(name)
            else:
                found.append(SchemaAnomaly(name, reason.short_description, reason.description))
    for reason in anomalies.dataset_anomaly_info.reason:
        found.append(SchemaAnomaly("(dataset)", reason.short_description, reason.description))
    features = tuple(
        FeatureDrift(
            name,
            kinds[name],
            MEASURES[kinds[name]],
            measured.get(name),
            thresholds[name],
            name in drifted,
        )
        for name in names
        if name in kinds
    )
    return SkewReport(features, tuple(found))


def table(report: SkewReport) -> str:
    """The per-feature table: feature, kind, measure, value, threshold, verdict."""
    header = ("FEATURE", "KIND", "MEASURE", "VALUE", "THRESHOLD", "VERDICT")
    rows = [
        (
            f.feature,
            f.kind,
            f.measure,
            "n/a" if f.value is None else f"{f.value:.4f}",
            f"{f.threshold:g}",
            "DRIFT" if f.drifted else "ok",
        )
        for f in report.features
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    right = {3, 4}
    return "\n".join(
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in (header, *rows)
    )


def failure(report: SkewReport) -> str:
    """The one line naming every feature over its threshold and every schema anomaly."""
    parts = [
        f"{f.feature} ({f.measure} {f.value:.4f} > {f.threshold:g})"
        if f.value is not None
        else f"{f.feature} ({f.measure} over {f.threshold:g})"
        for f in report.drifted
    ]
    text = f"drift over the threshold in {', '.join(parts)}" if parts else ""
    if report.anomalies:
        names = ", ".join(f"{a.feature}: {a.anomaly}" for a in report.anomalies)
        text += ("; " if text else "") + f"schema anomalies in the requests: {names}"
    return text
