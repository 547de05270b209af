"""The ML Metadata dialect helpers, on hand-written stores in both orchestrators' naming.

Run-scoped lookups are checked on two runs of one pipeline in one store, and
through a real LocalDagRunner with `pipeline.progress`, while another "run"
records executions of the same node.
"""

# No `from __future__ import annotations`: TFX's @component reads the
# annotations of StepWithCompany as types, not strings.
import dataclasses
import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from ml_metadata import errors as mlmd_errors
from ml_metadata.proto import metadata_store_pb2 as pb
from tfx import v1 as tfx

from components import contracts, mlmd
from components.errors import UserError
from tests.mlmd_records import NAMINGS, StoreWriter


@pytest.fixture(params=sorted(NAMINGS))
def writer(request, tmp_path) -> StoreWriter:
    return StoreWriter(tmp_path / "mlmd.sqlite", request.param)


def _artifact(writer: StoreWriter, artifact_id: int) -> pb.Artifact:
    return writer.store.get_artifacts_by_id([artifact_id])[0]


def _execution(writer: StoreWriter, execution_id: int) -> pb.Execution:
    return writer.store.get_executions_by_id([execution_id])[0]


# Types.


def test_type_names_cover_both_dialects(writer):
    first = writer.artifact("Model", "/m/1")
    second = writer.artifact("Model", "/m/2")
    writer.artifact("Examples", "/e/1")
    assert [a.id for a in mlmd.artifacts_of_type(writer.store, "Model")] == [first, second]
    assert mlmd.artifacts_of_type(writer.store, "Schema") == []
    assert mlmd.type_names("Model") == ("Model", "tfx.Model")
    assert mlmd.short_type("tfx.Model") == mlmd.short_type("Model") == "Model"
    assert mlmd.short_type("system.ContainerExecution") == "ContainerExecution"


def test_artifact_id_by_uri_finds_the_real_id_in_either_naming(writer):
    writer.artifact("Model", "/root/trainer/model/7")
    newest = writer.artifact("Model", "/root/trainer/model/7")
    writer.artifact("Examples", "/root/trainer/model/8")
    assert mlmd.artifact_id_by_uri(writer.store, "Model", "/root/trainer/model/7") == newest
    # A URI of another type, or no artifact at all.
    assert mlmd.artifact_id_by_uri(writer.store, "Model", "/root/trainer/model/8") is None
    assert mlmd.artifact_id_by_uri(writer.store, "Model", "/nowhere") is None
    assert mlmd.artifact_id_by_uri(writer.store, "PushedModel", "/root/trainer/model/7") is None


# Values.


def test_values_read_the_same_in_both_dialects(writer):
    artifact = _artifact(writer, writer.artifact("Examples", "/e", span=3, split_names="[]"))
    assert mlmd.property_value(artifact, "span") == 3
    assert isinstance(mlmd.property_value(artifact, "span"), int)
    assert mlmd.properties(artifact) == {"span": 3, "split_names": "[]"}


def test_kfp_wrappers_and_doubles_are_unwrapped():
    wrapped = pb.Value()
    json_format.ParseDict({"struct": {"a": 1}}, wrapped.struct_value)
    assert mlmd.value_of(wrapped) == {"a": 1}
    listed = pb.Value()
    json_format.ParseDict({"list": [1, 2]}, listed.struct_value)
    assert mlmd.value_of(listed) == [1, 2]
    assert mlmd.value_of(pb.Value(double_value=3.0)) == 3
    assert mlmd.value_of(pb.Value(double_value=0.75)) == 0.75
    assert mlmd.value_of(pb.Value()) is None


def test_an_absent_property_is_none_and_is_not_added():
    artifact = pb.Artifact()
    assert mlmd.property_value(artifact, contracts.BLESSED) is None
    assert not mlmd.is_blessed(artifact)
    assert contracts.BLESSED not in artifact.custom_properties


@pytest.mark.parametrize(
    ("blessed", "model_id", "expected"),
    [
        ({"int_value": 1}, {"int_value": 12}, (True, 12)),  # TFX's local runner
        ({"double_value": 1.0}, {"string_value": "12"}, (True, 12)),  # the KFP launcher
        ({"double_value": 1.0}, {"double_value": 12.0}, (True, 12)),
        ({"int_value": 0}, {"string_value": "model"}, (False, None)),
        ({"int_value": 0}, {"int_value": 0}, (False, None)),
    ],
)
def test_blessings_in_both_dialects(blessed, model_id, expected):
    blessing = pb.Artifact()
    blessing.custom_properties[contracts.BLESSED].CopyFrom(pb.Value(**blessed))
    blessing.custom_properties[contracts.CURRENT_MODEL_ID].CopyFrom(pb.Value(**model_id))
    assert (mlmd.is_blessed(blessing), mlmd.blessing_model_id(blessing)) == expected


def test_pushes_in_both_dialects(writer):
    pushed = _artifact(writer, writer.artifact("PushedModel", "/p/1", **{contracts.PUSHED: 1}))
    skipped = _artifact(writer, writer.artifact("PushedModel", "/p/2", **{contracts.PUSHED: 0}))
    assert mlmd.is_pushed(pushed) and not mlmd.is_pushed(skipped)


def test_execution_parameters_in_both_dialects(writer):
    launch = {"workers": 2, "launcher": "local"}
    execution = _execution(
        writer,
        writer.execution("trainer", "run-1", {}, {}, train_steps=100, launch=json.dumps(launch)),
    )
    # KFP's `task_name` (and its other bookkeeping) is not a parameter.
    assert mlmd.execution_parameters(execution) == {"launch": launch, "train_steps": 100}


# Executions and nodes.


def test_node_id_in_both_dialects(writer):
    execution = _execution(writer, writer.execution("trainer", "run-1", {}, {}))
    contexts = writer.store.get_contexts_by_execution(execution.id)
    types = {t.id: t.name for t in writer.store.get_context_types()}
    assert mlmd.node_id(execution, contexts, types) == "trainer"
    assert mlmd.task_name(execution) == ("trainer" if writer.kfp else None)


def test_node_id_of_a_pipeline_name_with_dots(tmp_path):
    writer = StoreWriter(tmp_path / "mlmd.sqlite", "local", pipeline="team.taxi")
    execution = _execution(writer, writer.execution("trainer", "run-1", {}, {}))
    contexts = writer.store.get_contexts_by_execution(execution.id)
    types = {t.id: t.name for t in writer.store.get_context_types()}
    assert mlmd.node_id(execution, contexts, types) == "trainer"


def test_output_artifacts_and_state(writer):
    model = writer.artifact("Model", "/m")
    examples = writer.artifact("Examples", "/e")
    execution = _execution(
        writer,
        writer.execution(
            "trainer", "run-1", {contracts.EXAMPLES: examples}, {contracts.MODEL: model}
        ),
    )
    outputs = mlmd.output_artifacts(writer.store, execution.id)
    assert {k: [a.id for a in v] for k, v in outputs.items()} == {contracts.MODEL: [model]}
    assert mlmd.state_name(execution) == "COMPLETE"


def _two_runs(writer: StoreWriter) -> dict[str, int]:
    """Two runs of `taxi` at once, their executions interleaved, and another pipeline's run."""
    ids = {
        "run-1 trainer": writer.execution("trainer", "run-1", {}, {}),
        "run-2 trainer": writer.execution("trainer", "run-2", {}, {}),
        "run-2 evaluator": writer.execution("evaluator", "run-2", {}, {}),
        "run-1 evaluator": writer.execution(
            "evaluator", "run-1", {}, {}, state=pb.Execution.FAILED
        ),
    }
    # Another pipeline whose run has the same id (TFX's run ids are start times).
    writer.pipeline = "other"
    ids["other trainer"] = writer.execution("trainer", "run-1", {}, {})
    writer.pipeline = "taxi"
    return ids


def test_each_run_reads_its_own_executions(writer):
    ids = _two_runs(writer)
    store = writer.store

    def in_run(run: str, node: str) -> int | None:
        found = mlmd.execution_of_node_in_run(store, "taxi", run, node)
        return found.id if found else None

    assert in_run("run-1", "trainer") == ids["run-1 trainer"]
    assert in_run("run-2", "trainer") == ids["run-2 trainer"]
    assert in_run("run-1", "evaluator") == ids["run-1 evaluator"]
    assert in_run("run-2", "evaluator") == ids["run-2 evaluator"]
    assert in_run("run-2", "pusher") is None
    assert in_run("run-3", "trainer") is None
    assert (
        mlmd.execution_of_node_in_run(store, "other", "run-1", "trainer").id
        == (ids["other trainer"])
    )
    assert [e.id for e in mlmd.run_executions(store, "taxi", "run-1")] == [
        ids["run-1 trainer"],
        ids["run-1 evaluator"],
    ]
    assert mlmd.run_executions(store, "taxi", "run-3") == []
    # What the progress lines read before: the newest over all runs.
    assert mlmd.latest_execution(store, "taxi", "evaluator").id == ids["run-1 evaluator"]
    assert mlmd.latest_execution(store, "taxi", "trainer").id == ids["run-2 trainer"]
    assert mlmd.latest_execution(store, "taxi", "pusher") is None


def test_pipeline_contexts(writer):
    writer.execution("trainer", "run-1", {}, {})
    [context] = mlmd.pipeline_contexts(writer.store, "taxi")
    assert context.name == "taxi"
    assert mlmd.pipeline_contexts(writer.store, "other") == []


# Opening a store.


@dataclasses.dataclass(frozen=True)
class _Metadata:
    kind: str
    sqlite_path: str


def test_a_missing_store_is_not_created(tmp_path):
    missing = tmp_path / "absent.sqlite"
    with pytest.raises(mlmd.StoreNotFoundError, match=r"absent\.sqlite: no such file") as raised:
        mlmd.open_for_reading({"kind": "sqlite", "sqlite_path": str(missing)})
    assert isinstance(raised.value, UserError) and isinstance(raised.value, FileNotFoundError)
    assert not missing.exists()


def test_a_store_is_opened_read_only(tmp_path):
    path = tmp_path / "mlmd.sqlite"
    StoreWriter(path, "local").artifact("Model", "/m")
    store = mlmd.open_for_reading(_Metadata(kind="sqlite", sqlite_path=str(path)))
    assert [a.uri for a in mlmd.artifacts_of_type(store, "Model")] == ["/m"]
    with pytest.raises(mlmd_errors.InternalError, match="readonly"):
        store.put_artifact_type(pb.ArtifactType(name="Schema"))


# The local runner's run, as pipeline.progress reads it.


@tfx.dsl.components.component
def StepWithCompany(
    store_path: tfx.dsl.components.Parameter[str],
    out: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Examples],
) -> None:
    """While it runs, another run of its pipeline records a newer execution of the node."""
    StoreWriter(Path(store_path), "local", pipeline="tiny").execution(
        "step", "another-run", {}, {}, state=pb.Execution.FAILED
    )


def test_progress_reads_its_own_run_while_another_records_the_same_node(tmp_path):
    from pipeline.progress import ProgressTracker

    path = tmp_path / "mlmd.sqlite"
    connection = mlmd.connection_config({"kind": "sqlite", "sqlite_path": str(path)})
    store = mlmd.connect({"kind": "sqlite", "sqlite_path": str(path)})
    results, run_ids = [], []
    for _ in range(2):
        tracker = ProgressTracker(store, "tiny", lambda _: None)
        with tracker.attached():
            tfx.orchestration.LocalDagRunner().run(
                tfx.dsl.Pipeline(
                    pipeline_name="tiny",
                    pipeline_root=str(tmp_path / "root"),
                    components=[StepWithCompany(store_path=str(path)).with_id("step")],
                    metadata_connection_config=connection,
                    enable_cache=False,
                )
            )
        [result] = tracker.results
        results.append(result)
        run_ids.append(tracker.run_id)
    assert [r.state for r in results] == ["COMPLETE", "COMPLETE"]
    assert run_ids[0] != run_ids[1]
    for result, run_id in zip(results, run_ids, strict=True):
        contexts = store.get_contexts_by_execution(result.execution_id)
        assert (mlmd.TFX_RUN_CONTEXT_TYPE, run_id) in {(c.type, c.name) for c in contexts}
    # The newest execution of the node is the other run's.
    assert mlmd.state_name(mlmd.latest_execution(store, "tiny", "step")) == "FAILED"


def test_a_node_without_a_run_is_refused():
    from tfx.proto.orchestration import pipeline_pb2

    from pipeline.progress import run_id_of

    node = pipeline_pb2.PipelineNode()
    node.node_info.id = "step"
    with pytest.raises(ValueError, match="node step has no resolved pipeline_run context"):
        run_id_of(node)


def test_an_executor_run_id_is_the_parameter_else_the_context():
    from types import SimpleNamespace

    from components.mlmd import executor_run_id

    context = SimpleNamespace(pipeline_run_id="2026-12-02T16:48:28")
    assert executor_run_id("kfp-uuid", context) == "kfp-uuid"
    assert executor_run_id("", context) == "2026-12-02T16:48:28"
    assert executor_run_id("", None) == ""
    assert executor_run_id("", SimpleNamespace(pipeline_run_id=None)) == ""
