"""What a run decided, read back from ML Metadata and the Evaluator's output."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import contracts, mlmd
from components.evaluator.metrics import overall_metrics, per_class_recall
from pipeline.config import EvaluatorConfig
from pipeline.progress import NodeResult

KFP_DAG_EXECUTION = "system.DAGExecution"


@dataclass(frozen=True)
class RunSummary:
    """The outcome of one pipeline run.

    Attributes:
        nodes: Each node that finished, in order.
        metrics: Candidate's overall eval metrics (name -> value).
        baseline_metrics: The baseline's, when there was one.
        blessed: Whether the Evaluator blessed the model; None if it did not run.
        reasons: Why it was (not) blessed: each threshold and its value.
        baseline_model_id: ML Metadata id of the baseline model, if any.
        pushed_uri: Registry folder of the pushed version, if pushed.
        evaluation_uri: The Evaluator's output folder.
        class_recall: Multiclass: the recall of each class, by class name.
        run_id: The run's id in ML Metadata (its pipeline_run context).
    """

    nodes: list[NodeResult]
    metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    blessed: bool | None = None
    reasons: list[str] = field(default_factory=list)
    baseline_model_id: int | None = None
    pushed_uri: str | None = None
    evaluation_uri: str | None = None
    class_recall: dict[str, float] = field(default_factory=dict)
    run_id: str = ""


def _describe_failure(failure: tfma.proto.validation_result_pb2.ValidationFailure) -> str:
    name = failure.metric_key.name
    value = failure.metric_value.double_value.value
    threshold = failure.metric_threshold
    if failure.metric_key.is_diff:
        bound = threshold.change_threshold.absolute.value
        return (
            f"{name} changed by {value:+.4f} against the baseline, below the allowed {bound:+.4f}"
        )
    bound = threshold.value_threshold.lower_bound.value
    return f"{name} {value:.4f} is below the floor {bound:.4f}"


def blessing_reasons(
    evaluation_uri: str,
    metrics: dict[str, float],
    baseline: dict[str, float],
    blessed: bool,
    thresholds: EvaluatorConfig,
) -> list[str]:
    """Human-readable reasons for the Evaluator's decision.

    A rejection is explained from TFMA's validation failures (the values and
    bounds TFMA actually applied); a blessing from the metrics and the
    configured thresholds, which TFMA applied to reach it.
    """
    one_class = metrics.get("mean_label") in (0.0, 1.0)
    if one_class and thresholds.metric == "auc" and not blessed:
        label = int(metrics["mean_label"])
        count = int(metrics.get("example_count", 0))
        return [
            f"the eval split holds one class only (all {count} labels are {label}): AUC is "
            "undefined there, so the model cannot be judged; check the label and the split "
            "(data.train_buckets, data.eval_buckets)"
        ]
    result = tfma.load_validation_result(evaluation_uri)
    if not blessed:
        failures = [
            _describe_failure(f)
            for per_slice in result.metric_validations_per_slice
            for f in per_slice.failures
        ]
        return failures or [f"validation not ok: {result}"]
    name = thresholds.metric
    value = metrics.get(name, float("nan"))
    reasons = [f"{name} {value:.4f} >= {thresholds.min_value:.4f} (evaluator.min_value)"]
    if name in baseline:
        reasons.append(
            f"{name} changed by {value - baseline[name]:+.4f} against the baseline's "
            f"{baseline[name]:.4f}, within -{thresholds.max_drop:.4f} (evaluator.max_drop)"
        )
    else:
        reasons.append("no earlier blessed model: judged on the value thresholds alone")
    return reasons


def _outputs(
    store: metadata_store.MetadataStore, nodes: list[NodeResult], node_id: str
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    for node in nodes:
        if node.node_id == node_id and node.execution_id:
            return mlmd.output_artifacts(store, node.execution_id)
    return {}


def _class_names(outputs: dict[str, list[metadata_store_pb2.Artifact]]) -> list[str]:
    graphs = outputs.get(contracts.TRANSFORM_GRAPH, [])
    if not graphs:
        return []
    import tensorflow_transform as tft

    from components.training.signatures import class_names

    return class_names(tft.TFTransformOutput(graphs[0].uri))


def summarize(
    store: metadata_store.MetadataStore, nodes: list[NodeResult], thresholds: EvaluatorConfig
) -> RunSummary:
    """Builds the RunSummary of a run from its finished nodes."""
    summary = RunSummary(nodes=list(nodes))
    lookup = _outputs(store, nodes, contracts.BASELINE_LOOKUP).get(contracts.BASELINE, [])
    if lookup and mlmd.property_value(lookup[0], contracts.BASELINE_FOUND):
        summary = replace(
            summary,
            baseline_model_id=int(str(mlmd.property_value(lookup[0], contracts.BASELINE_MODEL_ID))),
        )

    evaluator = _outputs(store, nodes, contracts.EVALUATOR)
    if evaluator.get(contracts.EVALUATION) and evaluator.get(contracts.BLESSING):
        evaluation_uri = evaluator[contracts.EVALUATION][0].uri
        blessed = mlmd.is_blessed(evaluator[contracts.BLESSING][0])
        metrics, baseline = overall_metrics(evaluation_uri)
        recall = per_class_recall(evaluation_uri)
        names = _class_names(_outputs(store, nodes, contracts.TRANSFORM)) if recall else []
        summary = replace(
            summary,
            metrics=metrics,
            baseline_metrics=baseline,
            blessed=blessed,
            reasons=blessing_reasons(evaluation_uri, metrics, baseline, blessed, thresholds),
            evaluation_uri=evaluation_uri,
            class_recall={
                names[i] if 0 <= i < len(names) else f"class {i}": r for i, r in recall.items()
            },
        )

    pushed = _outputs(store, nodes, contracts.PUSHER).get(contracts.PUSHED_MODEL, [])
    if pushed and mlmd.is_pushed(pushed[0]):
        summary = replace(
            summary,
            pushed_uri=str(mlmd.property_value(pushed[0], contracts.PUSHED_DESTINATION)),
        )
    return summary


def summarize_run(
    store: metadata_store.MetadataStore,
    pipeline_name: str,
    run_id: str,
    thresholds: EvaluatorConfig,
    leave_out: frozenset[str] = frozenset(),
) -> RunSummary:
    """Builds the RunSummary of a run from ML Metadata alone, in either dialect.

    What `summarize` gets from the runner that watched the nodes, this reads
    from the run's executions (a node's seconds are its execution's recorded
    span), so it serves where no runner is at hand: a task inside the run.

    Args:
        store: The store the run records in.
        pipeline_name: The pipeline.
        run_id: TFX's pipeline_run or KFP's system.PipelineRun name.
        thresholds: The thresholds the run was judged by.
        leave_out: Node ids left out (a task that reads its own run).

    Raises:
        ValueError: The store holds no execution of that run of the pipeline.
    """
    from pipeline.lineage.graph import MetadataGraph

    executions = mlmd.run_executions(store, pipeline_name, run_id)
    if not executions:
        raise ValueError(
            f"ML Metadata holds no execution of run {run_id!r} of pipeline {pipeline_name!r}"
        )
    graph = MetadataGraph(store)
    # KFP also records the run's root DAG as a system.DAGExecution in the
    # same contexts: a task is a container execution.
    dag_types = {t.id for t in store.get_execution_types() if t.name == KFP_DAG_EXECUTION}
    # Oldest first: a node retried within the run keeps its last execution.
    latest = {graph.node_id(e): e for e in executions if e.type_id not in dag_types}
    nodes = []
    for node_id, execution in sorted(latest.items(), key=lambda item: item[1].id):
        if node_id in leave_out:
            continue
        span_ms = execution.last_update_time_since_epoch - execution.create_time_since_epoch
        nodes.append(
            NodeResult(
                node_id=node_id,
                state=mlmd.state_name(execution),
                seconds=max(0, span_ms) / 1000,
                execution_id=execution.id,
            )
        )
    return replace(summarize(store, nodes, thresholds), run_id=run_id)
