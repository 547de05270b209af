"""Compiles `create_pipeline(config)` for open-source Kubeflow Pipelines v2.

TFX's KubeflowV2DagRunner does the compiling, with pipeline spec 2.1: under
2.0, TFX 1.16's container entrypoint reads the deprecated
`inputs.parameters` of the ExecutorInput and ignores the `parameterValues`
the KFP v2 launcher sends (CsvExampleGen then dies on
`KeyError: 'input_config'`). Its output is a Vertex PipelineJob; open-source
KFP takes the bare PipelineSpec inside it, which is what `yaml` writes.

On top of TFX's compile:
- every container runs `pipeline.kubeflow.entrypoint` (TFX's entrypoint
  with input artifact types restored, see that module);
- `defaultPipelineRoot` is set from run.pipeline_root, so a run without an
  explicit root still writes where the config says;
- the runtime parameters (`definition.RUNTIME_PARAMETERS`) get the config's
  values as defaults (`defaultValue`, `isOptional`), which TFX leaves out;
- ExampleGen's task is never cached: open-source KFP does not run the
  `preCacheCheck` hook TFX gives it (Vertex-only), so KFP's cache key would
  not see new files under an unchanged data_root and scheduled runs would
  keep re-reading the first run's examples;
- it fails if the DAG holds a resolver or importer executor, which
  open-source KFP v2 cannot run for TFX.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, TypeAlias

import yaml
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx

from pipeline import definition
from pipeline.config import ComponentResources, PipelineConfig

ENTRYPOINT = ["python", "-m", "pipeline.kubeflow.entrypoint"]
FORMATS = ("yaml", "vertex")
ResourceSpec: TypeAlias = (
    pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
)


class CompileError(RuntimeError):
    """The compiled pipeline would not run on open-source KFP v2."""


def resource_spec(resources: ComponentResources) -> ResourceSpec | None:
    """The KFP ResourceSpec for one component; None when nothing is set."""
    spec = ResourceSpec(
        cpu_request=resources.cpu_request,
        cpu_limit=resources.cpu_limit,
        memory_request=resources.memory_request_gb,
        memory_limit=resources.memory_limit_gb,
    )
    if resources.accelerator_count:
        spec.accelerator.type = resources.accelerator_type
        spec.accelerator.count = resources.accelerator_count
    return spec if spec.ByteSize() else None


def _apply_resources(pipeline: tfx.dsl.Pipeline, config: PipelineConfig) -> None:
    for component in pipeline.components:
        resources = getattr(config.kubeflow.resources, component.id, None)
        spec = resource_spec(resources) if resources is not None else None
        if spec is not None:
            component.with_platform_config(spec)


def _check_and_adjust(spec: dict[str, Any], config: PipelineConfig) -> dict[str, Any]:
    executors = spec["deploymentSpec"]["executors"]
    unsupported = sorted(
        name for name, executor in executors.items() if "container" not in executor
    )
    if unsupported:
        raise CompileError(
            f"executors {unsupported} are not containers (resolver/importer); open-source "
            "KFP v2 cannot run them for TFX"
        )
    spec["defaultPipelineRoot"] = config.run.pipeline_root
    declared = spec["root"]["inputDefinitions"]["parameters"]
    for name, value in definition.runtime_parameter_defaults(config).items():
        declared[name]["defaultValue"] = value
        declared[name]["isOptional"] = True
    tasks = spec["root"]["dag"]["tasks"]
    tasks[definition.EXAMPLE_GEN]["cachingOptions"] = {"enableCache": False}
    return spec


def compile_job(config: PipelineConfig, image: str) -> dict[str, Any]:
    """Compiles the pipeline to a Vertex-style PipelineJob dict.

    Args:
        config: The validated configuration.
        image: Full component image reference (`repo:tag`).

    Returns:
        The PipelineJob: `pipelineSpec` (adjusted as the module says) and
        `runtimeConfig`.
    """
    pipeline = definition.create_pipeline(config, runtime_parameters=True)
    _apply_resources(pipeline, config)
    runner_config = tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
        default_image=image,
        default_commands=ENTRYPOINT,
        use_pipeline_spec_2_1=True,
    )
    with tempfile.TemporaryDirectory() as scratch:
        runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
            config=runner_config, output_dir=scratch, output_filename="pipeline.json"
        )
        job = runner.run(pipeline, write_out=False)
    job["pipelineSpec"] = _check_and_adjust(job["pipelineSpec"], config)
    job["runtimeConfig"]["parameterValues"] = definition.runtime_parameter_defaults(config)
    return job


def pipeline_spec_yaml(job: dict[str, Any]) -> str:
    """The bare PipelineSpec that open-source KFP takes, as YAML."""
    return yaml.safe_dump(job["pipelineSpec"], sort_keys=False)


def compile_to_file(config: PipelineConfig, image: str, output: str, fmt: str = "yaml") -> Path:
    """Compiles and writes `output`: the bare PipelineSpec YAML, or (vertex) the job JSON.

    Raises:
        ValueError: `fmt` is not one of FORMATS.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    job = compile_job(config, image)
    text = pipeline_spec_yaml(job) if fmt == "yaml" else json.dumps(job, indent=2, sort_keys=True)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
