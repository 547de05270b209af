"""What a run's report shows, read from the run's own artifacts and ML Metadata.

Everything comes from what the run recorded: the executions its summary
names, their output artifacts in ML Metadata, and the files under those
artifacts (statistics and anomalies protos, TFMA's metrics, the Trainer's
TensorBoard events, the pushed version's manifest). Nothing is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components import contracts, storage
from components.registry import manifest as manifest_lib
from components.split_protos import ANOMALIES_FILE, STATISTICS_FILE, read_split_protos
from pipeline.lineage.graph import MetadataGraph
from pipeline.report.settings import ReportSettings
from pipeline.summary import RunSummary

if TYPE_CHECKING:
    from ml_metadata import metadata_store


@dataclass(frozen=True)
class FeatureRow:
    """One feature of one split's statistics."""

    name: str
    kind: str  # numeric or string
    count: int
    missing: int
    mean: float | None = None
    std: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    zeros: int | None = None
    unique: int | None = None
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Anomaly:
    feature: str
    short: str
    description: str


@dataclass(frozen=True)
class SliceRow:
    value: str
    examples: int
    metrics: dict[str, float]


@dataclass
class ReportData:
    """Everything the page shows, as plain values."""

    pipeline: str
    summary: RunSummary
    gated_metric: str
    thresholds: dict[str, float]
    slice_columns: tuple[str, ...] = ()
    splits: dict[str, tuple[int, list[FeatureRow]]] = field(default_factory=dict)
    anomalies: list[Anomaly] | None = None
    slices: dict[str, list[SliceRow]] = field(default_factory=dict)
    curves: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    nodes: list[tuple[str, str]] = field(default_factory=list)  # node id, state
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # producer, consumer, key


def _present_and_missing(common: Any) -> tuple[int, int]:
    """(examples with a value, examples without one) of a one-value-per-example column.

    An empty CSV cell becomes a feature with no values, which TFDV counts as
    present (`num_non_missing`) with zero values; for a column of at most one
    value per example, the examples without a value are those short of
    `tot_num_values`.
    """
    present = int(common.num_non_missing)
    missing = int(common.num_missing)
    if common.max_num_values <= 1:
        empty = max(0, present - int(common.tot_num_values))
        return present - empty, missing + empty
    return present, missing


def _feature_row(feature: Any) -> FeatureRow:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    name = ".".join(feature.path.step) or feature.name
    if feature.HasField("num_stats"):
        num = feature.num_stats
        count, missing = _present_and_missing(num.common_stats)
        return FeatureRow(
            name=name,
            kind="numeric",
            count=count,
            missing=missing,
            mean=num.mean,
            std=num.std_dev,
            minimum=num.min,
            maximum=num.max,
            zeros=int(num.num_zeros),
        )
    text = feature.string_stats
    kind = "string" if feature.type == statistics_pb2.FeatureNameStatistics.STRING else "other"
    count, missing = _present_and_missing(text.common_stats)
    return FeatureRow(
        name=name,
        kind=kind,
        count=count,
        missing=missing,
        unique=int(text.unique),
        top=tuple((v.value, v.frequency) for v in text.top_values[:3]),
    )


def read_statistics(uri: str) -> dict[str, tuple[int, list[FeatureRow]]]:
    """Per split: (examples, one row per feature), from StatisticsGen's protos."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    found = read_split_protos(uri, STATISTICS_FILE, statistics_pb2.DatasetFeatureStatisticsList)
    splits = {}
    for split, stats in found.items():
        for dataset in stats.datasets[:1]:
            rows = sorted((_feature_row(f) for f in dataset.features), key=lambda r: r.name)
            splits[split] = (int(dataset.num_examples), rows)
    return splits


def read_anomalies(uri: str) -> list[Anomaly]:
    """ExampleValidator's anomalies over every split, by feature."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    return [
        Anomaly(f"{feature} ({split})", info.short_description, info.description)
        for split, anomalies in read_split_protos(
            uri, ANOMALIES_FILE, anomalies_pb2.Anomalies
        ).items()
        for feature, info in sorted(anomalies.anomaly_info.items())
    ]


def read_curves(model_run_uri: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Scalar curves of the Trainer's TensorBoard events: tag -> split -> [(step, value)].

    Keras' TensorBoard callback writes `train/` and `validation/` event files
    with `epoch_<metric>` tags, one point per epoch.
    """
    import tensorflow as tf

    curves: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for split in ("train", "validation"):
        folder = storage.join(model_run_uri, split)
        if not storage.isdir(folder):
            continue
        for name in sorted(storage.children(folder)):
            if "tfevents" not in name:
                continue
            for event in tf.compat.v1.train.summary_iterator(storage.join(folder, name)):
                for value in event.summary.value:
                    if not value.tag.startswith("epoch_"):
                        continue
                    number = (
                        float(tf.make_ndarray(value.tensor))
                        if value.HasField("tensor")
                        else float(value.simple_value)
                    )
                    tag = value.tag[len("epoch_") :]
                    curves.setdefault(tag, {}).setdefault(split, []).append((event.step, number))
    for by_split in curves.values():
        for points in by_split.values():
            points.sort()
    return curves


def read_slices(evaluation_uri: str, columns: tuple[str, ...]) -> dict[str, list[SliceRow]]:
    """The candidate's metrics per value of each slice column, from TFMA's output."""
    from components.evaluator.metrics import slice_metrics

    slices = {}
    for column, found in slice_metrics(evaluation_uri, columns).items():
        rows = []
        for value, metrics in found:
            metrics = dict(metrics)
            examples = int(metrics.pop("example_count", 0))
            rows.append(SliceRow(str(value), examples, metrics))
        rows.sort(key=lambda r: (_numeric_key(r.value), r.value))
        slices[column] = rows
    return slices


def _numeric_key(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")


def _graph(
    graph: MetadataGraph, summary: RunSummary
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]], dict[str, dict[str, Any]]]:
    """The run's nodes, the artifact edges between them, and each node's outputs."""
    by_execution = {n.execution_id: n for n in summary.nodes if n.execution_id}
    producer_of: dict[int, tuple[str, str]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    for execution_id, node in by_execution.items():
        outs = graph.io(execution_id, "output")
        outputs[node.node_id] = outs
        for key, artifacts in outs.items():
            for artifact in artifacts:
                producer_of[artifact.id] = (node.node_id, key)
    nodes, edges = [], []
    for execution_id, node in by_execution.items():
        nodes.append((node.node_id, node.state))
        for artifacts in graph.io(execution_id, "input").values():
            for artifact in artifacts:
                if artifact.id in producer_of:
                    source, key = producer_of[artifact.id]
                    edges.append((source, node.node_id, key))
    return nodes, sorted(set(edges)), outputs


def _uri(outputs: dict[str, dict[str, Any]], node_id: str, key: str) -> str | None:
    artifacts = outputs.get(node_id, {}).get(key) or []
    return str(artifacts[0].uri) if artifacts else None


def collect(
    store: metadata_store.MetadataStore, summary: RunSummary, settings: ReportSettings
) -> ReportData:
    """Reads everything the report shows for one finished run."""
    data = ReportData(
        pipeline=settings.pipeline,
        summary=summary,
        gated_metric=settings.metric,
        thresholds={
            contracts.MIN_VALUE: settings.min_value,
            contracts.MAX_DROP: settings.max_drop,
        },
        slice_columns=settings.slice_columns,
    )
    data.nodes, data.edges, outputs = _graph(MetadataGraph(store), summary)

    statistics = _uri(outputs, contracts.STATISTICS_GEN, contracts.STATISTICS)
    if statistics:
        data.splits = read_statistics(statistics)
    anomalies = _uri(outputs, contracts.EXAMPLE_VALIDATOR, contracts.ANOMALIES)
    if anomalies:
        data.anomalies = read_anomalies(anomalies)
    model_run = _uri(outputs, contracts.TRAINER, contracts.MODEL_RUN)
    if model_run:
        data.curves = read_curves(model_run)
    if summary.evaluation_uri and settings.slice_columns:
        data.slices = read_slices(summary.evaluation_uri, settings.slice_columns)
    if summary.pushed_uri and storage.exists(
        storage.join(summary.pushed_uri, manifest_lib.MANIFEST_FILE)
    ):
        data.manifest = manifest_lib.read(summary.pushed_uri)
    return data
