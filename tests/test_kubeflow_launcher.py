"""The compiled pipeline, executed the way the open-source KFP v2 launcher would.

`python -m pipeline compile` writes the PipelineSpec;
`pipeline/kubeflow/local_launcher.py` (the user's `run --compiled`) runs
each task's container command as a subprocess with a launcher-shaped
ExecutorInput and records ML Metadata as KFP does. Two runs: the first
blesses and pushes; the second finds the first's model as its baseline in
the KFP-written records. Run parameters are set per run, as in the KFP UI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from components.contracts import BASELINE_FOUND as FOUND
from components.contracts import BASELINE_MODEL_ID as MODEL_ID
from components.contracts import BASELINE_MODEL_MLMD_ID as BASELINE_MLMD_ID
from components.registry.store import Registry
from pipeline import definition
from pipeline.__main__ import main
from pipeline.kubeflow.local_launcher import (
    CONTAINER_EXECUTION,
    PIPELINE_CONTEXT,
    LocalLauncher,
    load_spec,
)
from pipeline.report import page as report_page
from tests import browser
from tests.conftest import csv_columns, read_csv_rows, write_csv

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IMAGE = "registry.example/taxi:emulated"
SAMPLE_ROWS = 3000


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kfp")
    write_csv(root / "data" / "data.csv", read_csv_rows(limit=SAMPLE_ROWS), csv_columns())
    return root


@pytest.fixture(scope="module")
def spec(workspace: Path) -> dict:
    # The local config compiled for Kubeflow, its stores pointed into the
    # workspace; the compiled defaults (full data, 1000 steps) are what the
    # runs below override through run parameters.
    output = workspace / "pipeline.yaml"
    code = main(
        [
            "compile",
            "--config",
            "pipeline/configs/local.yaml",
            "--image",
            IMAGE,
            "--output",
            str(output),
            "--set",
            f"run.pipeline_root={workspace / 'root'}",
            "--set",
            f"metadata.sqlite_path={workspace / 'mlmd.sqlite'}",
            "--set",
            f"registry.uri={workspace / 'registry'}",
        ]
    )
    assert code == 0
    return load_spec(output)


@pytest.fixture(scope="module")
def emulator(spec: dict, workspace: Path):
    # Tasks are forks of one preloaded interpreter (the default); the
    # failing-task test below runs one in a fresh interpreter.
    with LocalLauncher(spec, workspace / "mlmd.sqlite", workspace) as launcher:
        yield launcher


def _params(workspace: Path, **extra: object) -> dict:
    return {
        "data_root": str(workspace / "data"),
        "train_steps": 60,
        "eval_steps": 5,
        "min_value": 0.5,
        **extra,
    }


@pytest.fixture(scope="module")
def first_run(emulator: LocalLauncher, workspace: Path):
    return emulator.run("run-1", _params(workspace))


@pytest.fixture(scope="module")
def second_run(first_run, emulator: LocalLauncher, workspace: Path):
    return emulator.run("run-2", _params(workspace, max_drop=0.3))


def test_every_task_ran_in_its_image_command(first_run, spec):
    assert set(first_run.tasks) == set(definition.NODE_IDS)
    for executor in spec["deploymentSpec"]["executors"].values():
        assert executor["container"]["image"] == IMAGE
        assert executor["container"]["command"] == ["python", "-m", "pipeline.kubeflow.entrypoint"]


def test_run_parameters_reach_the_executors(first_run, workspace):
    trainer = first_run.tasks[definition.TRAINER].executor_input["inputs"]["parameterValues"]
    assert trainer["train_steps"] == 60 and trainer["eval_steps"] == 5
    example_gen = first_run.tasks[definition.EXAMPLE_GEN].executor_input["inputs"]
    assert example_gen["parameterValues"]["input_base"] == str(workspace / "data")
    evaluator = first_run.tasks[definition.EVALUATOR].executor_input["inputs"]["parameterValues"]
    assert evaluator["min_value"] == 0.5
    # Not overridden: the compiled default.
    assert evaluator["max_drop"] == pytest.approx(0.01)


def test_inputs_arrive_as_the_launcher_sends_them(first_run):
    # Untyped, named by ML Metadata id: what the entrypoint must cope with.
    inputs = first_run.tasks[definition.TRAINER].executor_input["inputs"]["artifacts"]
    examples = inputs["examples"]["artifacts"][0]
    assert examples["type"] == {"instanceSchema": ""}
    # trainer.examples: raw: the Trainer reads ExampleGen's examples.
    produced = first_run.tasks[definition.EXAMPLE_GEN].outputs["examples"]
    assert examples["name"] == str(produced.id)
    assert sorted(json.loads(examples["metadata"]["split_names"])) == ["eval", "train"]


def test_first_run_blesses_and_pushes_a_servable_model(first_run, workspace):
    blessing = first_run.tasks[definition.EVALUATOR].outputs["blessing"]
    assert blessing.custom_properties["blessed"].double_value == 1.0
    model = first_run.tasks[definition.TRAINER].outputs["model"]
    assert blessing.custom_properties["current_model_id"].string_value == str(model.id)
    pushed = first_run.tasks[definition.PUSHER].outputs["pushed_model"]
    assert pushed.custom_properties["pushed"].double_value == 1.0
    destination = Path(pushed.custom_properties["pushed_destination"].string_value)
    assert destination.parent == workspace / "registry" / "taxi"
    loaded = tf.saved_model.load(str(destination))
    assert "serving_default" in loaded.signatures


def test_the_pushed_manifest_names_the_kfp_run_and_real_mlmd_ids(first_run, workspace):
    registry = Registry(str(workspace / "registry"), "taxi")
    version = registry.complete_versions()[0]
    manifest = registry.manifest(version.number)
    # `{{$.pipeline_job_uuid}}`, resolved by the KFP driver, not TFX's context.
    assert manifest["pipeline"] == {"name": "taxi", "run_id": "run-1"}
    # The entrypoint hands the executor hashed ids; the pusher looks the real
    # ones up by URI.
    ids = manifest["mlmd"]
    assert ids["model_id"] == first_run.tasks[definition.TRAINER].outputs["model"].id
    assert ids["blessing_id"] == first_run.tasks[definition.EVALUATOR].outputs["blessing"].id
    assert ids["examples_id"] == first_run.tasks[definition.EXAMPLE_GEN].outputs["examples"].id
    assert manifest["evaluation"]["thresholds"]["min_value"] == 0.5
    assert manifest["evaluation"]["thresholds"]["metric"] == "auc"
    assert registry.verify(version.number) == []


def test_records_are_named_as_kfp_names_them(first_run, emulator):
    store = emulator.store
    context = store.get_context_by_type_and_name(PIPELINE_CONTEXT, "taxi")
    assert context is not None
    executions = store.get_executions_by_context(context.id)
    types = {t.id: t.name for t in store.get_execution_types()}
    assert {types[e.type_id] for e in executions} == {CONTAINER_EXECUTION}
    done = [e for e in executions if e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
    assert len(done) >= len(definition.NODE_IDS)
    artifact_types = {t.name for t in store.get_artifact_types()}
    assert {"tfx.Examples", "tfx.Model", "tfx.ModelBlessing", "tfx.PushedModel"} <= artifact_types


def test_the_report_is_an_html_artifact_the_kubeflow_ui_renders(first_run, emulator, tmp_path):
    # The UI lists a task's system.HTML artifacts that have a display_name
    # and shows the object at the URI (MetricsVisualizations.tsx).
    page = first_run.tasks[definition.RUN_REPORT].outputs["report"]
    (page_type,) = emulator.store.get_artifact_types_by_id([page.type_id])
    assert page_type.name == "system.HTML"
    assert page.custom_properties["display_name"].string_value == "run report"
    html = Path(page.uri).read_text()  # a file at the URI, not a folder
    copy = tmp_path / "report.html"
    copy.write_text(html)
    loaded = browser.load(copy)
    assert loaded.console == []
    for key, _ in report_page.SECTIONS:
        assert f'id="{key}"' in loaded.dom
    # Read back from the records KFP writes: every task of this run but the report.
    assert loaded.dom.count('class="node"') == len(definition.NODE_IDS) - 1
    assert "run-1" in loaded.dom and "trip_miles" in loaded.dom
    assert '<span class="blessed">' in loaded.dom and "<polyline" in loaded.dom


def test_second_run_finds_the_first_model_as_baseline(first_run, second_run):
    first_model = first_run.tasks[definition.TRAINER].outputs["model"]
    reference = second_run.tasks[definition.BASELINE_LOOKUP].outputs["baseline"]
    assert reference.custom_properties[FOUND].double_value == 1.0
    assert reference.custom_properties[MODEL_ID].double_value == first_model.id
    blessing = second_run.tasks[definition.EVALUATOR].outputs["blessing"]
    assert blessing.custom_properties[BASELINE_MLMD_ID].double_value == first_model.id
    assert blessing.custom_properties["blessed"].double_value == 1.0


def test_a_failing_task_stops_the_run_and_names_itself(second_run, workspace, capsys):
    # Through the user's command: `run --compiled`, a data_root that is not
    # there, the task in a fresh interpreter as a container starts it.
    code = main(
        [
            "run",
            "--compiled",
            str(workspace / "pipeline.yaml"),
            "--fresh-python",
            "--run-id",
            "run-broken",
            "--param",
            f"data_root={workspace / 'no-such-dir'}",
            "--set",
            f"metadata.sqlite_path={workspace / 'mlmd.sqlite'}",
            "--set",
            f"run.pipeline_root={workspace / 'root'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    failed_line, log_line = err.strip().splitlines()[-2:]
    assert failed_line.startswith("FAILED at task example_gen (exit 1): "), err
    log = Path(log_line.removeprefix("task log: "))
    assert log.is_file() and "Traceback" in log.read_text()
    store = LocalLauncher(
        load_spec(workspace / "pipeline.yaml"), workspace / "mlmd.sqlite", workspace
    ).store
    failed = [
        e
        for e in store.get_executions()
        if e.last_known_state == metadata_store_pb2.Execution.FAILED
    ]
    assert [e.custom_properties["task_name"].string_value for e in failed] == ["example_gen"]


def test_lineage_reads_the_records_kfp_writes(first_run, second_run, workspace, capsys):
    # system.PipelineRun contexts, system.ContainerExecution with task_name,
    # tfx.* artifact types, numbers as doubles: what the KFP v2 launcher writes.
    args = [
        "--set",
        f"metadata.sqlite_path={workspace / 'mlmd.sqlite'}",
        "--set",
        f"registry.uri={workspace / 'registry'}",
    ]
    model = second_run.tasks[definition.TRAINER].outputs["model"]
    assert main(["lineage", "model", f"id:{model.id}", "--json", *args]) == 0
    lineage = json.loads(capsys.readouterr().out)
    assert lineage["run"] == "run-2" and lineage["pipeline"] == "taxi"
    assert lineage["trainer"]["node"] == definition.TRAINER
    assert lineage["trainer"]["parameters"]["train_steps"] == 60
    examples = second_run.tasks[definition.EXAMPLE_GEN].outputs["examples"]
    assert lineage["examples"]["id"] == examples.id
    transform_graph = second_run.tasks[definition.TRANSFORM].outputs["transform_graph"]
    assert lineage["transform_graph"]["id"] == transform_graph.id
    first_model = first_run.tasks[definition.TRAINER].outputs["model"]
    assert lineage["blessing"]["blessed"] is True
    assert lineage["blessing"]["baseline_model_id"] == first_model.id
    assert [p["run"] for p in lineage["pushed"]] == ["run-2"]
    assert main(["lineage", "runs", "--json", *args]) == 0
    runs = {r["run"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert runs["run-1"]["status"] == runs["run-2"]["status"] == "SUCCEEDED"
    assert len(runs["run-1"]["pushed_versions"]) == 1
