"""Lineage queries on small hand-written ML Metadata stores, in both orchestrators' naming.

The full pipelines (local SQLite, MariaDB, the KFP launcher emulation) are
covered in test_e2e.py, test_lineage_mysql.py and test_kubeflow_launcher.py;
these check the walk itself, the renderings and the errors, quickly. The
dialect helpers themselves are tested in test_mlmd.py.
"""

from __future__ import annotations

import json

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline.cli import main
from pipeline.lineage import render
from pipeline.lineage.graph import LineageError, MetadataGraph
from pipeline.lineage.queries import Lineage
from tests.conftest import cli_in_fresh_process
from tests.fake_mlmd_grpc import FakeMetadataGrpcService
from tests.mlmd_records import NAMINGS, StoreWriter


def _write_two_runs(writer: StoreWriter, registry: str) -> dict[str, int]:
    """Two runs over one ExampleGen output: run-1 pushes version 1, run-2 is rejected."""
    ids: dict[str, int] = {}
    ids["examples"] = writer.artifact("Examples", "/root/example_gen/1", span=0)
    ids["schema"] = writer.artifact("Schema", "/root/schema/2")
    writer.execution("example_gen", "run-1", {}, {"examples": ids["examples"]}, input_base="/data")
    # run-2 is recorded as earlier versions of the project recorded it: the
    # launch settings and AUC thresholds as parameters of their own.
    for run, blessed in (("run-1", 1), ("run-2", 0)):
        graph = writer.artifact("TransformGraph", f"/root/{run}/transform_graph")
        transformed = writer.artifact("Examples", f"/root/{run}/transformed")
        writer.execution(
            "transform",
            run,
            {"examples": ids["examples"], "schema": ids["schema"]},
            {"transform_graph": graph, "transformed_examples": transformed},
        )
        model = writer.artifact("Model", f"/root/{run}/model")
        writer.execution(
            "trainer",
            run,
            {"examples": transformed, "transform_graph": graph, "schema": ids["schema"]},
            {"model": model},
            train_steps=100,
            **(
                {"custom_config": json.dumps({"trainer": {"workers": 2, "launcher": "local"}})}
                if run == "run-1"
                else {"launch": json.dumps({"workers": 2, "launcher": "local"})}
            ),
        )
        blessing = writer.artifact("ModelBlessing", f"/root/{run}/blessing", blessed=blessed)
        writer.execution(
            "evaluator",
            run,
            {"model": model, "examples": ids["examples"]},
            {"blessing": blessing},
            **(
                {"eval_spec": json.dumps({"metric": "auc", "task": "binary"}), "min_value": 0.8}
                if run == "run-1"
                else {"min_auc": 0.8}
            ),
        )
        pushed = writer.artifact(
            "PushedModel",
            f"/root/{run}/pushed",
            pushed=blessed,
            pushed_version="1",
            pushed_destination=f"{registry}/taxi/1",
        )
        writer.execution(
            "pusher", run, {"model": model, "model_blessing": blessing}, {"pushed_model": pushed}
        )
        ids[f"{run}-model"], ids[f"{run}-graph"], ids[f"{run}-transformed"] = (
            model,
            graph,
            transformed,
        )
    writer.execution("anomalies_gate", "run-3", {}, {}, state=mlmd.Execution.FAILED)
    return ids


@pytest.fixture(params=sorted(NAMINGS))
def written(request, tmp_path):
    writer = StoreWriter(tmp_path / "mlmd.sqlite", request.param)
    ids = _write_two_runs(writer, str(tmp_path / "registry"))
    args = [
        "--set",
        f"metadata.sqlite_path={tmp_path / 'mlmd.sqlite'}",
        "--set",
        f"registry.uri={tmp_path / 'registry'}",
    ]
    return Lineage(MetadataGraph(writer.store)), ids, args, tmp_path


def test_model_lineage_walks_back_to_the_exact_inputs(written):
    lineage, ids, _, tmp_path = written
    model = lineage.resolve_model("1", str(tmp_path / "registry" / "taxi"))
    assert model.id == ids["run-1-model"]
    result = lineage.model(model)
    assert result["run"] == "run-1" and result["pipeline"] == "taxi"
    assert result["trainer"]["node"] == "trainer"
    assert result["trainer"]["workers"] == 2
    assert result["trainer"]["parameters"]["train_steps"] == 100
    assert result["transformed_examples"]["id"] == ids["run-1-transformed"]
    assert result["trained_on"] == "transformed_examples"
    assert result["transform_graph"]["id"] == ids["run-1-graph"]
    assert result["transform"]["node"] == "transform"
    assert result["examples"]["id"] == ids["examples"]
    assert result["examples"]["example_gen"]["input_base"] == "/data"
    assert result["blessing"]["blessed"] is True
    assert result["blessing"]["thresholds"] == {"metric": "auc", "min_value": 0.8}
    assert result["pushed"][0]["version"] == 1
    tree = render.model_tree(result)
    assert f"Model {ids['run-1-model']}: /root/run-1/model" in tree
    assert "workers 2 (local)" in tree
    mermaid = render.model_mermaid(result)
    assert mermaid.startswith("flowchart LR") and "-->" in mermaid


@pytest.fixture(params=sorted(NAMINGS))
def written_raw(request, tmp_path):
    """A run with trainer.examples: raw: Transform only analyzes, the Trainer reads ExampleGen's."""
    writer = StoreWriter(tmp_path / "mlmd.sqlite", request.param)
    ids = {"examples": writer.artifact("Examples", "/root/example_gen/1", span=0)}
    ids["schema"] = writer.artifact("Schema", "/root/schema/2")
    writer.execution("example_gen", "run-1", {}, {"examples": ids["examples"]}, input_base="/data")
    ids["graph"] = writer.artifact("TransformGraph", "/root/run-1/transform_graph")
    writer.execution(
        "transform",
        "run-1",
        {"examples": ids["examples"], "schema": ids["schema"]},
        {"transform_graph": ids["graph"]},
    )
    ids["model"] = writer.artifact("Model", "/root/run-1/model")
    writer.execution(
        "trainer",
        "run-1",
        {"examples": ids["examples"], "transform_graph": ids["graph"], "schema": ids["schema"]},
        {"model": ids["model"]},
        train_steps=100,
    )
    return Lineage(MetadataGraph(writer.store)), writer.store, ids


def test_a_model_trained_on_raw_examples_through_the_transform_graph(written_raw):
    lineage, store, ids = written_raw
    result = lineage.model(store.get_artifacts_by_id([ids["model"]])[0])
    assert result["trained_on"] == "examples" and "transformed_examples" not in result
    assert result["examples"]["id"] == ids["examples"]
    assert result["examples"]["example_gen"]["input_base"] == "/data"
    assert result["examples"]["role"] == "examples the model was trained on, transformed as read"
    assert result["transform_graph"]["id"] == ids["graph"]
    tree = render.model_tree(result)
    assert "read by the trainer through the transform graph" in tree
    assert "(transformed)" not in tree
    edges = render._graph_edges(result)
    trainer = f"trainer #{result['trainer']['id']}"
    assert (f"Examples {ids['examples']}", trainer) in edges
    assert (f"TransformGraph {ids['graph']}", trainer) in edges


def test_examples_lineage_finds_both_runs_models(written):
    lineage, ids, _, _ = written
    result = lineage.examples(lineage.resolve_examples("/root/example_gen/1"))
    assert [(m["id"], m["blessed"], len(m["pushed"])) for m in result["models"]] == [
        (ids["run-1-model"], True, 1),
        (ids["run-2-model"], False, 0),
    ]
    assert "not blessed, not pushed" in render.examples_tree(result)


def test_runs_list_status_and_pushes(written):
    lineage, _, _, _ = written
    runs = {r["run"]: r for r in lineage.runs("taxi")}
    assert runs["run-1"]["status"] == "SUCCEEDED" and runs["run-1"]["pushed_versions"] == [1]
    assert runs["run-2"]["pushed_versions"] == []
    assert runs["run-3"]["status"] == "FAILED" and runs["run-3"]["failed_nodes"] == [
        "anomalies_gate"
    ]
    assert lineage.runs("other") == []


def test_errors_name_what_is_missing(written, capsys):
    lineage, ids, args, tmp_path = written
    with pytest.raises(LineageError, match=r"pushed versions: 1\)"):
        lineage.resolve_model("4", str(tmp_path / "registry" / "taxi"))
    with pytest.raises(LineageError, match="is a Examples, not a Model"):
        lineage.resolve_model(f"id:{ids['examples']}", "")
    with pytest.raises(LineageError, match="no artifact with ML Metadata id 999"):
        lineage.resolve_model("id:999", "")
    with pytest.raises(LineageError, match="no Examples artifact with URI /nope"):
        lineage.resolve_examples("/nope")
    assert main(["lineage", "model", "9", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not 'latest', 'id:<ML Metadata id>' or a version" in err
    # A store no run has written yet is the user's to fix (exit 2), not an outage (exit 1).
    missing = ["--set", f"metadata.sqlite_path={tmp_path / 'absent.sqlite'}"]
    assert main(["lineage", "runs", *missing]) == 2
    err = capsys.readouterr().err
    absent = tmp_path / "absent.sqlite"
    assert err.startswith(f"error: {absent}: no such file; run the pipeline first")
    assert len(err.splitlines()) == 1
    assert not absent.exists()


def test_the_cli_prints_each_format(written, capsys):
    _, ids, args, _ = written
    assert main(["lineage", "model", "latest", *args]) == 0
    assert "PushedModel" in capsys.readouterr().out
    assert main(["lineage", "model", "latest", "--format", "dot", *args]) == 0
    assert f'"Model {ids["run-1-model"]}"' in capsys.readouterr().out
    assert main(["lineage", "runs", *args]) == 0
    assert "FAILED at anomalies_gate" in capsys.readouterr().out


def test_lineage_over_grpc_as_against_kubeflows_metadata_service(written, capsys):
    _, ids, _, tmp_path = written
    with FakeMetadataGrpcService(str(tmp_path / "mlmd.sqlite")) as service:
        args = [
            "--set",
            "metadata.kind=grpc",
            "--set",
            "metadata.host=127.0.0.1",
            "--set",
            f"metadata.port={service.port}",
            "--set",
            f"registry.uri={tmp_path / 'registry'}",
        ]
        assert main(["lineage", "model", "latest", "--json", *args]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["model"]["id"] == ids["run-1-model"]
        assert result["examples"]["id"] == ids["examples"]
        assert "GetEventsByArtifactIDs" in service.calls  # it went over the wire
    # The service is gone: a clear failure, not a hang.
    assert main(["lineage", "runs", *args]) == 1
    assert f"FAILED: ML Metadata (grpc 127.0.0.1:{service.port}) unreachable" in (
        capsys.readouterr().err
    )


def test_records_of_earlier_versions_still_read(written):
    """run-2 recorded its launch settings and AUC thresholds under their old names."""
    lineage, ids, _, _ = written
    result = lineage.model(lineage.graph.artifact(ids["run-2-model"]))
    assert result["trainer"]["workers"] == 2 and result["trainer"]["launcher"] == "local"
    assert result["blessing"]["thresholds"] == {"metric": "auc", "min_value": 0.8}


def test_output_json_and_no_tensorflow_for_any_read(written):
    _, ids, args, _ = written
    for command in (
        ["model", "latest"],
        ["examples", str(ids["examples"])],
        ["runs"],
    ):
        printed, last, err = cli_in_fresh_process("lineage", *command, "-o", "json", *args)
        assert last == "LOADED [] EXIT 0", (command, err)
        answer = json.loads(printed)
        assert answer["format"] == 1
        if command[0] == "runs":
            assert [r["run"] for r in answer["runs"]] == ["run-1", "run-2", "run-3"]
        elif command[0] == "model":
            assert answer["model"]["id"] == ids["run-1-model"]
        else:
            assert {m["id"] for m in answer["models"]} == {ids["run-1-model"], ids["run-2-model"]}
