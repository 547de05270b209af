"""Runs a compiled PipelineSpec the way the open-source KFP v2 launcher does.

`python -m pipeline run --compiled pipeline.yaml` runs it: before any
cluster, it shows that the very file about to be uploaded runs, task by task,
with the commands its containers will run. Not a Kubeflow: no pods, no
images (each container command runs here, with this interpreter as its
`python`), no caching, no object store beyond what tf.io.gfile reaches.
What it reproduces is the contract between KFP and the container, after
backend/src/v2 (driver/driver.go `provisionOutputs`, driver/resolve.go,
component/launcher_v2.go, metadata/client.go and converter.go):

- the ExecutorInput: `inputs.parameterValues` resolved from runtime
  constants (`{{$.pipeline_job_uuid}}` becomes the run id) and the run's
  parameters (root `defaultValue`s for the rest),
  component defaults added as `addDefaultParams` does; `inputs.artifacts`
  read back from ML Metadata as the driver's `toRuntimeArtifact` does (name
  = the ML Metadata id in decimal, every property and custom property as
  `metadata`, numbers as doubles, and the type left as an empty
  `instanceSchema`); `outputs.artifacts` at
  `<root>/<pipeline>/<run>/<task>/<uuid>/<output>` with the declared types;
  `outputs.outputFile` in that task root;
- the container command with `{{$}}` replaced by that JSON (protojson's
  camelCase), run as its own process with the container's own `python -m
  ...` (by default a fork of one interpreter that has already imported
  TensorFlow and TFX, `pipeline.kubeflow.preloaded`; `preload=False`
  starts a fresh interpreter per task, as a container does);
- the ExecutorOutput merged into the output artifacts
  (`mergeRuntimeArtifacts`), and ML Metadata records named as KFP names them:
  contexts `system.Pipeline` and `system.PipelineRun`, executions
  `system.ContainerExecution`, artifact types from the schema title, custom
  properties converted as `StructValueToMLMDValue` does (numbers -> double,
  bool -> int), `display_name` set to the output key, INPUT/OUTPUT events
  keyed by the input/output name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2

from components import mlmd, storage
from components.errors import UserError
from components.mlmd import connect
from pipeline.kubeflow import preloaded

PIPELINE_CONTEXT = mlmd.KFP_PIPELINE_CONTEXT_TYPE
RUN_CONTEXT = mlmd.KFP_RUN_CONTEXT_TYPE
CONTAINER_EXECUTION = "system.ContainerExecution"
LOG_TAIL_CHARS = 6000
_PARAMETER_KINDS = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int, float),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


class SpecError(UserError, ValueError):
    """The file is not a compiled PipelineSpec this can run, or a run parameter is wrong."""


class TaskFailed(RuntimeError):
    """A task's container exited non-zero.

    Attributes:
        task: The task's name.
        log: Its container's output.
        tail: The last LOG_TAIL_CHARS characters of that output.
    """

    def __init__(self, task: str, returncode: int, log: Path):
        self.tail = log.read_text()[-LOG_TAIL_CHARS:] if log.exists() else ""
        super().__init__(f"task {task} exited {returncode}; log {log}:\n{self.tail}")
        self.task = task
        self.returncode = returncode
        self.log = log


@dataclass
class TaskRecord:
    """What one task did."""

    name: str
    execution_id: int
    executor_input: dict[str, Any]
    outputs: dict[str, metadata_store_pb2.Artifact] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class RunRecord:
    """What one emulated run did, task by task in execution order."""

    run_id: str
    tasks: dict[str, TaskRecord]


def _title(instance_schema: str) -> str:
    data = yaml.safe_load(instance_schema) or {}
    title = data.get("title") if isinstance(data, dict) else None
    if not title:
        raise SpecError(f"artifact schema without a title: {instance_schema!r}")
    return str(title)


def _topological(tasks: dict[str, Any]) -> list[str]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise SpecError(f"dependency cycle through task {name}")
        state[name] = "visiting"
        task = tasks[name]
        upstream = set(task.get("dependentTasks", []))
        for artifact in task.get("inputs", {}).get("artifacts", {}).values():
            upstream.add(artifact["taskOutputArtifact"]["producerTask"])
        for dep in sorted(upstream):
            visit(dep)
        state[name] = "done"
        order.append(name)

    for name in sorted(tasks):
        visit(name)
    return order


def _mlmd_value(value: Any) -> metadata_store_pb2.Value:
    """StructValueToMLMDValue: numbers become doubles, bools ints."""
    result = metadata_store_pb2.Value()
    if isinstance(value, bool):
        result.int_value = int(value)
    elif isinstance(value, int | float):
        result.double_value = float(value)
    elif isinstance(value, str):
        result.string_value = value
    elif isinstance(value, list):
        json_format.ParseDict({"list": value}, result.struct_value)
    elif isinstance(value, dict):
        json_format.ParseDict({"struct": value}, result.struct_value)
    else:
        raise TypeError(f"unsupported metadata value {value!r}")
    return result


def _json_value(value: metadata_store_pb2.Value) -> Any:
    """toRuntimeArtifact: int and double become JSON numbers."""
    kind = value.WhichOneof("value")
    if kind == "int_value":
        return float(value.int_value)
    if kind == "double_value":
        return value.double_value
    if kind == "string_value":
        return value.string_value
    if kind == "struct_value":
        return json_format.MessageToDict(value.struct_value)
    raise TypeError(f"unknown property type in MLMD artifact: {kind}")


class LocalLauncher:
    """Executes every task of a compiled PipelineSpec in dependency order.

    Args:
        spec: The compiled PipelineSpec, as `load_spec` reads it.
        mlmd_path: The SQLite ML Metadata store to record the run in.
        work_dir: Where each task's container output goes (`logs/`).
        env: The tasks' environment (default: this process's).
        timeout_s: The longest a task may run.
        pipeline_root: The run's pipeline root, as KFP's
            `runtime_config.pipeline_root` sets it (default: the spec's
            `defaultPipelineRoot`).
        preload: Run `python -m` commands as forks of one interpreter that
            has imported TensorFlow and TFX (`pipeline.kubeflow.preloaded`)
            rather than as fresh interpreters: the same commands, without
            about 6 s of imports each. `close()` stops that interpreter.
    """

    def __init__(
        self,
        spec: dict[str, Any],
        mlmd_path: Path,
        work_dir: Path,
        env: dict[str, str] | None = None,
        timeout_s: int = 900,
        pipeline_root: str | None = None,
        preload: bool = True,
    ):
        # Strict parse: the same proto the KFP API server unmarshals.
        try:
            json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
        except json_format.ParseError as e:
            raise SpecError(f"not a valid PipelineSpec: {e}") from e
        self.spec = spec
        self.pipeline_root = pipeline_root or spec.get("defaultPipelineRoot", "")
        if not self.pipeline_root:
            raise SpecError("the spec has no defaultPipelineRoot: give a pipeline root")
        self.work_dir = work_dir
        self.timeout_s = timeout_s
        self.store = connect({"kind": "sqlite", "sqlite_path": str(mlmd_path)})
        self.env = dict(os.environ if env is None else env)
        # The image runs `python`; here that is this interpreter.
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.preload = preload
        self._python: preloaded.PreloadedPython | None = None

    def _preloaded(self) -> preloaded.PreloadedPython:
        if self._python is None:
            self._python = preloaded.PreloadedPython(
                self.env, self.work_dir / "logs" / "preloaded-python.log"
            )
        return self._python

    def close(self) -> None:
        """Stops the preloaded interpreter, if one was started."""
        if self._python is not None:
            self._python.close()
            self._python = None

    def __enter__(self) -> LocalLauncher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ML Metadata, as the driver and launcher write it ------------------

    def _type_id(self, kind: str, name: str) -> int:
        if kind == "context":
            return self.store.put_context_type(metadata_store_pb2.ContextType(name=name))
        if kind == "execution":
            return self.store.put_execution_type(metadata_store_pb2.ExecutionType(name=name))
        return self.store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))

    def _context(
        self, type_name: str, name: str, props: dict[str, str]
    ) -> metadata_store_pb2.Context:
        existing = self.store.get_context_by_type_and_name(type_name, name)
        if existing is not None:
            return existing
        context = metadata_store_pb2.Context(type_id=self._type_id("context", type_name), name=name)
        for key, value in props.items():
            context.custom_properties[key].string_value = value
        [context.id] = self.store.put_contexts([context])
        return context

    def _runtime_artifact(self, artifact: metadata_store_pb2.Artifact) -> dict[str, Any]:
        metadata = {k: _json_value(v) for k, v in artifact.properties.items()}
        metadata.update({k: _json_value(v) for k, v in artifact.custom_properties.items()})
        # The driver's OutputArtifact.Schema is "" ("TODO: figure out how to get schema").
        return {
            "name": str(artifact.id),
            "uri": artifact.uri,
            "metadata": metadata,
            "type": {"instanceSchema": ""},
        }

    # -- one run -----------------------------------------------------------

    def _root_parameters(self, overrides: dict[str, Any]) -> dict[str, Any]:
        declared = self.spec["root"].get("inputDefinitions", {}).get("parameters", {})
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise SpecError(f"unknown run parameters {unknown}; declared: {sorted(declared)}")
        values = {}
        for name, definition in declared.items():
            if name in overrides:
                values[name] = overrides[name]
            elif "defaultValue" in definition:
                values[name] = definition["defaultValue"]
            elif not definition.get("isOptional"):
                raise SpecError(f"run parameter {name} has no value and no default")
        return values

    def _parameter_values(
        self, task: dict[str, Any], component: dict[str, Any], root: dict[str, Any], run_id: str
    ) -> dict[str, Any]:
        declared = component.get("inputDefinitions", {}).get("parameters", {})
        values: dict[str, Any] = {}
        for name, source in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in source:
                constant = source["runtimeValue"]["constant"]
                # resolve.go: a constant that is exactly a run placeholder.
                values[name] = run_id if constant == "{{$.pipeline_job_uuid}}" else constant
            elif "componentInputParameter" in source:
                values[name] = root[source["componentInputParameter"]]
            else:
                raise SpecError(f"unsupported parameter source for {name}: {source}")
        for name, value in values.items():
            expected = declared[name]["parameterType"]
            kinds = _PARAMETER_KINDS[expected]
            if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
                raise SpecError(
                    f"input parameter {name!r} type mismatch: expect {expected}, got {value!r}"
                )
        for name, definition in declared.items():  # addDefaultParams
            if name not in values and "defaultValue" in definition:
                values[name] = definition["defaultValue"]
        return values

    def run(
        self,
        run_id: str | None = None,
        parameters: dict[str, Any] | None = None,
        report: Callable[[TaskRecord], None] | None = None,
    ) -> RunRecord:
        """Runs every task once, in dependency order.

        Args:
            run_id: The run's id (default: a new UUID, as KFP's).
            parameters: Run parameters; the others take the spec's defaults.
            report: Called with each task's record as it ends.

        Returns:
            What each task did.

        Raises:
            SpecError: A parameter is unknown or of the wrong type.
            TaskFailed: A task's command exited non-zero; the ones after it
                did not run.
        """
        run_id = run_id or str(uuid.uuid4())
        pipeline_name = self.spec["pipelineInfo"]["name"]
        root_values = self._root_parameters(parameters or {})
        run_root = f"{self.pipeline_root.rstrip('/')}/{pipeline_name}/{run_id}"
        contexts = [
            self._context(PIPELINE_CONTEXT, pipeline_name, {"pipeline_root": run_root}),
            self._context(RUN_CONTEXT, run_id, {"pipeline_root": run_root}),
        ]
        tasks = self.spec["root"]["dag"]["tasks"]
        record = RunRecord(run_id=run_id, tasks={})
        for name in _topological(tasks):
            started = time.monotonic()
            task = self._run_task(name, tasks[name], root_values, run_root, contexts, record)
            task.seconds = time.monotonic() - started
            record.tasks[name] = task
            if report is not None:
                report(task)
        return record

    def _run_task(
        self,
        name: str,
        task: dict[str, Any],
        root_values: dict[str, Any],
        run_root: str,
        contexts: list[metadata_store_pb2.Context],
        record: RunRecord,
    ) -> TaskRecord:
        component = self.spec["components"][task["componentRef"]["name"]]
        container = self.spec["deploymentSpec"]["executors"][component["executorLabel"]][
            "container"
        ]

        inputs: dict[str, Any] = {
            "parameterValues": self._parameter_values(task, component, root_values, record.run_id)
        }
        input_pairs = []
        artifacts_in: dict[str, Any] = {}
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            ref = source["taskOutputArtifact"]
            producer = record.tasks[ref["producerTask"]]
            artifact = producer.outputs[ref["outputArtifactKey"]]
            artifacts_in[key] = {"artifacts": [self._runtime_artifact(artifact)]}
            event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.INPUT)
            event.path.steps.add().key = key
            input_pairs.append((artifact, event))
        if artifacts_in:
            inputs["artifacts"] = artifacts_in

        task_root = f"{run_root}/{name}/{uuid.uuid4()}"
        outputs: dict[str, Any] = {
            "artifacts": {},
            "outputFile": f"{task_root}/output_metadata.json",
        }
        for key, declared in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            artifact = {"name": key, "uri": f"{task_root}/{key}", "type": declared["artifactType"]}
            if "metadata" in declared:
                artifact["metadata"] = declared["metadata"]
            outputs["artifacts"][key] = {"artifacts": [artifact]}
        if storage.is_local(task_root):  # prepareOutputFolders; object stores need none
            Path(task_root).mkdir(parents=True, exist_ok=True)

        executor_input = pipeline_spec_pb2.ExecutorInput()
        json_format.ParseDict({"inputs": inputs, "outputs": outputs}, executor_input)
        executor_input_json = json_format.MessageToJson(executor_input, indent=None)

        execution = metadata_store_pb2.Execution(
            type_id=self._type_id("execution", CONTAINER_EXECUTION),
            last_known_state=metadata_store_pb2.Execution.RUNNING,
        )
        execution.custom_properties["task_name"].string_value = name
        execution.custom_properties["display_name"].string_value = name
        # metadata/client.go CreateExecution: the parameters are the struct's
        # fields themselves (unlike artifact metadata, which converter.go
        # wraps in {"struct": ...} / {"list": ...}).
        json_format.ParseDict(
            inputs["parameterValues"], execution.custom_properties["inputs"].struct_value
        )
        execution_id, _, _ = self.store.put_execution(execution, input_pairs, contexts)
        execution.id = execution_id

        command = [
            part.replace("{{$}}", executor_input_json)
            for part in [*container.get("command", []), *container.get("args", [])]
        ]
        leftover = [part for part in command if "{{$" in part]
        if leftover:
            raise SpecError(f"task {name}: unresolved placeholders {leftover}")
        log = self.work_dir / "logs" / f"{record.run_id}-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        python_module = preloaded.module_command(command) if self.preload else None
        with open(log, "w") as out:
            try:
                if python_module is not None:
                    try:
                        returncode = self._preloaded().run(*python_module, out, self.timeout_s)
                    except preloaded.ServerFailed as failed:
                        # The task fails with the reason as its last log
                        # line; a later task starts a new interpreter.
                        out.write(f"\n{failed}\n")
                        self.close()
                        returncode = 1
                else:
                    returncode = subprocess.run(
                        command,
                        env=self.env,
                        stdin=subprocess.DEVNULL,  # a container's is empty
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        timeout=self.timeout_s,
                        check=False,
                    ).returncode
            except subprocess.TimeoutExpired:
                out.write(f"\nstopped after {self.timeout_s}s (the task timeout)\n")
                returncode = -9
        if returncode != 0:
            execution.last_known_state = metadata_store_pb2.Execution.FAILED
            self.store.put_execution(execution, [], contexts)
            raise TaskFailed(name, returncode, log)

        executor_output = pipeline_spec_pb2.ExecutorOutput()
        output_file = outputs["outputFile"]
        if storage.exists(output_file):
            json_format.Parse(storage.read_bytes(output_file).decode(), executor_output)
        output_pairs = []
        recorded: dict[str, metadata_store_pb2.Artifact] = {}
        for key, artifact_list in outputs["artifacts"].items():
            runtime = artifact_list["artifacts"][0]
            uri = runtime["uri"]
            metadata = dict(runtime.get("metadata", {}))
            produced = executor_output.artifacts.get(key)
            if produced is not None and produced.artifacts:  # mergeRuntimeArtifacts
                uri = produced.artifacts[0].uri or uri
                metadata.update(json_format.MessageToDict(produced.artifacts[0].metadata))
            artifact = metadata_store_pb2.Artifact(
                type_id=self._type_id("artifact", _title(runtime["type"]["instanceSchema"])),
                uri=uri,
                state=metadata_store_pb2.Artifact.LIVE,
            )
            for k, v in metadata.items():
                artifact.custom_properties[k].CopyFrom(_mlmd_value(v))
            for k, v in (("display_name", key), ("store_session_info", "{}")):
                if k not in artifact.custom_properties:
                    artifact.custom_properties[k].CopyFrom(_mlmd_value(v))
            event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)
            event.path.steps.add().key = key
            output_pairs.append((artifact, event))
            recorded[key] = artifact
        execution.last_known_state = metadata_store_pb2.Execution.COMPLETE
        _, artifact_ids, _ = self.store.put_execution(execution, output_pairs, contexts)
        for artifact, artifact_id in zip(recorded.values(), artifact_ids, strict=True):
            artifact.id = artifact_id
        return TaskRecord(
            name=name,
            execution_id=execution_id,
            executor_input=json.loads(executor_input_json),
            outputs=recorded,
        )


def parse_parameters(spec: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Run parameters from `name=value` strings, typed as the spec declares them.

    A STRING parameter keeps its text as it is; numbers, booleans, lists and
    structs are read as YAML (JSON included), as the KFP UI's form would.

    Raises:
        SpecError: Not `name=value`, an undeclared name, or a value that is
            not of the declared type.
    """
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    values: dict[str, Any] = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep or not name:
            raise SpecError(f"--param expects name=value, got {assignment!r}")
        if name not in declared:
            raise SpecError(
                f"--param {name}: the pipeline has no such parameter; declared: "
                f"{', '.join(sorted(declared)) or 'none'}"
            )
        kind = declared[name]["parameterType"]
        if kind == "STRING":
            values[name] = text
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            reason = " ".join(str(e).split())
            raise SpecError(f"--param {name}: {text!r} is not a {kind} value: {reason}") from e
        if kind == "NUMBER_DOUBLE" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        expected = _PARAMETER_KINDS[kind]
        if not isinstance(value, expected) or (bool not in expected and isinstance(value, bool)):
            raise SpecError(f"--param {name}: expected a {kind} value, got {text!r}")
        if kind == "NUMBER_INTEGER" and isinstance(value, float) and not value.is_integer():
            raise SpecError(f"--param {name}: expected an integer, got {text!r}")
        if kind == "NUMBER_INTEGER" and isinstance(value, float):
            value = int(value)
        values[name] = value
    return values


def load_spec(path: Path) -> dict[str, Any]:
    """Reads a compiled PipelineSpec YAML (what `compile` writes and KFP takes).

    Raises:
        SpecError: No such file, not YAML, or not a PipelineSpec (a Vertex
            PipelineJob JSON is named as such).
    """
    if not path.is_file():
        raise SpecError(f"{path}: no such file")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not YAML: {' '.join(str(e).split())}") from e
    if isinstance(spec, dict) and "pipelineSpec" in spec and "root" not in spec:
        raise SpecError(
            f"{path} is a Vertex PipelineJob; compile with --format yaml for a bare PipelineSpec"
        )
    if not isinstance(spec, dict) or "root" not in spec or "deploymentSpec" not in spec:
        raise SpecError(f"{path} is not a compiled PipelineSpec (no root and deploymentSpec)")
    return spec
