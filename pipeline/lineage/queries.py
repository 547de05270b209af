"""The three lineage questions: what made this model, what used this data, what ran.

Components are recognised by the output keys they write (`model`,
`blessing`, `pushed_model`, `statistics`, `anomalies`), which are the same
under TFX's local runner and under the Kubeflow launcher, rather than by
execution type names, which differ.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from typing import Any

from components import contracts, mlmd, storage
from components.mlmd import Artifact, Execution
from components.split_protos import ANOMALIES_FILE, STATISTICS_FILE, read_split_protos
from pipeline.lineage.graph import LineageError, MetadataGraph

# In a model's lineage: the key ("examples" or "transformed_examples") of the
# examples its Trainer read.
TRAINED_ON = "trained_on"


def _version(pushed: Artifact) -> int | None:
    """The registry version of a push (written as a string, read back either way)."""
    value = mlmd.property_value(pushed, contracts.PUSHED_VERSION)
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def _destination(pushed: Artifact) -> object:
    return mlmd.property_value(pushed, contracts.PUSHED_DESTINATION)


def split_counts(statistics: Artifact) -> dict[str, int]:
    """Examples per split, from the statistics StatisticsGen wrote for them."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    found = read_split_protos(
        statistics.uri, STATISTICS_FILE, statistics_pb2.DatasetFeatureStatisticsList
    )
    return {split: int(s.datasets[0].num_examples) for split, s in found.items() if s.datasets}


def anomaly_count(anomalies: Artifact) -> int | None:
    """Anomalies ExampleValidator found over all splits (None if unreadable)."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    if not storage.isdir(anomalies.uri):
        return None
    found = read_split_protos(anomalies.uri, ANOMALIES_FILE, anomalies_pb2.Anomalies)
    return sum(len(a.anomaly_info) for a in found.values())


def _alive(pid: int, host: str) -> bool:
    """Whether a run's runner process may still be running.

    Only a process on this host can be checked; one elsewhere is assumed
    alive (lineage cannot see it).
    """
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _trainer_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The trainer settings a Trainer execution ran with (workers, launcher...).

    They travel in custom_config; Trainers of earlier versions of this
    project recorded the launch settings as a `launch` parameter instead.
    """
    custom = params.get("custom_config")
    settings = custom.get("trainer") if isinstance(custom, dict) else None
    if not isinstance(settings, dict):
        settings = params.get("launch")
    return settings if isinstance(settings, dict) else {}


def thresholds_of(params: dict[str, Any]) -> dict[str, Any]:
    """The blessing thresholds an Evaluator execution applied: metric, min_value, max_drop.

    The gated metric travels inside the `eval_spec` parameter; the bounds are
    runtime parameters of their own.
    """
    spec = params.get("eval_spec")
    thresholds: dict[str, Any] = {}
    if isinstance(spec, dict) and "metric" in spec:
        thresholds[contracts.METRIC] = spec["metric"]
    for key in (contracts.MIN_VALUE, contracts.MAX_DROP):
        if key in params:
            thresholds[key] = params[key]
    # Evaluators of earlier versions of this project gated AUC under these names.
    for old, key in (("min_auc", contracts.MIN_VALUE), ("max_auc_drop", contracts.MAX_DROP)):
        if old in params:
            thresholds.setdefault(contracts.METRIC, "auc")
            thresholds[key] = params[old]
    return thresholds


class Lineage:
    """Answers lineage questions over one store."""

    def __init__(self, graph: MetadataGraph):
        self.graph = graph

    # Finding the model of a registry version.

    def pushes(self, serving_model_dir: str | None = None) -> list[Artifact]:
        """Successful pushes, oldest first; only into `serving_model_dir` when given."""
        found = [a for a in self.graph.artifacts_of_type("PushedModel") if mlmd.is_pushed(a)]
        if serving_model_dir is None:
            return found
        root = os.path.normpath(serving_model_dir)
        return [a for a in found if os.path.normpath(os.path.dirname(str(_destination(a)))) == root]

    def model_of_push(self, pushed: Artifact) -> Artifact:
        """The Model a PushedModel was pushed from.

        Raises:
            LineageError: The push's execution or its model input is not recorded.
        """
        pusher = self.graph.producer(pushed.id)
        models = self.graph.io(pusher.id, "input").get(contracts.MODEL, []) if pusher else []
        if not models:
            raise LineageError(f"push {pushed.id} has no recorded model input")
        return models[0]

    def resolve_model(self, ref: str, serving_model_dir: str) -> Artifact:
        """`latest`, a registry version number, or `id:<ML Metadata id>` -> the Model.

        Raises:
            LineageError: Nothing matches; the message lists what there is.
        """
        if ref.startswith("id:") and ref[3:].isdigit():
            model = self.graph.artifact(int(ref[3:]))
            if self.graph.artifact_type(model) != "Model":
                raise LineageError(
                    f"ML Metadata id {model.id} is a {self.graph.artifact_type(model)}, not a Model"
                )
            return model
        pushes = self.pushes(serving_model_dir)
        versions = {v: p for p in pushes if (v := _version(p)) is not None}
        if ref == "latest":
            if not versions:
                raise LineageError(f"no push to {serving_model_dir} is recorded in ML Metadata")
            return self.model_of_push(versions[max(versions)])
        if ref.isdigit() and int(ref) in versions:
            return self.model_of_push(versions[int(ref)])
        listed = ", ".join(str(v) for v in sorted(versions)) or "none"
        raise LineageError(
            f"{ref!r}: not 'latest', 'id:<ML Metadata id>' or a version pushed to "
            f"{serving_model_dir} (pushed versions: {listed})"
        )

    # Upstream.

    def _consumer_outputs(
        self, artifact: Artifact, output_key: str, prefer_run: str | None = None
    ) -> tuple[Execution, list[Artifact]] | None:
        """The newest consumer of `artifact` that wrote `output_key` (same run preferred)."""
        found = []
        for execution in self.graph.consumers(artifact.id):
            outputs = self.graph.io(execution.id, "output").get(output_key)
            if outputs:
                found.append((execution, outputs))
        if not found:
            return None
        same_run = [f for f in found if self.graph.run_and_pipeline(f[0].id)[0] == prefer_run]
        return max(same_run or found, key=lambda f: f[0].id)

    def model(self, model: Artifact) -> dict[str, Any]:
        """Everything upstream of a model, as a JSON-able tree."""
        g = self.graph
        trainer = g.producer(model.id)
        if trainer is None:
            raise LineageError(f"model {model.id} ({model.uri}) has no recorded producer")
        run, pipeline = g.run_and_pipeline(trainer.id)
        inputs = g.io(trainer.id, "input")
        trainer_params = mlmd.execution_parameters(trainer)
        launch = _trainer_settings(trainer_params)
        result: dict[str, Any] = {
            "model": g.describe_artifact(model),
            "pipeline": pipeline,
            "run": run,
            "pushed": self._pushes_of(model),
            "blessing": self._blessing_of(model, run),
            "trainer": {
                **g.describe_execution(trainer),
                "parameters": trainer_params,
                "workers": launch.get("workers", 1),
                "launcher": launch.get("launcher", "local"),
            },
        }
        for key in (contracts.TRANSFORM_GRAPH, contracts.SCHEMA):
            for artifact in inputs.get(key, [])[:1]:
                result[key] = g.describe_artifact(artifact)
        trained_on = inputs.get(contracts.EXAMPLES, [])[:1]
        graph_inputs = inputs.get(contracts.TRANSFORM_GRAPH, [])
        transform = g.producer(graph_inputs[0].id) if graph_inputs else None
        raw = []
        if transform is not None:
            result["transform"] = g.describe_execution(transform)
            raw = g.io(transform.id, "input").get(contracts.EXAMPLES, [])[:1]
        if trained_on and raw and trained_on[0].id == raw[0].id:
            # trainer.examples: raw, the Trainer ran the transform graph as it read them.
            result["examples"] = self._examples(raw[0], run)
            result["examples"]["role"] = "examples the model was trained on, transformed as read"
            result[TRAINED_ON] = "examples"
        else:
            if trained_on:
                entry = g.describe_artifact(trained_on[0])
                entry["role"] = "transformed examples the model was trained on"
                result["transformed_examples"] = entry
                result[TRAINED_ON] = "transformed_examples"
            if raw:
                result["examples"] = self._examples(raw[0], run)
        return result

    def _examples(self, examples: Artifact, run: str | None) -> dict[str, Any]:
        g = self.graph
        props = mlmd.properties(examples)
        entry: dict[str, Any] = {**g.describe_artifact(examples), "span": props.get("span")}
        splits = props.get("split_names")
        if isinstance(splits, str):
            try:
                entry["splits"] = json.loads(splits)
            except json.JSONDecodeError:
                entry["splits"] = splits
        example_gen = g.producer(examples.id)
        if example_gen is not None:
            entry["example_gen"] = {
                **g.describe_execution(example_gen),
                "input_base": mlmd.execution_parameters(example_gen).get("input_base"),
            }
        stats = self._consumer_outputs(examples, contracts.STATISTICS, run)
        if stats is not None:
            statistics = stats[1][0]
            entry["statistics"] = {
                **g.describe_artifact(statistics),
                "execution": g.describe_execution(stats[0]),
                "split_counts": split_counts(statistics),
            }
            checked = self._consumer_outputs(statistics, contracts.ANOMALIES, run)
            if checked is not None:
                anomalies = checked[1][0]
                entry["anomalies"] = {
                    **g.describe_artifact(anomalies),
                    "execution": g.describe_execution(checked[0]),
                    "anomaly_count": anomaly_count(anomalies),
                }
                schema = g.io(checked[0].id, "input").get(contracts.SCHEMA, [])
                if schema:
                    entry["anomalies"]["checked_against_schema"] = schema[0].id
        return entry

    def _blessing_of(self, model: Artifact, run: str | None) -> dict[str, Any] | None:
        from components.evaluator.metrics import overall_metrics

        found = self._consumer_outputs(model, contracts.BLESSING, run)
        if found is None:
            return None
        evaluator, (blessing, *_) = found
        g = self.graph
        params = mlmd.execution_parameters(evaluator)
        evaluations = g.io(evaluator.id, "output").get(contracts.EVALUATION, [])
        entry: dict[str, Any] = {
            **g.describe_artifact(blessing),
            "blessed": mlmd.is_blessed(blessing),
            "evaluator": g.describe_execution(evaluator),
            "thresholds": thresholds_of(params),
            "baseline_model_id": mlmd.property_value(blessing, contracts.BASELINE_MODEL_MLMD_ID),
        }
        if evaluations:
            evaluation = evaluations[0]
            entry["evaluation"] = g.describe_artifact(evaluation)
            try:
                metrics, baseline = overall_metrics(evaluation.uri)
            except Exception as e:  # an unreadable TFMA output must not hide the lineage
                entry["metrics_error"] = f"{type(e).__name__}: {e}"
            else:
                entry["metrics"] = {k: round(v, 6) for k, v in sorted(metrics.items())}
                entry["baseline_metrics"] = {k: round(v, 6) for k, v in sorted(baseline.items())}
        return entry

    def _pushes_of(self, model: Artifact) -> list[dict[str, Any]]:
        pushes = []
        for execution in self.graph.consumers(model.id):
            if mlmd.state_name(execution) == "CACHED":
                continue  # a cached re-run records the earlier push again; it pushed nothing
            for pushed in self.graph.io(execution.id, "output").get(contracts.PUSHED_MODEL, []):
                if mlmd.is_pushed(pushed):
                    pushes.append(
                        {
                            "id": pushed.id,
                            "version": _version(pushed),
                            "destination": _destination(pushed),
                            "run": self.graph.run_and_pipeline(execution.id)[0],
                        }
                    )
        return sorted(pushes, key=lambda p: p["id"])

    # Downstream.

    def resolve_examples(self, ref: str) -> Artifact:
        """An Examples artifact by ML Metadata id or URI.

        Raises:
            LineageError: Nothing matches, or the id is not Examples.
        """
        if ref.isdigit():
            artifact = self.graph.artifact(int(ref))
        else:
            matches = [
                a
                for a in self.graph.artifacts_by_uri(ref.rstrip("/"))
                if self.graph.artifact_type(a) == "Examples"
            ]
            if not matches:
                raise LineageError(f"no Examples artifact with URI {ref} in the store")
            artifact = matches[-1]
        if self.graph.artifact_type(artifact) != "Examples":
            raise LineageError(
                f"ML Metadata id {artifact.id} is a {self.graph.artifact_type(artifact)}, "
                "not Examples"
            )
        return artifact

    def examples(self, examples: Artifact) -> dict[str, Any]:
        """Every model trained (directly or through Transform) on `examples`."""
        g = self.graph
        models: dict[int, Artifact] = {}
        seen_artifacts = {examples.id}
        frontier = [examples]
        while frontier:
            artifact = frontier.pop()
            for execution in g.consumers(artifact.id):
                for key, outputs in g.io(execution.id, "output").items():
                    for out in outputs:
                        if out.id in seen_artifacts:
                            continue
                        seen_artifacts.add(out.id)
                        if key == contracts.MODEL and g.artifact_type(out) == "Model":
                            models[out.id] = out
                        elif g.artifact_type(out) in ("Examples", "TransformGraph"):
                            frontier.append(out)
        listed = []
        for model in sorted(models.values(), key=lambda m: m.id):
            trainer = g.producer(model.id)
            run = g.run_and_pipeline(trainer.id)[0] if trainer else None
            blessing = self._consumer_outputs(model, contracts.BLESSING, run)
            listed.append(
                {
                    **g.describe_artifact(model),
                    "run": run,
                    "trainer": trainer.id if trainer else None,
                    "blessed": mlmd.is_blessed(blessing[1][0]) if blessing else None,
                    "pushed": [
                        {"version": p["version"], "destination": p["destination"]}
                        for p in self._pushes_of(model)
                    ],
                }
            )
        return {"examples": g.describe_artifact(examples), "models": listed}

    # Runs.

    def runs(self, pipeline_name: str) -> list[dict[str, Any]]:
        """The pipeline's runs, oldest first: status, start, end and what each pushed."""
        g = self.graph
        result = []
        for type_name in mlmd.RUN_CONTEXT_TYPES:
            for context in g.store.get_contexts_by_type(type_name):
                executions = list(g.store.get_executions_by_context(context.id))
                if not executions or g.run_and_pipeline(executions[0].id)[1] != pipeline_name:
                    continue
                result.append(self._run(context, executions))
        return sorted(result, key=lambda r: (r["start_ms"], r["run"]))

    def _run(self, context: Any, executions: Iterable[Execution]) -> dict[str, Any]:
        name = context.name
        executions = list(executions)
        states = [mlmd.state_name(e) for e in executions]
        runner = mlmd.runner_of(context)
        if "FAILED" in states:
            status = "FAILED"
        elif "CANCELED" in states:
            status = "INTERRUPTED"
        elif any(s in ("NEW", "RUNNING", "UNKNOWN") for s in states):
            status = "ABANDONED" if runner and not _alive(*runner) else "RUNNING"
        else:
            status = "SUCCEEDED"
        pushed = []
        for execution in executions:
            if mlmd.state_name(execution) == "CACHED":
                continue
            for artifact in self.graph.io(execution.id, "output").get(contracts.PUSHED_MODEL, []):
                if mlmd.is_pushed(artifact):
                    pushed.append(_version(artifact))
        return {
            "run": name,
            "status": status,
            "start_ms": min(e.create_time_since_epoch for e in executions),
            "end_ms": max(e.last_update_time_since_epoch for e in executions),
            "executions": len(executions),
            "cached": states.count("CACHED"),
            "failed_nodes": sorted(
                self.graph.node_id(e)
                for e, s in zip(executions, states, strict=True)
                if s == "FAILED"
            ),
            "unfinished_nodes": sorted(
                self.graph.node_id(e)
                for e, s in zip(executions, states, strict=True)
                if s in ("CANCELED", "NEW", "RUNNING")
            ),
            "runner": {"pid": runner[0], "host": runner[1]} if runner else None,
            "pushed_versions": pushed,
        }
