"""ML Metadata: connections, and one reading of what either orchestrator records.

Connections are built from one plain description of the store. Components
receive the description as a JSON parameter (no password: for MySQL it names
the environment variable that holds it, so no secret is written into the
pipeline IR or into ML Metadata).

TFX's local runner and the Kubeflow v2 launcher record the same pipeline in
two dialects, and every reader here understands both:

| | TFX local runner | KFP v2 launcher |
|---|---|---|
| artifact types | `Examples`, `Model`, ... | `tfx.Examples`, `tfx.Model`, ... |
| a node's executions | in the `node` context `<pipeline>.<node id>` | `task_name` property |
| contexts | `pipeline`, `pipeline_run` (the run id) | `system.Pipeline`, `system.PipelineRun` |
| numbers in properties | ints | doubles; dicts and lists wrapped |
| parameters | execution custom properties | fields of the execution's `inputs` struct |

The local runner's names are TFX's (`tfx/dsl/compiler/constants.py`); the
launcher's are KFP's (`backend/src/v2/metadata/client.go`, `converter.go`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.contracts import BLESSED, CURRENT_MODEL_ID, PUSHED
from components.errors import ConfigError, UserError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# metadata_store_pb2.ConnectionConfig or metadata_store_pb2.MetadataStoreClientConfig.
ConnectionProto: TypeAlias = Any
Artifact: TypeAlias = metadata_store_pb2.Artifact
Execution: TypeAlias = metadata_store_pb2.Execution
Context: TypeAlias = metadata_store_pb2.Context
Event: TypeAlias = metadata_store_pb2.Event

TFX_PIPELINE_CONTEXT_TYPE = "pipeline"
KFP_PIPELINE_CONTEXT_TYPE = "system.Pipeline"
PIPELINE_CONTEXT_TYPES = (TFX_PIPELINE_CONTEXT_TYPE, KFP_PIPELINE_CONTEXT_TYPE)
TFX_RUN_CONTEXT_TYPE = "pipeline_run"
KFP_RUN_CONTEXT_TYPE = "system.PipelineRun"
RUN_CONTEXT_TYPES = (TFX_RUN_CONTEXT_TYPE, KFP_RUN_CONTEXT_TYPE)
# Only TFX groups a node's executions in a context; KFP names the node in TASK_NAME.
NODE_CONTEXT_TYPE = "node"
TASK_NAME = "task_name"
# KFP names artifact types by their schema title, TFX's type name behind `tfx.`.
KFP_TYPE_PREFIX = "tfx."
MODEL_BLESSING_TYPE = "ModelBlessing"

OUTPUT_EVENT_TYPES = (Event.OUTPUT, Event.DECLARED_OUTPUT)
INPUT_EVENT_TYPES = (Event.INPUT, Event.DECLARED_INPUT)
_STATE_NAMES = {value: name for name, value in Execution.State.items()}
# Execution properties KFP records for its own bookkeeping, not parameters.
_KFP_BOOKKEEPING = {"display_name", TASK_NAME, "pod_name", "pod_uid", "image", "namespace"}


class StoreNotFoundError(UserError, FileNotFoundError):
    """The SQLite store to inspect does not exist (no run has written it yet)."""


# Connections.


def connection_config(spec: Mapping[str, Any]) -> ConnectionProto:
    """Builds the ML Metadata connection proto for a store description.

    Args:
        spec: `kind` (sqlite, mysql, grpc) and that kind's fields:
            `sqlite_path`; `host`, `port`, `database`, `user`, `password_env`;
            `host`, `port`. `read_only` opens a SQLite file read-only.

    Returns:
        A ConnectionConfig (sqlite, mysql) or a MetadataStoreClientConfig
        (grpc).

    Raises:
        ValueError: Unknown kind, or the MySQL password variable is unset.
    """
    kind = spec.get("kind")
    if kind == "sqlite":
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = str(spec["sqlite_path"])
        config.sqlite.connection_mode = (
            metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
            if spec.get("read_only")
            else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        )
        return config
    if kind == "mysql":
        password_env = str(spec.get("password_env", ""))
        if password_env and password_env not in os.environ:
            raise ConfigError(
                f"MySQL ML Metadata: environment variable {password_env} (metadata.password_env) "
                "is not set; export the database password there"
            )
        config = metadata_store_pb2.ConnectionConfig()
        config.mysql.host = str(spec["host"])
        config.mysql.port = int(spec["port"])
        config.mysql.database = str(spec["database"])
        config.mysql.user = str(spec["user"])
        config.mysql.password = os.environ.get(password_env, "") if password_env else ""
        return config
    if kind == "grpc":
        client = metadata_store_pb2.MetadataStoreClientConfig()
        client.host = str(spec["host"])
        client.port = int(spec["port"])
        return client
    raise ConfigError(f"unknown ML Metadata store kind {kind!r}; expected sqlite, mysql or grpc")


# ML Metadata's words for a new store whose tables another connection is creating.
_CREATING_TABLES = "concurrent connection to the empty database"
STORE_ATTEMPTS = 10
STORE_RETRY_S = 0.5


def open_store(connection: ConnectionProto) -> metadata_store.MetadataStore:
    """Opens a store, waiting while another connection creates a new store's tables.

    Two runs starting at once on a new store both create its tables; ML
    Metadata tells the one that finds them half made to retry (seen in CI,
    two runs at once on a new SQLite file). That error is retried
    `STORE_ATTEMPTS` times in all, `STORE_RETRY_S` apart; any other error
    is raised at once.
    """
    for _ in range(STORE_ATTEMPTS - 1):
        try:
            return metadata_store.MetadataStore(connection)
        except Exception as error:  # ML Metadata raises its own error types per backend
            if _CREATING_TABLES not in str(error):
                raise
            time.sleep(STORE_RETRY_S)
    return metadata_store.MetadataStore(connection)


def connect(spec: Mapping[str, Any] | str) -> metadata_store.MetadataStore:
    """Opens the store described by `spec` (a mapping or its JSON)."""
    parsed: Mapping[str, Any] = json.loads(spec) if isinstance(spec, str) else spec
    return open_store(connection_config(parsed))


def open_for_reading(
    spec: Mapping[str, Any] | DataclassInstance,
) -> metadata_store.MetadataStore:
    """Opens a store to inspect it: a SQLite file read-only, never created.

    Args:
        spec: The store description, as for `connection_config`, or a
            dataclass with those fields (`pipeline.config.MetadataConfig`).

    Returns:
        The store. MySQL connects here; gRPC on the first call.

    Raises:
        StoreNotFoundError: The SQLite file does not exist (a FileNotFoundError
            and a UserError).
    """
    fields = dict(spec) if isinstance(spec, Mapping) else dataclasses.asdict(spec)
    if fields.get("kind") == "sqlite":
        if not Path(fields["sqlite_path"]).is_file():
            raise StoreNotFoundError(
                f"{fields['sqlite_path']}: no such file; run the pipeline first or set "
                "metadata.sqlite_path"
            )
        # Read-only: inspecting must never create or migrate a store.
        fields["read_only"] = True
    return connect(fields)


# Types.


def type_names(type_name: str) -> tuple[str, str]:
    """An artifact type's name as the local runner and as KFP record it (`Model`, `tfx.Model`)."""
    return type_name, f"{KFP_TYPE_PREFIX}{type_name}"


def short_type(name: str) -> str:
    """`tfx.Model` and `Model` alike -> `Model` (and `system.X` -> `X`)."""
    for prefix in (KFP_TYPE_PREFIX, "system."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def artifact_type_ids(store: metadata_store.MetadataStore, type_name: str) -> set[int]:
    """Ids of an artifact type under either dialect's name (none if never recorded)."""
    names = type_names(type_name)
    return {t.id for t in store.get_artifact_types() if t.name in names}


def artifacts_of_type(store: metadata_store.MetadataStore, type_name: str) -> list[Artifact]:
    """Every artifact of a type, under either dialect's name, oldest first."""
    found: list[Artifact] = []
    for name in type_names(type_name):
        found.extend(store.get_artifacts_by_type(name))
    return sorted(found, key=lambda a: a.id)


def artifact_id_by_uri(store: metadata_store.MetadataStore, type_name: str, uri: str) -> int | None:
    """The ML Metadata id of the newest artifact of a type at a URI.

    Executors need this for their inputs' real ids: TFX's local runner passes
    the real id as `artifact.id`, the Kubeflow v2 entrypoint a hash of the
    runtime name. URIs are unique per artifact under both.

    Args:
        store: The store the pipeline records in.
        type_name: TFX's type name (`Model`); KFP's `tfx.Model` matches too.
        uri: The artifact's URI.

    Returns:
        The id, or None when no artifact of that type has that URI.
    """
    type_ids = artifact_type_ids(store, type_name)
    matches = [a.id for a in store.get_artifacts_by_uri(uri) if a.type_id in type_ids]
    return max(matches) if matches else None


# Property values.


def value_of(value: metadata_store_pb2.Value) -> object:
    """A property value as plain Python, read the same in either dialect.

    KFP records every number as a double, so an integral double becomes an
    int; its converter wraps the dicts and lists it stores on artifacts in
    `{"struct": ...}` and `{"list": ...}`, which are removed.
    """
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "struct_value":
        from google.protobuf import json_format

        decoded = json_format.MessageToDict(value.struct_value)
        if len(decoded) == 1 and next(iter(decoded)) in ("struct", "list"):
            return next(iter(decoded.values()))
        return decoded
    raw = getattr(value, kind)
    if kind == "double_value" and float(raw).is_integer():
        return int(raw)
    return raw


def property_value(entity: Artifact | Execution, key: str) -> object:
    """A custom property (else a property) as plain Python; None when absent."""
    for properties in (entity.custom_properties, entity.properties):
        # `in` first: indexing a missing key would add it to the proto.
        if key in properties:
            return value_of(properties[key])
    return None


def properties(entity: Artifact | Execution) -> dict[str, Any]:
    """All properties and custom properties as plain Python (custom ones win)."""
    values = {k: value_of(v) for k, v in entity.properties.items()}
    values.update({k: value_of(v) for k, v in entity.custom_properties.items()})
    return values


def execution_parameters(execution: Execution) -> dict[str, Any]:
    """An execution's parameters, by name, sorted.

    Under KFP they are the fields of the `inputs` struct, beside KFP's own
    bookkeeping; under TFX, custom properties. Strings holding a JSON object
    or list (how components receive structured parameters) are decoded; TFX's
    internal `__...` properties are left out.
    """
    raw = properties(execution)
    nested = raw.pop("inputs", None)
    if isinstance(nested, dict):
        raw.update(nested)
    result: dict[str, Any] = {}
    for key, value in sorted(raw.items()):
        if key in _KFP_BOOKKEEPING or key.startswith("__"):
            continue
        if isinstance(value, str) and value[:1] in "{[":
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        result[key] = value
    return result


def is_blessed(blessing: Artifact) -> bool:
    """Whether a ModelBlessing says `blessed` (an int from TFX, a double from KFP)."""
    return property_value(blessing, BLESSED) == 1


def blessing_model_id(blessing: Artifact) -> int | None:
    """The ML Metadata id of the model a ModelBlessing judged, or None if it names none.

    TFX's local runner records `current_model_id` as an int. Under Kubeflow v2
    TFX's entrypoint rewrites it to the model's runtime name, which the KFP
    launcher sets to the model's id in decimal: digits in a string.
    """
    value = property_value(blessing, CURRENT_MODEL_ID)
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None


def is_pushed(pushed_model: Artifact) -> bool:
    """Whether a PushedModel records a push (`pushed` 1, as int or double)."""
    return property_value(pushed_model, PUSHED) == 1


# Executions and events.


def state_name(execution: Execution) -> str:
    """`COMPLETE`, `CACHED`, `FAILED`, ... of an execution."""
    return _STATE_NAMES.get(execution.last_known_state, "UNKNOWN")


def event_key(event: Event) -> str:
    """The input or output name an event records (`examples`, `model`...)."""
    return next((s.key for s in event.path.steps if s.HasField("key")), "")


def output_artifacts(
    store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[Artifact]]:
    """Output artifacts of an execution keyed by output name (e.g. `blessing`)."""
    ids_by_key: dict[str, list[int]] = defaultdict(list)
    for event in store.get_events_by_execution_ids([execution_id]):
        if event.type in OUTPUT_EVENT_TYPES:
            ids_by_key[event_key(event)].append(event.artifact_id)
    all_ids = [i for ids in ids_by_key.values() for i in ids]
    by_id = {a.id: a for a in store.get_artifacts_by_id(all_ids)} if all_ids else {}
    return {key: [by_id[i] for i in ids if i in by_id] for key, ids in ids_by_key.items()}


def task_name(execution: Execution) -> str | None:
    """The node id KFP records on an execution, or None (TFX's executions have none)."""
    value = property_value(execution, TASK_NAME)
    return value if isinstance(value, str) and value else None


def node_context_name(pipeline_name: str, node_id: str) -> str:
    """Name TFX gives the context of one pipeline node."""
    return f"{pipeline_name}.{node_id}"


def node_id(
    execution: Execution, contexts: Iterable[Context], context_types: Mapping[int, str]
) -> str | None:
    """The pipeline node (`trainer`...) an execution ran, in either dialect.

    Args:
        execution: The execution.
        contexts: Its contexts (`get_contexts_by_execution`).
        context_types: Context type names by type id (`get_context_types`).

    Returns:
        KFP's `task_name`, else the node of TFX's node context, else None.
    """
    task = task_name(execution)
    if task is not None:
        return task
    by_type: dict[str, list[str]] = defaultdict(list)
    for context in contexts:
        by_type[context_types.get(context.type_id, context.type)].append(context.name)
    if not by_type[NODE_CONTEXT_TYPE]:
        return None
    name = by_type[NODE_CONTEXT_TYPE][0]
    # Pipeline names may hold dots: strip the pipeline's name, not up to the first dot.
    for pipeline in by_type[TFX_PIPELINE_CONTEXT_TYPE]:
        prefix = f"{pipeline}."
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name.split(".", 1)[-1]


def pipeline_contexts(store: metadata_store.MetadataStore, pipeline_name: str) -> list[Context]:
    """The pipeline's context in each dialect that recorded it (usually one)."""
    found = (store.get_context_by_type_and_name(t, pipeline_name) for t in PIPELINE_CONTEXT_TYPES)
    return [context for context in found if context is not None]


def _executions_of(
    store: metadata_store.MetadataStore, contexts: Iterable[Context]
) -> dict[int, Execution]:
    return {e.id: e for c in contexts for e in store.get_executions_by_context(c.id)}


def _node_executions(
    store: metadata_store.MetadataStore, pipeline_name: str, node_id: str
) -> dict[int, Execution]:
    """Executions in TFX's node context of the node (none under KFP, which has no such context)."""
    context = store.get_context_by_type_and_name(
        NODE_CONTEXT_TYPE, node_context_name(pipeline_name, node_id)
    )
    return _executions_of(store, [context] if context is not None else [])


def latest_execution(
    store: metadata_store.MetadataStore, pipeline_name: str, node_id: str
) -> Execution | None:
    """The newest execution of a node over all runs, or None if it never ran.

    A running pipeline reads its own run's with `execution_of_node_in_run`:
    this one sees other runs' executions as soon as they are recorded.
    """
    in_node = _node_executions(store, pipeline_name, node_id)
    if in_node:
        return in_node[max(in_node)]
    in_pipeline = _executions_of(store, pipeline_contexts(store, pipeline_name))
    tasks = [i for i, e in in_pipeline.items() if task_name(e) == node_id]
    return in_pipeline[max(tasks)] if tasks else None


def executor_run_id(parameter: str, context: Any) -> str:
    """The run an executor belongs to: its `pipeline_run_id` parameter, else its context's.

    The Kubeflow compile passes `{{$.pipeline_job_uuid}}` as the parameter;
    the local runner leaves it empty and puts the run id in the executor
    context. Empty when neither has one.
    """
    return parameter or (getattr(context, "pipeline_run_id", None) if context else None) or ""


def _executions_in_run(store: metadata_store.MetadataStore, run_id: str) -> dict[int, Execution]:
    found = (store.get_context_by_type_and_name(t, run_id) for t in RUN_CONTEXT_TYPES)
    return _executions_of(store, [c for c in found if c is not None])


def _in_pipeline(
    store: metadata_store.MetadataStore, pipeline_name: str, executions: Mapping[int, Execution]
) -> list[Execution]:
    """Those of `executions` recorded in the pipeline's context, oldest first.

    A run id is only unique per pipeline: two pipelines started in the same
    microsecond on one store would share TFX's run context.
    """
    if not executions:
        return []
    in_pipeline = _executions_of(store, pipeline_contexts(store, pipeline_name))
    return [executions[i] for i in sorted(executions.keys() & in_pipeline.keys())]


def run_executions(
    store: metadata_store.MetadataStore, pipeline_name: str, run_id: str
) -> list[Execution]:
    """The executions of one run of a pipeline, oldest first.

    Args:
        store: The store the run records in.
        pipeline_name: The pipeline.
        run_id: The run's id. TFX's local runner names the run's
            `pipeline_run` context by it (`LocalDagRunner` takes the start
            time, `datetime.now().isoformat()`); KFP its `system.PipelineRun`
            context (the run's UUID).

    Returns:
        The executions under the run's context that belong to the pipeline;
        none for an unknown run.
    """
    return _in_pipeline(store, pipeline_name, _executions_in_run(store, run_id))


def execution_of_node_in_run(
    store: metadata_store.MetadataStore, pipeline_name: str, run_id: str, node_id: str
) -> Execution | None:
    """A node's execution in one run (the newest, should it have several).

    Unlike `latest_execution`, this cannot return the execution of another
    run of the same pipeline writing to the same store at the same time.

    Args:
        store: The store the run records in.
        pipeline_name: The pipeline.
        run_id: The run, as for `run_executions`.
        node_id: The node (`trainer`...).

    Returns:
        The execution, or None if the node recorded none in this run.
    """
    in_run = _executions_in_run(store, run_id)
    # TFX: the node's context already belongs to the pipeline.
    in_node = _node_executions(store, pipeline_name, node_id).keys() & in_run.keys()
    if in_node:
        return in_run[max(in_node)]
    tasks = {i: e for i, e in in_run.items() if task_name(e) == node_id}
    found = _in_pipeline(store, pipeline_name, tasks)
    return found[-1] if found else None


# The process that runs a local run, recorded on the run's context so that
# lineage can tell a live run from one whose runner was killed.
RUNNER_PID = "runner_pid"
RUNNER_HOST = "runner_host"
# Why an interrupted execution was cancelled, recorded on it.
INTERRUPTED_BY = "interrupted_by"


def cancel_running(
    store: metadata_store.MetadataStore, pipeline_name: str, run_id: str, reason: str = "SIGINT"
) -> list[int]:
    """Marks a run's executions still RUNNING (or NEW) as CANCELED; returns their ids.

    An interrupted local runner leaves the node it was running in RUNNING
    state, forever; CANCELED says what happened, and a rerun is not
    affected (TFX's cache only reuses COMPLETE and CACHED executions).
    """
    unfinished = (Execution.RUNNING, Execution.NEW)
    stopped = []
    for execution in run_executions(store, pipeline_name, run_id):
        if execution.last_known_state in unfinished:
            execution.last_known_state = Execution.CANCELED
            execution.custom_properties[INTERRUPTED_BY].string_value = reason
            stopped.append(execution)
    if stopped:
        store.put_executions(stopped)
    return [e.id for e in stopped]


def record_runner(store: metadata_store.MetadataStore, run_id: str, pid: int, host: str) -> bool:
    """Records which process runs a local run on its `pipeline_run` context.

    Returns:
        False when the run's context does not exist yet (before its first node
        registered an execution); the caller records it later.
    """
    context = store.get_context_by_type_and_name(TFX_RUN_CONTEXT_TYPE, run_id)
    if context is None:
        return False
    if context.custom_properties[RUNNER_PID].int_value != pid:
        context.custom_properties[RUNNER_PID].int_value = pid
        context.custom_properties[RUNNER_HOST].string_value = host
        store.put_contexts([context])
    return True


def runner_of(context: Context) -> tuple[int, str] | None:
    """(pid, host) of the process that ran a local run, if it recorded itself."""
    if RUNNER_PID not in context.custom_properties:
        return None
    return (
        int(context.custom_properties[RUNNER_PID].int_value),
        context.custom_properties[RUNNER_HOST].string_value,
    )
