"""`python -m pipeline compile`: the PipelineSpec open-source KFP v2 takes.

The golden file pins the DAG's structure. After an intended change,
regenerate it with:

    UPDATE_GOLDEN=1 make test ARGS=tests/test_kubeflow_compile.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import kfp.components
import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils

from pipeline import definition
from pipeline.__main__ import main
from pipeline.config import CONFIG_DIR, ResourcesConfig, load_config
from pipeline.kubeflow import compile as kfp_compile
from pipeline.kubeflow.entrypoint import restore_input_types
from pipeline.kubeflow.image import ImageTagError, git_revision_tag, image_reference

IMAGE = "registry.example/taxi:0123456789ab"
GOLDEN = Path(__file__).parent / "golden" / "kubeflow_dag.json"
KUBEFLOW_YAML = CONFIG_DIR / "kubeflow.yaml"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compile") / "pipeline.yaml"
    assert main(["compile", "--image", IMAGE, "--output", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def spec(compiled: Path) -> dict:
    return yaml.safe_load(compiled.read_text())


def _structure(spec: dict) -> dict:
    executors = spec["deploymentSpec"]["executors"]
    tasks = {}
    for name, task in sorted(spec["root"]["dag"]["tasks"].items()):
        component = spec["components"][task["componentRef"]["name"]]
        container = executors[component["executorLabel"]]["container"]
        args = container["args"]
        tasks[name] = {
            "depends_on": sorted(task.get("dependentTasks", [])),
            "executor_class": args[args.index("--executor_class_path") + 1],
            "image": container["image"],
            "command": container["command"],
            "cache": task.get("cachingOptions", {}).get("enableCache", False),
            "inputs": sorted(task.get("inputs", {}).get("artifacts", {})),
            "outputs": sorted(component.get("outputDefinitions", {}).get("artifacts", {})),
            "runtime_parameters": sorted(
                p["componentInputParameter"]
                for p in task.get("inputs", {}).get("parameters", {}).values()
                if "componentInputParameter" in p
            ),
        }
    return {
        "schemaVersion": spec["schemaVersion"],
        "root_parameters": {
            k: v["parameterType"]
            for k, v in sorted(spec["root"]["inputDefinitions"]["parameters"].items())
        },
        "tasks": tasks,
    }


def test_parses_strictly_as_a_pipeline_spec(spec):
    # No ignore_unknown_fields: every key must be a PipelineSpec field.
    parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    assert parsed.schema_version == "2.1.0"
    assert parsed.pipeline_info.name == "taxi"


def test_loads_with_the_kfp_sdk(compiled):
    component = kfp.components.load_component_from_file(str(compiled))
    assert component.name == "taxi"
    inputs = component.component_spec.inputs
    assert set(inputs) == set(definition.RUNTIME_PARAMETERS)


def test_dag_matches_the_golden_structure(spec):
    actual = _structure(spec)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    expected = json.loads(GOLDEN.read_text())
    assert actual == expected, (
        "the compiled DAG changed; if intended, regenerate with "
        "UPDATE_GOLDEN=1 make test ARGS=tests/test_kubeflow_compile.py"
    )


def test_no_resolver_or_importer_executors(spec):
    for name, executor in spec["deploymentSpec"]["executors"].items():
        assert set(executor) == {"container"}, name
        assert "{{$}}" in executor["container"]["args"]


def test_runtime_parameters_default_to_the_config(spec):
    config = load_config(KUBEFLOW_YAML)
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert {k: v["defaultValue"] for k, v in declared.items()} == (
        definition.runtime_parameter_defaults(config)
    )
    assert all(v["isOptional"] for v in declared.values())
    assert spec["defaultPipelineRoot"] == config.run.pipeline_root


def test_resources_come_from_the_config(spec):
    resources = spec["deploymentSpec"]["executors"]["trainer_executor"]["container"]["resources"]
    assert resources == {
        "cpuRequest": 4.0,
        "cpuLimit": 8.0,
        "memoryRequest": 8.0,
        "memoryLimit": 16.0,
    }
    example_gen = spec["deploymentSpec"]["executors"]["example_gen_executor"]["container"]
    assert "resources" not in example_gen


def test_gpu_request_compiles_to_an_accelerator():
    config = load_config(
        KUBEFLOW_YAML,
        [
            "kubeflow.resources.trainer.accelerator_count=2",
            "kubeflow.resources.trainer.accelerator_type=nvidia.com/gpu",
        ],
    )
    job = kfp_compile.compile_job(config, IMAGE)
    container = job["pipelineSpec"]["deploymentSpec"]["executors"]["trainer_executor"]["container"]
    assert container["resources"]["accelerator"] == {"type": "nvidia.com/gpu", "count": "2"}


def test_every_node_but_example_gen_has_a_resources_entry():
    fields = {f.name for f in dataclasses.fields(ResourcesConfig)}
    assert fields == set(definition.NODE_IDS) - {definition.EXAMPLE_GEN}


def test_beam_args_reach_every_beam_component(spec):
    config = load_config(KUBEFLOW_YAML)
    args = spec["deploymentSpec"]["executors"]["transform_executor"]["container"]["args"]
    assert args[-len(config.beam.args) :] == list(config.beam.args)


def test_vertex_format_is_a_pipeline_job(tmp_path):
    path = tmp_path / "job.json"
    assert main(["compile", "--image", IMAGE, "--format", "vertex", "--output", str(path)]) == 0
    job = json.loads(path.read_text())
    assert set(job) >= {"pipelineSpec", "runtimeConfig", "displayName"}
    assert job["runtimeConfig"]["parameterValues"]["train_steps"] == 1000


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        kfp_compile.compile_to_file(load_config(KUBEFLOW_YAML), IMAGE, str(tmp_path / "x"), "json")


# -- the container entrypoint ------------------------------------------------


def _launcher_input(uri: str) -> str:
    # An input artifact as the open-source KFP v2 driver resolves it.
    return json.dumps(
        {
            "inputs": {
                "artifacts": {
                    "examples": {
                        "artifacts": [
                            {
                                "name": "42",
                                "uri": uri,
                                "type": {"instanceSchema": ""},
                                "metadata": {"split_names": '["train", "eval"]', "span": 0.0},
                            }
                        ]
                    }
                }
            },
            "outputs": {"outputFile": "/tmp/out.json"},
        }
    )


def _inputs_spec(spec: dict, component: str) -> str:
    return json.dumps(spec["components"][component]["inputDefinitions"])


def test_tfx_entrypoint_alone_cannot_read_launcher_inputs():
    # The pitfall entrypoint.py exists for. If TFX fixes it, this fails and
    # the wrapper can go.
    executor_input = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(_launcher_input("/x"), executor_input)
    with pytest.raises(AttributeError):
        kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(executor_input.inputs.artifacts)


def test_restored_types_let_tfx_parse_the_inputs(spec):
    restored = restore_input_types(_launcher_input("/x"), _inputs_spec(spec, "statistics_gen"))
    executor_input = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(restored, executor_input)
    [examples] = kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(
        executor_input.inputs.artifacts
    )["examples"]
    assert examples.type_name == "Examples"
    assert examples.uri == "/x"
    assert json.loads(examples.split_names) == ["train", "eval"]


def test_undeclared_input_is_named(spec):
    with pytest.raises(ValueError, match="'examples' is not declared"):
        restore_input_types(_launcher_input("/x"), _inputs_spec(spec, "schema_importer"))


# -- the image tag -------------------------------------------------------------


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_image_tag_is_the_git_revision(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("1")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "c")
    clean = git_revision_tag(tmp_path)
    assert len(clean) == 12 and all(c in "0123456789abcdef" for c in clean)
    (tmp_path / "f").write_text("2")
    assert git_revision_tag(tmp_path) == f"{clean}-dirty"
    config = load_config(KUBEFLOW_YAML)
    assert image_reference(config, tmp_path) == f"ghcr.io/example/mlops-pipeline:{clean}-dirty"
    pinned = load_config(KUBEFLOW_YAML, ["kubeflow.image_tag=v1"])
    assert image_reference(pinned, tmp_path) == "ghcr.io/example/mlops-pipeline:v1"


def test_image_tag_outside_git_is_an_error(tmp_path):
    with pytest.raises(ImageTagError, match="git rev-parse"):
        git_revision_tag(tmp_path)


# -- `run --compiled`: what it refuses before any task runs ------------------------


def test_run_parameters_are_typed_as_the_spec_declares_them(spec):
    from pipeline.kubeflow.local_launcher import parse_parameters

    typed = parse_parameters(
        spec, ["data_root=/data/2026", "train_steps=200", "min_value=1", "max_drop=0.05"]
    )
    assert typed == {
        "data_root": "/data/2026",
        "train_steps": 200,
        "min_value": 1.0,
        "max_drop": 0.05,
    }
    assert isinstance(typed["min_value"], float) and isinstance(typed["train_steps"], int)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train_steps", "--param expects name=value, got 'train_steps'"),
        ("steps=3", "--param steps: the pipeline has no such parameter; declared: data_root,"),
        ("train_steps=many", "--param train_steps: expected a NUMBER_INTEGER value, got 'many'"),
        ("train_steps=2.5", "--param train_steps: expected an integer, got '2.5'"),
        ("min_value=true", "--param min_value: expected a NUMBER_DOUBLE value, got 'true'"),
    ],
)
def test_bad_run_parameters_are_named(spec, compiled, assignment, message, capsys):
    assert main(["run", "--compiled", str(compiled), "--param", assignment]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and len(err.splitlines()) == 1, err


def test_a_file_that_is_not_a_compiled_spec_is_named(tmp_path, capsys):
    job = tmp_path / "job.json"
    assert main(["compile", "--image", IMAGE, "--format", "vertex", "--output", str(job)]) == 0
    capsys.readouterr()
    for path, message in (
        (tmp_path / "absent.yaml", "no such file"),
        (job, "is a Vertex PipelineJob; compile with --format yaml"),
        (GOLDEN, "is not a compiled PipelineSpec"),
    ):
        assert main(["run", "--compiled", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}") and message in err, err
        assert len(err.splitlines()) == 1


def test_launcher_flags_without_compiled_are_refused(capsys):
    assert main(["run", "--param", "train_steps=3", "--run-id", "x"]) == 2
    assert capsys.readouterr().err == "error: --param, --run-id: only with --compiled FILE\n"
    assert main(["run", "--fresh-python"]) == 2
    assert capsys.readouterr().err == "error: --fresh-python: only with --compiled FILE\n"


@pytest.mark.parametrize("python", [[], ["--fresh-python"]], ids=["preloaded", "fresh"])
def test_a_task_past_its_timeout_fails_the_run_by_name(compiled, tmp_path, capsys, python):
    # ExampleGen blocks reading a CSV file that is a pipe nobody writes to.
    data = tmp_path / "data"
    data.mkdir()
    os.mkfifo(data / "data.csv")
    code = main(
        [
            "run",
            "--compiled",
            str(compiled),
            *python,
            "--task-timeout",
            "1",
            "--param",
            f"data_root={data}",
            "--pipeline-root",
            str(tmp_path / "root"),
            "--set",
            f"metadata.sqlite_path={tmp_path / 'mlmd.sqlite'}",
            "--set",
            f"run.pipeline_root={tmp_path / 'local'}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-2] == "FAILED at task example_gen (exit -9): stopped after 1s (the task timeout)"
    assert err[-1].startswith(f"task log: {tmp_path / 'local' / 'logs'}")


def test_the_report_is_a_kubeflow_html_artifact(spec):
    # The Kubeflow UI renders artifacts of type system.HTML in the task's page.
    task = spec["root"]["dag"]["tasks"]["run_report"]
    component = spec["components"][task["componentRef"]["name"]]
    declared = component["outputDefinitions"]["artifacts"]["report"]["artifactType"]
    assert yaml.safe_load(declared["instanceSchema"])["title"] == "system.HTML"
