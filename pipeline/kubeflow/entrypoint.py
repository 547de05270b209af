"""Container entrypoint: TFX's Kubeflow v2 entrypoint, with input types restored.

The compiled pipeline runs `python -m pipeline.kubeflow.entrypoint` with the
arguments TFX's own entrypoint (`kubeflow_v2_run_executor`) takes, and this
module hands them to it after one repair.

The open-source KFP v2 driver resolves an upstream artifact from ML Metadata
and passes it on with an empty type (`"type": {"instanceSchema": ""}`: its
`GetOutputArtifactsByExecutionId` leaves the schema blank). TFX's entrypoint
picks the artifact class from that type's title, so on a blank one it fails
before the executor starts (`'NoneType' object has no attribute 'get'`); a
`system.*` title would fail the same way. The compiled component's own
inputs spec, which the entrypoint also receives under spec 2.1, declares
each input's type, so each input artifact gets the declared type back.

The report's `system.HTML` output type (pipeline/report/component.py) is
mapped to its class before TFX's entrypoint looks the title up.
"""

from __future__ import annotations

import argparse

from absl import app
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from components import beam_setup, contracts, environment, private_apis, process, storage
from pipeline.report.component import HtmlPage


def restore_input_types(executor_input_json: str, inputs_spec_json: str) -> str:
    """Gives each input artifact of an ExecutorInput its declared type.

    Args:
        executor_input_json: The ExecutorInput the KFP launcher substituted.
        inputs_spec_json: The component's ComponentInputsSpec, as compiled.

    Returns:
        The ExecutorInput JSON with every input artifact's type replaced by
        the one its key declares.

    Raises:
        ValueError: An input artifact's key is not declared in the spec.
    """
    executor_input = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(executor_input_json, executor_input, ignore_unknown_fields=True)
    inputs_spec = pipeline_spec_pb2.ComponentInputsSpec()
    json_format.Parse(inputs_spec_json, inputs_spec, ignore_unknown_fields=True)
    for key, artifact_list in executor_input.inputs.artifacts.items():
        if key not in inputs_spec.artifacts:
            raise ValueError(
                f"input artifact {key!r} is not declared in the component's inputs spec "
                f"(declared: {sorted(inputs_spec.artifacts)})"
            )
        declared = inputs_spec.artifacts[key].artifact_type
        for artifact in artifact_list.artifacts:
            artifact.type.CopyFrom(declared)
    return json_format.MessageToJson(executor_input)


def main(parsed: tuple[argparse.Namespace, list[str]]) -> None:
    args, beam_args = parsed
    if not args.json_serialized_inputs_spec_args:
        raise ValueError(
            "--json_serialized_inputs_spec_args is missing: compile with pipeline spec 2.1 "
            "(python -m pipeline compile does)"
        )
    args.json_serialized_invocation_args = restore_input_types(
        args.json_serialized_invocation_args, args.json_serialized_inputs_spec_args
    )
    # TFX's executors use tf.io.gfile directly: an s3:// input, output or
    # parameter (the data root) needs tensorflow-io's filesystem first.
    if "s3://" in args.json_serialized_invocation_args:
        storage.register_filesystems("s3://")
    private_apis.kubeflow_v2_artifact_class(
        contracts.HTML_ARTIFACT_TYPE, f"{HtmlPage.__module__}.{HtmlPage.__qualname__}"
    )
    beam_setup.prepare()
    private_apis.run_kubeflow_v2_executor(args, beam_args)


if __name__ == "__main__":
    environment.prepare()
    # absl's app.run ends in sys.exit; run_and_exit keeps tensorflow-io's
    # teardown from turning a task that wrote to S3 into exit 134.
    process.run_and_exit(lambda: app.run(main, flags_parser=private_apis.kubeflow_v2_flags))
