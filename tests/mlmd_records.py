"""Hand-written ML Metadata records, named the way one orchestrator names them.

`StoreWriter` writes artifacts, executions, contexts and events into a fresh
SQLite store as TFX's local runner does (types `Model`, contexts `pipeline`,
`pipeline_run`, `node`, numbers as ints) or as the KFP v2 launcher does
(`tfx.Model`, `system.Pipeline`, `system.PipelineRun`, the node in
`task_name`, numbers as doubles, parameters in an `inputs` struct).
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

NAMINGS = {
    # TFX's local runner.
    "local": {
        "type": lambda t: t,
        "run_context": "pipeline_run",
        "pipeline_context": "pipeline",
        "execution_type": lambda node: f"components.{node}",
        "number": lambda v: {"int_value": v},
    },
    # The KFP v2 launcher.
    "kfp": {
        "type": lambda t: f"tfx.{t}",
        "run_context": "system.PipelineRun",
        "pipeline_context": "system.Pipeline",
        "execution_type": lambda node: "system.ContainerExecution",
        "number": lambda v: {"double_value": float(v)},
    },
}


class StoreWriter:
    """Writes artifacts, executions and events the way one orchestrator names them.

    Args:
        path: The SQLite file (created).
        naming: `local` or `kfp`, a key of NAMINGS.
        pipeline: The pipeline every execution is recorded under.
    """

    def __init__(self, path: Path, naming: str, pipeline: str = "taxi"):
        config = mlmd.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        self.store = metadata_store.MetadataStore(config)
        self.naming = NAMINGS[naming]
        self.kfp = naming == "kfp"
        self.pipeline = pipeline

    def _type_id(self, kind: str, name: str) -> int:
        put = {
            "artifact": (mlmd.ArtifactType, self.store.put_artifact_type),
            "execution": (mlmd.ExecutionType, self.store.put_execution_type),
            "context": (mlmd.ContextType, self.store.put_context_type),
        }[kind]
        return put[1](put[0](name=name))

    def number(self, value: int) -> mlmd.Value:
        """An int property as this orchestrator stores it (int, or double under KFP)."""
        return mlmd.Value(**self.naming["number"](value))

    def artifact(self, type_name: str, uri: str, **props: object) -> int:
        """Records an artifact of TFX's `type_name` with custom properties; returns its id."""
        artifact = mlmd.Artifact(
            type_id=self._type_id("artifact", self.naming["type"](type_name)), uri=uri
        )
        for key, value in props.items():
            if isinstance(value, int):
                artifact.custom_properties[key].CopyFrom(self.number(value))
            else:
                artifact.custom_properties[key].string_value = str(value)
        return self.store.put_artifacts([artifact])[0]

    def execution(
        self,
        node: str,
        run: str,
        inputs: dict[str, int],
        outputs: dict[str, int],
        state: int = mlmd.Execution.COMPLETE,
        **params: object,
    ) -> int:
        """Records an execution of `node` in `run` with its events; returns its id."""
        execution = mlmd.Execution(
            type_id=self._type_id("execution", self.naming["execution_type"](node)),
            last_known_state=state,
        )
        if self.kfp:
            # metadata/client.go: parameters as the fields of an `inputs` struct.
            json_format.ParseDict(params, execution.custom_properties["inputs"].struct_value)
            execution.custom_properties["task_name"].string_value = node
        else:
            for key, value in params.items():
                if isinstance(value, int):
                    execution.custom_properties[key].CopyFrom(self.number(value))
                elif isinstance(value, float):  # TFX records float parameters as doubles
                    execution.custom_properties[key].double_value = value
                else:
                    execution.custom_properties[key].string_value = str(value)
        contexts = [
            self._context(self.naming["pipeline_context"], self.pipeline),
            self._context(self.naming["run_context"], run),
        ]
        if not self.kfp:
            contexts.append(self._context("node", f"{self.pipeline}.{node}"))
        events = []
        for direction, artifacts in ((mlmd.Event.INPUT, inputs), (mlmd.Event.OUTPUT, outputs)):
            for key, artifact_id in artifacts.items():
                event = mlmd.Event(type=direction, artifact_id=artifact_id)
                event.path.steps.add().key = key
                event.path.steps.add().index = 0
                events.append(event)
        execution_id, _, _ = self.store.put_execution(execution, [], contexts)
        for event in events:
            event.execution_id = execution_id
        self.store.put_events(events)
        return execution_id

    def _context(self, type_name: str, name: str) -> mlmd.Context:
        type_id = self._type_id("context", type_name)
        found = self.store.get_context_by_type_and_name(type_name, name)
        if found is not None:
            return found
        context_id = self.store.put_contexts([mlmd.Context(type_id=type_id, name=name)])[0]
        return self.store.get_contexts_by_id([context_id])[0]
